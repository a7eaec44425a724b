"""Tier 0 of refactoring: the recipe's deterministic codemods, cheapest first.

Tools, in order: the goal's structural rewrites (in process, on syntax trees), ruff's
fixers for the recipe's rules, then each user command; each in the sandbox on a throwaway
workspace, and its candidate is the diff of the in-scope files it changed (read back
without following symlinks). One tool per round: a candidate that makes progress becomes
the base the next tool starts from (``tasks/repair.py``), so the tools chain.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from patchsmith.domain import Candidate, Critique, Instance, Plan, TestReport, Usage
from patchsmith.recipes import CodemodTier, Recipe
from patchsmith.tasks.edits.diff import make_diff
from patchsmith.tasks.refactor.goal import drop_unused_imports, rewritable, rewrite
from patchsmith.tasks.refactor.plan import in_scope_texts

ToolRun = Callable[[Instance, Path, str], dict[str, str]]
"""Runs a command line in the sandbox on a workspace of the tree; returns path → text of
the in-scope files afterwards."""


@dataclass(frozen=True)
class Tool:
    name: str
    command: str | None  # None: the in-process rewrites


def tools(recipe: Recipe) -> list[Tool]:
    """The recipe's codemods in the order they run."""
    mods = recipe.codemods
    out: list[Tool] = []
    if mods.rewrites and rewritable(recipe.goal):
        out.append(Tool("rewrite", None))
    if mods.ruff:
        words = ["ruff", "check", "--fix", "--exit-zero", "--no-cache", "--quiet"]
        if mods.ruff_target:
            words += ["--target-version", mods.ruff_target]
        words += ["--select", ",".join(mods.ruff), "."]
        out.append(Tool(f"ruff {','.join(mods.ruff)}", shlex.join(words)))
    out += [Tool(f"command {i + 1}", cmd) for i, cmd in enumerate(mods.commands)]
    return out


class CodemodGenerator:
    """Proposes each codemod's result once per base tree."""

    def __init__(self, tier: CodemodTier, recipe: Recipe | None, run: ToolRun) -> None:
        self.tier = tier
        self.recipe = recipe
        self.run = run
        self.repeats = 0
        self.ran: list[str] = []  # "tool on base" keys, in order
        self.notes: list[str] = []

    def _apply(
        self, tool: Tool, instance: Instance, pristine: Path, before: dict[str, str]
    ) -> dict[str, str]:
        """Path → new text of the files the tool changed (``before``: the tree's texts)."""
        if tool.command is None:
            assert self.recipe is not None
            after: dict[str, str] = {}
            for path, text in before.items():
                try:
                    after[path] = rewrite(text, self.recipe.goal)
                except SyntaxError as exc:  # the file itself does not parse: leave it
                    self.notes.append(f"rewrite skipped {path}: {exc.msg} (line {exc.lineno})")
        else:
            after = self.run(instance, pristine, tool.command)
        # What a codemod itself left unused (timezone, once timezone.utc is UTC) goes too.
        cleaned = {p: drop_unused_imports(before[p], t) for p, t in after.items() if p in before}
        return {p: t for p, t in cleaned.items() if before[p] != t}

    def propose(
        self,
        instance: Instance,
        plan: Plan,
        pristine: Path,
        tried: set[str],
        feedback: list[str],
        n: int,
    ) -> list[Candidate]:
        if self.recipe is None:
            return []
        out: list[Candidate] = []
        for tool in tools(self.recipe):
            key = f"{tool.name}@{pristine}"
            if key in self.ran:
                continue
            self.ran.append(key)
            before = in_scope_texts(instance, pristine)
            changed = self._apply(tool, instance, pristine, before)
            diff = make_diff({p: (before[p], t) for p, t in changed.items()})
            if not diff or Candidate.make_id(diff) in tried:
                continue
            out.append(
                Candidate(
                    candidate_id=Candidate.make_id(diff),
                    generator=f"codemod:{tool.name}",
                    tier=self.tier.name,
                    diff=diff,
                    description=f"{self.recipe.name}: {tool.name} changed {len(changed)} file(s)",
                    files=sorted(changed),
                    operators=[tool.name],
                )
            )
            if len(out) >= n:
                break
        return out

    def review(
        self, plan: Plan, candidate: Candidate, report: TestReport, critique: Critique
    ) -> Critique:
        return critique

    def scope(self, plan: Plan, pristine: Path, *, exhausted: bool) -> str | None:
        if self.recipe is None:
            return None
        names = [t.name for t in tools(self.recipe)]
        ran = sorted({k.split("@", 1)[0] for k in self.ran})
        if not names:
            return "the recipe has no codemod (no rewrite, ruff rule or command)"
        return f"codemods run: {', '.join(ran) or 'none'} of {', '.join(names)}"

    def estimate(self, n: int) -> Usage:
        return Usage()

    def settle(self) -> Usage:
        return Usage()
