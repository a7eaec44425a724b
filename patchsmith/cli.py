"""The ``patchsmith`` command line.

Prefect, MLflow and the flows are imported inside the commands, after ``configure()`` has
pointed them at the data directory, so ``patchsmith --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from patchsmith.cli_adapters import adapters_app
from patchsmith.cli_sandbox import sandbox_app
from patchsmith.errors import PatchsmithError

app = typer.Typer(
    help="Code-repair and refactoring campaigns over many repositories, as Prefect flows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(sandbox_app, name="sandbox", help="Run commands in the sandbox (debugging).")
app.add_typer(adapters_app, name="adapters", help="The LoRA adapter registry.")
console = Console(stderr=True)
STATUS_STYLE = {"resolved": "green", "unresolved": "yellow", "error": "red", "running": "cyan"}


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


class LiveBoard:
    """A live table of instances, fed by progress events from the flow's threads."""

    def __init__(self, instance_ids: list[str]) -> None:
        self.rows: dict[str, dict[str, Any]] = {
            i: {"status": "queued", "attempts": 0, "tier": "", "note": ""} for i in instance_ids
        }
        self.lock = threading.Lock()

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        with self.lock:
            if event == "instance_started":
                self.rows[data["instance_id"]]["status"] = "running"
            elif event == "attempt":
                row = self.rows[data["instance_id"]]
                attempt = data["attempt"]
                row.update(attempts=attempt.number, tier=attempt.tier, note=attempt.status.value)
            elif event == "instance_done":
                o = data["outcome"]
                note = (o.reasons[-1] if o.reasons else "")[:70]
                self.rows[o.instance_id].update(
                    status=o.status.value, attempts=o.attempts, tier=o.tier or "", note=note
                )

    def render(self) -> Table:
        table = Table(title="patchsmith campaign", expand=False)
        for col in ("instance", "status", "tier", "attempts"):
            table.add_column(col, justify="right" if col == "attempts" else "left", no_wrap=True)
        table.add_column("note", no_wrap=True, overflow="ellipsis", max_width=60)
        with self.lock:
            done = sum(
                r["status"] in ("resolved", "unresolved", "error") for r in self.rows.values()
            )
            for iid, row in self.rows.items():
                style = STATUS_STYLE.get(row["status"], "dim")
                table.add_row(
                    iid,
                    f"[{style}]{row['status']}[/{style}]",
                    row["tier"],
                    str(row["attempts"]),
                    row["note"],
                )
        table.caption = f"{done}/{len(self.rows)} finished"
        return table


@app.command()
def run(
    campaign: Annotated[Path, typer.Argument(help="Campaign YAML file.")],
    out: Annotated[
        Path | None, typer.Option(help="Output dir (default: $PATCHSMITH_HOME/runs/NAME).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Instances in parallel.")] = None,
    redo: Annotated[
        bool, typer.Option(help="Redo instances already resolved in the store.")
    ] = False,
    tracking: Annotated[bool, typer.Option(help="Record runs in MLflow.")] = True,
) -> None:
    """Run a campaign: repair every instance, write outcomes.jsonl, predictions.jsonl, patches/."""
    from patchsmith.config import load_campaign
    from patchsmith.infra.settings import configure

    configure()
    try:
        parsed = load_campaign(campaign)
    except PatchsmithError as exc:
        raise fail(str(exc)) from None
    from patchsmith import progress
    from patchsmith.flows.run_campaign import run_campaign

    board = LiveBoard([i.instance_id for i in parsed.instances])
    unsubscribe = progress.subscribe(board)
    try:
        with Live(board.render(), console=console, refresh_per_second=4) as live:
            stop = threading.Event()

            def refresh() -> None:
                while not stop.wait(0.25):
                    live.update(board.render())

            ticker = threading.Thread(target=refresh, daemon=True)
            ticker.start()
            try:
                result = run_campaign(
                    str(campaign),
                    out=str(out) if out else None,
                    concurrency=concurrency,
                    redo=redo,
                    tracking=tracking,
                )
            finally:
                stop.set()
                ticker.join()
                live.update(board.render())
    except PatchsmithError as exc:
        raise fail(str(exc), 1) from None
    finally:
        unsubscribe()
    outcomes = result["outcomes"]
    resolved = sum(o["status"] == "resolved" for o in outcomes)
    errors = sum(o["status"] == "error" for o in outcomes)
    console.print(
        f"[bold]{resolved}/{len(outcomes)} resolved[/bold], {errors} error(s). "
        f"Outputs in {result['out_dir']} (outcomes.jsonl, predictions.jsonl, patches/, summary.md)"
    )
    if errors:
        raise typer.Exit(1)


@app.command()
def doctor() -> None:
    """Show what is available here (sandboxes, GPU, model servers, stores) and what it means."""
    from patchsmith.doctor import checks
    from patchsmith.infra.settings import configure

    configure()
    table = Table(title="patchsmith doctor")
    for col in ("component", "status", "meaning"):
        table.add_column(col)
    for name, ok, meaning in checks():
        table.add_row(name, "[green]ok[/green]" if ok else "[yellow]missing[/yellow]", meaning)
    Console().print(table)


def wide_console() -> Console:
    """stdout console; wide when not a terminal, so piped tables are not squeezed to 80."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def _tracking_uri() -> str:
    from patchsmith.infra.settings import configure

    home = configure()
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"


@app.command()
def report(
    campaign: Annotated[
        Path | None, typer.Argument(help="Campaign file (its name is the experiment).")
    ] = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment name.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Also write the report here.")] = None,
) -> None:
    """Product metrics of a campaign's latest run, per tier and per model configuration."""
    from patchsmith.config import load_campaign
    from patchsmith.reports import campaign_report, render_table, to_markdown

    if (campaign is None) == (experiment is None):
        raise fail("give a campaign file or --experiment NAME (one of them)")
    try:
        name = experiment or load_campaign(campaign).name  # type: ignore[arg-type]
        rep = campaign_report(_tracking_uri(), name)
    except PatchsmithError as exc:
        raise fail(str(exc)) from None
    wide_console().print(render_table(rep))
    if markdown:
        markdown.write_text(to_markdown(rep))
        console.print(f"Markdown written to {markdown}")


@app.command()
def compare(
    experiments: Annotated[list[str], typer.Argument(help="Two or more experiment names.")],
    chart: Annotated[Path, typer.Option(help="PNG chart to write.")] = Path("compare.png"),
    markdown: Annotated[Path | None, typer.Option(help="Also write the table here.")] = None,
) -> None:
    """Experiments side by side, with a chart of correctness rate vs cost per success."""
    from patchsmith.reports import compare as compare_experiments

    if len(experiments) < 2:
        raise fail("compare needs at least two experiment names")
    try:
        md, png = compare_experiments(_tracking_uri(), experiments, chart)
    except PatchsmithError as exc:
        raise fail(str(exc)) from None
    wide_console().print(md)
    if markdown:
        markdown.write_text(md)
    console.print(f"Chart written to {png}")


@app.command("sync-tracking")
def sync_tracking_cmd() -> None:
    """Push store records that never reached MLflow (e.g. it was down during a campaign)."""
    from patchsmith.infra.settings import configure
    from patchsmith.infra.store import Store
    from patchsmith.infra.tracking import make_tracker
    from patchsmith.tasks.sync import sync_tracking

    home = configure()
    try:
        result = sync_tracking(Store.open(home=home), make_tracker(True, home))
    except PatchsmithError as exc:
        raise fail(str(exc)) from None
    console.print(f"synced {result.synced} instance run(s), {result.failed} failed")
    if result.failed:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        app()
    except PatchsmithError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
