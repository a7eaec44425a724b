"""Generators: pluggable producers of candidate edits, found by the tier's kind.

One generator lives for one tier of one instance. What was already tried is passed in,
so a resumed campaign continues where it stopped; a generator may keep in-memory state
for its tier (the LLM generator keeps its plan and its round count).

A generator that could not turn a model's reply into a diff still returns a candidate,
marked malformed, so the attempt is counted and recorded (see ``malformed``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from patchsmith.config import SearchTier, Tier
from patchsmith.domain import Candidate, Critique, Instance, Plan, TestReport, Usage
from patchsmith.infra.settings import home
from patchsmith.recipes import CodemodTier, Recipe
from patchsmith.tasks.llm.generator import LLMGenerator
from patchsmith.tasks.refactor.codemods import CodemodGenerator, ToolRun
from patchsmith.tasks.search import prior
from patchsmith.tasks.search.mutation import MutationSearch

if TYPE_CHECKING:
    from patchsmith.infra.store import Store


class Generator(Protocol):
    """Proposes up to ``n`` new candidates for an instance."""

    repeats: int
    """Proposals that repeated a candidate already tried (an escalation signal)."""

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

    def scope(self, plan: Plan, pristine: Path, *, exhausted: bool) -> str | None:
        """What this tier searched, for a give-up reason: everything it held when it is
        ``exhausted``, else how far it got. None when it cannot say."""
        ...

    def estimate(self, n: int) -> Usage:
        """About what the next ``propose(n)`` costs in model usage, at most (zero without a
        model): the orchestrator does not make a call that would cross a budget."""
        ...

    def settle(self) -> Usage:
        """Model usage spent but charged to no candidate so far; handed over once."""
        ...


class SearchGenerator:
    """Tier 0: deterministic mutation search at the most suspicious lines."""

    def __init__(self, tier: SearchTier) -> None:
        self.tier = tier
        self.repeats = 0  # search never proposes a tried candidate
        table, self.prior_source = prior.resolve(tier.prior, home())
        self.search = MutationSearch(
            max_order=tier.max_order, top_lines=tier.top_lines, prior=table, widen=tier.widen
        )

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

    def estimate(self, n: int) -> Usage:
        return Usage()

    def settle(self) -> Usage:
        return Usage()

    def scope(self, plan: Plan, pristine: Path, *, exhausted: bool) -> str | None:
        census = self.search.census(pristine, plan, tier=self.tier.name)
        text = census.exhausted() if exhausted else census.progress()
        return f"{text} (operator prior: {self.prior_source})"


def make_generator(
    tier: Tier,
    store: Store | None = None,
    *,
    recipe: Recipe | None = None,
    run_tool: ToolRun | None = None,
) -> Generator:
    """The generator for a tier. LLM tiers resolve their adapters here (through ``store``,
    else the default store when they name registry adapters); the codemod tier applies
    ``recipe``'s codemods, running its tools with ``run_tool`` (in the sandbox)."""
    if isinstance(tier, SearchTier):
        return SearchGenerator(tier)
    if isinstance(tier, CodemodTier):
        if run_tool is None:
            raise ValueError("the codemod tier needs a sandbox to run its tools in")
        return CodemodGenerator(tier, recipe, run_tool)
    return LLMGenerator(tier, store)
