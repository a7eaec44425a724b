"""Partial progress of a refactoring: the base the next round starts from.

A candidate that removes occurrences with every guard green is kept: its changes, on top
of those kept before, become a new pristine tree (built once from the instance's own
pristine copy) and the goal's state on it becomes the plan's. Generators and tests then
work on that tree unchanged; what an attempt records is its diff against the base it saw,
and what the instance ships is the composed diff against the original tree, verified
there on a fresh workspace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from patchsmith.domain import (
    Candidate,
    GoalProgress,
    GoalState,
    Plan,
    SuspiciousLine,
)
from patchsmith.infra.workspace import WorkspaceManager
from patchsmith.tasks.edits.diff import apply_diff, make_diff, read_text
from patchsmith.tasks.edits.parse import resolve_inside
from patchsmith.tasks.testing.precheck import file_versions, new_sources


def compose(original: Path, base: str, current: Path, diff: str) -> str:
    """The diff from ``original`` to ``current`` (= original + ``base``) with ``diff`` on top."""
    final = {**(new_sources(original, base) if base else {}), **new_sources(current, diff)}
    return make_diff(
        {p: (read_text(resolve_inside(original, p), p), text) for p, text in final.items()}
    )


@dataclass
class Progress:
    """Where a refactoring instance stands: the original tree and plan, the kept changes."""

    recipe: str
    original: Path
    original_plan: Plan
    pristine: Path
    plan: Plan
    base: str = ""
    by_tier: dict[str, int] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)  # candidate ids, in order
    kept_by: list[str] = field(default_factory=list)  # their generators

    @classmethod
    def start(cls, recipe: str, pristine: Path, plan: Plan) -> Progress:
        return cls(
            recipe=recipe, original=pristine, original_plan=plan, pristine=pristine, plan=plan
        )

    @property
    def goal(self) -> GoalState:
        assert self.plan.goal is not None
        return self.plan.goal

    def cumulative(self, candidate: Candidate) -> Candidate:
        """``candidate`` (a diff against the current base) as a diff against the original."""
        if not self.base:
            return candidate
        diff = compose(self.original, self.base, self.pristine, candidate.diff)
        return candidate.model_copy(
            update={
                "candidate_id": Candidate.make_id(diff),
                "diff": diff,
                "files": sorted({*candidate.files, *file_versions(self.original, self.base)}),
                "parent_ids": [*self.kept, candidate.candidate_id],
                "description": f"{candidate.description} (on top of {len(self.kept)} kept)",
            }
        )

    def advance(
        self, workspaces: WorkspaceManager, tier: str, candidate: Candidate, goal: GoalState
    ) -> None:
        """Keep ``candidate``: the next round starts from the tree with it applied."""
        base = compose(self.original, self.base, self.pristine, candidate.diff)
        removed = len(self.goal.occurrences) - len(goal.occurrences)
        self.by_tier[tier] = self.by_tier.get(tier, 0) + max(removed, 0)
        self.pristine = workspaces.derive(
            self.original, Candidate.make_id(base), lambda tree: _apply(tree, base)
        )
        self.base = base
        self.kept.append(candidate.candidate_id)
        self.kept_by.append(candidate.generator)
        suspicious = [
            SuspiciousLine(path=o.path, line=o.line, score=1.0, sources=["goal"])
            for o in goal.occurrences
        ]
        self.plan = self.plan.model_copy(update={"goal": goal, "suspicious": suspicious})

    def record(self, resolved: bool, tier: str | None, final: str | None = None) -> GoalProgress:
        """What the instance achieved; ``resolved``: the goal was met by ``tier``'s last
        candidate (which removed every occurrence still left)."""
        before = self.original_plan.goal
        assert before is not None
        by_tier = dict(self.by_tier)
        if resolved and tier is not None and self.goal.occurrences:
            by_tier[tier] = by_tier.get(tier, 0) + len(self.goal.occurrences)
        left = [] if resolved else self.goal.occurrences
        check = None
        if before.check is not None:
            check = resolved or bool(self.goal.check and self.goal.check.passed)
        return GoalProgress(
            recipe=self.recipe,
            before=len(before.occurrences),
            after=len(left),
            by_tier=by_tier,
            remaining=left,
            check_passed=check,
            guards=len(self.original_plan.pass_to_pass),
            steps=[*self.kept_by, *([final] if resolved and final else [])],
        )


def _apply(tree: Path, diff: str) -> None:
    apply_diff(tree, diff)
