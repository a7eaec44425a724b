"""A report's rows: what ``reports`` reads back from MLflow and ``reports_chart`` draws.

Here, below both, so imports go one way: ``reports`` → ``reports_chart`` → ``report_types``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from patchsmith.infra.tracking_metrics import Stats
from patchsmith.report_recipes import RecipeRow

__all__ = ["Report", "Row"]


@dataclass
class Row:
    """One line of a report: everything (``all``), a tier, or a model configuration."""

    scope: str  # "all" | "tier" | "config"
    name: str
    stats: Stats
    tier: str | None = None


@dataclass
class Report:
    """A campaign's product metrics."""

    experiment: str
    campaign_run_id: str | None
    rows: list[Row] = field(default_factory=list)
    unresolved: dict[str, int] = field(default_factory=dict)
    """Unresolved instances grouped by why they ended (budget, exhausted, ...)."""
    recipes: list[RecipeRow] = field(default_factory=list)
    """Refactoring campaigns: per recipe, repositories done / partial / untouched."""

    def unresolved_text(self) -> str:
        """``unresolved by reason: budget 3, exhausted 1`` ('' when none)."""
        if not self.unresolved:
            return ""
        parts = sorted(self.unresolved.items(), key=lambda kv: (-kv[1], kv[0]))
        return "unresolved by reason: " + ", ".join(f"{k} {v}" for k, v in parts)

    @property
    def overall(self) -> Stats:
        return self.rows[0].stats

    def compared_rows(self) -> list[Row]:
        """The rows a comparison of experiments shows: everything and each configuration."""
        return [row for row in self.rows if row.scope in ("all", "config")]
