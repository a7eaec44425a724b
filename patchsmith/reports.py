"""Product reports read back from MLflow: one campaign, or several side by side.

``campaign_report`` reads the instance runs of a campaign (the children of its latest
campaign run, by default) and adds them up overall, per tier and per model configuration
(model id + adapters + quantization; tier 0 is ``search/mutation``). ``render_table`` and
``to_markdown`` present a report; ``compare`` puts experiments side by side and draws a
chart (``reports_chart``). ``Report`` and ``Row`` are in ``report_types``, which both
use. Metric definitions: ``patchsmith.infra.tracking_metrics``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from patchsmith.errors import ConfigError
from patchsmith.infra.tracking_metrics import InstanceRecord, Stats, summarize
from patchsmith.report_recipes import markdown as recipe_markdown
from patchsmith.report_recipes import recipe_rows
from patchsmith.report_types import Report, Row
from patchsmith.reports_chart import draw

__all__ = ["Report", "Row", "campaign_report", "compare", "render_table", "to_markdown"]


def _client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient  # heavy import, only when a report is asked for

    return MlflowClient(tracking_uri)


def _search(client: Any, exp_id: str, filter_string: str, order: list[str] | None = None) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [exp_id], filter_string=filter_string, max_results=1000, order_by=order,
            page_token=token,
        )  # fmt: skip
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def campaign_report(
    tracking_uri: str, experiment: str, *, campaign_run_id: str | None = None
) -> Report:
    """Report on an experiment's latest campaign run (or ``campaign_run_id``).

    With no campaign run in the experiment, every instance run in it is counted.
    """
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ConfigError(
            f"no experiment {experiment!r} in {tracking_uri} (experiments there: "
            f"{', '.join(names) or 'none'}); the experiment is named after the campaign"
        )
    exp_id = exp.experiment_id
    if campaign_run_id is None:
        latest = client.search_runs(
            [exp_id], "tags.`patchsmith.kind` = 'campaign'", max_results=1,
            order_by=["attributes.start_time DESC"],
        )  # fmt: skip
        campaign_run_id = latest[0].info.run_id if latest else None
    if campaign_run_id is not None:
        runs = _search(client, exp_id, f"tags.mlflow.parentRunId = '{campaign_run_id}'")
    else:
        runs = _search(client, exp_id, "tags.`patchsmith.kind` = 'instance'")
    records = [
        InstanceRecord.from_run(r.info.run_id, r.data.metrics, r.data.tags, r.data.params)
        for r in runs
    ]
    summary = summarize(records)
    rows = [Row("all", experiment, summary.overall)]
    rows += [Row("tier", t, s, tier=t) for t, s in sorted(summary.by_tier.items())]
    rows += [
        Row("config", label, s, tier=summary.config_tier[label])
        for label, s in sorted(summary.by_config.items(), key=lambda kv: summary.config_tier[kv[0]])
    ]
    recipes = recipe_rows((r.data.metrics, r.data.tags) for r in runs)
    return Report(experiment, campaign_run_id, rows, summary.unresolved, recipes)


# ------------------------------------------------------------------ presentation


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def _usd(stats: Stats, value: float | None) -> str:
    if stats.cost_unknown:
        return "unknown"
    return "-" if value is None else f"${value:.4g}"


COLUMNS = [
    "scope", "name", "instances", "resolved", "resolved rate", "patch correctness",
    "regressions /1k changes", "well-formed edits", "attempts", "attempts to success",
    "$ / success", "tokens / success", "model CPU-s / success", "GPU-h / success",
    "share solved",
]  # fmt: skip


def _cells(row: Row, overall: Stats) -> list[str]:
    s = row.stats
    share = s.resolved / overall.resolved if overall.resolved else None
    return [
        row.scope,
        row.name,
        str(s.instances),
        str(s.resolved),
        _pct(s.resolved_rate),
        _pct(s.patch_correctness_rate),
        _num(s.regressions_per_1000_changes, "{:.1f}"),
        _pct(s.well_formed_edit_rate),
        str(s.attempts),
        _num(s.mean_attempts_to_success, "{:.1f}"),
        _usd(s, s.cost_per_success_usd),
        _num(s.tokens_per_success, "{:.0f}"),
        _num(s.cpu_seconds_per_success, "{:.1f}"),
        _num(s.gpu_hours_per_success, "{:.4f}"),
        _pct(share),
    ]


def render_table(report: Report) -> Table:
    """The report as a rich Table: everything, then tiers, then model configurations."""
    table = Table(
        title=f"patchsmith report — {report.experiment}", caption=report.unresolved_text() or None
    )
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("scope", "name") else "right")
    scope = None
    for row in report.rows:
        if scope is not None and row.scope != scope:
            table.add_section()
        scope = row.scope
        table.add_row(*_cells(row, report.overall))
    return table


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(report: Report) -> str:
    """The report as Markdown (a heading, a one-line summary, a table)."""
    o = report.overall
    head = (
        f"## patchsmith report — {report.experiment}\n\n"
        f"{o.resolved}/{o.instances} instances resolved ({_pct(o.resolved_rate)}); patch "
        f"correctness {_pct(o.patch_correctness_rate)}; cost per success "
        f"{_usd(o, o.cost_per_success_usd)}; campaign run `{report.campaign_run_id}`.\n\n"
    )
    if report.unresolved:
        head += report.unresolved_text().capitalize() + ".\n\n"
    body = head + _md_table(COLUMNS, [_cells(r, o) for r in report.rows]) + "\n"
    return body + (recipe_markdown(report.recipes) if report.recipes else "")


def compare(tracking_uri: str, experiments: list[str], chart: Path) -> tuple[str, Path]:
    """Experiments side by side (Markdown) and a PNG chart of correctness vs cost."""
    reports = [campaign_report(tracking_uri, name) for name in experiments]
    rows = [
        [rep.experiment, *_cells(row, rep.overall)]
        for rep in reports
        for row in rep.compared_rows()
    ]
    md = "## patchsmith comparison\n\n" + _md_table(["experiment", *COLUMNS], rows) + "\n"
    return md, draw(reports, chart)
