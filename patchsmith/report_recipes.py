"""The refactoring part of ``patchsmith report``: per recipe, how far the repositories got.

Read from the instance runs' tags (``patchsmith.recipe``, ``patchsmith.refactor_state``)
and metrics (``goal.*``, written by ``infra/tracking_metrics.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rich.table import Table

MIGRATED_BY = "goal.migrated_by."


@dataclass
class RecipeRow:
    recipe: str
    done: int = 0
    partial: int = 0
    untouched: int = 0
    before: int = 0
    after: int = 0
    by_tier: dict[str, int] = field(default_factory=dict)
    regressions: int = 0
    review_lines: int = 0
    tokens: int = 0
    dollars: float = 0.0

    def add(self, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
        state = tags.get("patchsmith.refactor_state", "untouched")
        setattr(self, state, getattr(self, state) + 1)
        self.before += int(metrics.get("goal.occurrences_before", 0))
        self.after += int(metrics.get("goal.occurrences_after", 0))
        for key, value in metrics.items():
            if key.startswith(MIGRATED_BY):
                tier = key.removeprefix(MIGRATED_BY)
                self.by_tier[tier] = self.by_tier.get(tier, 0) + int(value)
        self.regressions += int(metrics.get("regressions_introduced", 0))
        self.review_lines += int(metrics.get("goal.changeset_lines", 0))
        self.tokens += int(metrics.get("tokens_in", 0) + metrics.get("tokens_out", 0))
        self.dollars += float(metrics.get("dollars", 0.0))

    def cells(self) -> list[str]:
        migrated = ", ".join(f"{t} {n}" for t, n in sorted(self.by_tier.items())) or "-"
        return [
            self.recipe,
            str(self.done),
            str(self.partial),
            str(self.untouched),
            f"{self.before - self.after}/{self.before}",
            migrated,
            str(self.after),
            str(self.regressions),
            str(self.review_lines),
            str(self.tokens),
            f"${self.dollars:.4g}",
        ]


COLUMNS = [
    "recipe", "repos done", "partial", "untouched", "occurrences migrated", "migrated by",
    "left", "regressions (rejected)", "review lines", "model tokens", "cost",
]  # fmt: skip


def recipe_rows(runs: Iterable[tuple[Mapping[str, float], Mapping[str, str]]]) -> list[RecipeRow]:
    """One row per recipe over instance runs' (metrics, tags)."""
    rows: dict[str, RecipeRow] = {}
    for metrics, tags in runs:
        recipe = tags.get("patchsmith.recipe")
        if recipe:
            rows.setdefault(recipe, RecipeRow(recipe)).add(metrics, tags)
    return [rows[k] for k in sorted(rows)]


def render(rows: list[RecipeRow]) -> Table:
    table = Table(title="refactoring recipes")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("recipe", "migrated by") else "right")
    for row in rows:
        table.add_row(*row.cells())
    return table


def markdown(rows: list[RecipeRow]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n### Refactoring recipes\n\n" + "\n".join(lines) + "\n"
