"""``patchsmith publish`` and ``patchsmith run --dry-run``: the refactoring side of the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from patchsmith.config import Campaign
from patchsmith.errors import PatchsmithError
from patchsmith.publish import AUTHOR

console = Console(stderr=True)
out = Console()


def dry_run(campaign: Campaign) -> None:
    """What would run, with the goal occurrences each refactoring starts from; nothing is
    written and nothing of the repositories runs (occurrences are read in process, from
    the working tree, without following symlinks)."""
    from patchsmith.tasks.localize import editable
    from patchsmith.tasks.refactor.files import read_tree
    from patchsmith.tasks.refactor.goal import scan
    from patchsmith.tasks.refactor.plan import where

    table = Table(title=f"{campaign.name}: dry run ({len(campaign.instances)} instance(s))")
    for column in ("instance", "intent", "repo", "tiers", "goal occurrences"):
        table.add_column(column, overflow="fold")
    for inst in campaign.instances:
        skipped = campaign.tiers_for(inst)
        tiers = ", ".join(t.name for t in campaign.tiers if t.name not in skipped)
        recipe = campaign.recipe_for(inst)
        found = "-"
        if recipe is not None and inst.base_commit is None and Path(inst.repo).is_dir():
            texts = read_tree(Path(inst.repo), lambda rel, i=inst: editable(i, rel))  # type: ignore[misc]
            occ = scan(texts, recipe.goal)
            found = f"{len(occ)}" + (f": {where(occ, 4)}" if occ else "")
        elif recipe is not None:
            found = "counted when it runs (a commit or a URL)"
        intent = inst.intent.value + (f" ({recipe.name})" if recipe else "")
        table.add_row(inst.instance_id, intent, inst.repo, tiers or "none", found)
    out.print(table)
    out.print("dry run: nothing was written; `patchsmith run` without --dry-run runs it.")


def publish_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run's output directory (has changesets/).")],
    branch: Annotated[
        str | None, typer.Option(help="Branch name (default: patchsmith/RECIPE).")
    ] = None,
    remote: Annotated[
        str | None, typer.Option(help="Push the branch here (a URL or path of a git remote).")
    ] = None,
    include_review: Annotated[
        bool, typer.Option(help="Also publish changesets a business rule holds for review.")
    ] = False,
    partial: Annotated[bool, typer.Option(help="Publish partially done refactorings too.")] = True,
    author: Annotated[str, typer.Option(help="Commit author, 'Name <email>'.")] = AUTHOR,
) -> None:
    """Turn a run's verified changesets into a branch and a commit in a clone of each
    source repository (RUN_DIR/publish/ID; the source is never touched), and push it
    when --remote is given."""
    from patchsmith.infra.settings import configure
    from patchsmith.publish import publish

    configure()
    try:
        results = publish(
            run_dir, branch=branch, remote=remote, include_review=include_review,
            author=author, partial=partial,
        )  # fmt: skip
    except PatchsmithError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    table = Table(title=f"publish {run_dir}")
    for column in ("instance", "result", "clone"):
        table.add_column(column, overflow="fold")
    for r in results:
        table.add_row(r.instance_id, r.note, str(r.clone or "-"))
    out.print(table)
    if any(r.note.startswith("failed") for r in results):
        raise typer.Exit(1)
