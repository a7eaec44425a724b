"""Generators: pluggable producers of candidate edits, found by the tier's kind.

A generator is stateless between rounds: what was already tried is passed in, so a round
can run as a retriable Prefect task and a resumed campaign continues where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from patchsmith.config import Tier
from patchsmith.domain import Candidate, Critique, Instance, Plan, TestReport
from patchsmith.tasks.mutation import MutationSearch


class Generator(Protocol):
    """Proposes up to ``n`` new candidates for an instance."""

    def propose(
        self,
        instance: Instance,
        plan: Plan,
        pristine: Path,
        tried: set[str],
        feedback: list[str],
        n: int,
    ) -> list[Candidate]:
        """Candidates not in ``tried``; [] when this generator has nothing left."""
        ...

    def review(
        self, plan: Plan, candidate: Candidate, report: TestReport, critique: Critique
    ) -> Critique:
        """Combine the deterministic critique with this tier's own critic (if any)."""
        ...


class SearchGenerator:
    """Tier 0: deterministic mutation search at the most suspicious lines."""

    def __init__(self, tier: Tier) -> None:
        self.tier = tier
        self.search = MutationSearch(max_order=tier.max_order, top_lines=tier.top_lines)

    def propose(
        self,
        instance: Instance,
        plan: Plan,
        pristine: Path,
        tried: set[str],
        feedback: list[str],
        n: int,
    ) -> list[Candidate]:
        return self.search.propose(pristine, plan, tried, n, tier=self.tier.name)

    def review(
        self, plan: Plan, candidate: Candidate, report: TestReport, critique: Critique
    ) -> Critique:
        return critique


def make_generator(tier: Tier) -> Generator:
    """The generator for a tier (LLM tiers plug in here by their ``kind``)."""
    if tier.kind == "search":
        return SearchGenerator(tier)
    raise ValueError(f"no generator for tier kind {tier.kind!r}")
