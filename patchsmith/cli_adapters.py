"""``patchsmith adapters …``: register, list, show and remove LoRA adapters.

The registry lives in the patchsmith store (``$PATCHSMITH_DB_URL``, else the SQLite file
under ``$PATCHSMITH_HOME``)::

    patchsmith adapters register runs/fix-py --name fix-py --version 3 --kind functional
    patchsmith adapters list --kind guardrail
    patchsmith adapters show fix-py@3
    patchsmith adapters remove fix-py@3

A campaign tier then names it as ``adapters: [fix-py@3]`` (or ``critic: {adapter: ...}``
for a guardrail adapter). Exit code 2 on bad input, with a message saying what to do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from patchsmith.errors import PatchsmithError

if TYPE_CHECKING:  # imported by the commands: the store's SQLAlchemy and Alembic cost ~1 s,
    from patchsmith.infra.store import Store  # which every other command (run first) pays

adapters_app = typer.Typer(no_args_is_help=True, help="LoRA adapter registry.")
_out = Console()


@adapters_app.callback()
def _group() -> None:
    """LoRA adapter registry: functional adapters edit code, guardrail adapters back critics."""


@contextmanager
def _store() -> Iterator[Store]:
    from patchsmith.infra.store import Store

    try:
        with Store.open() as store:
            yield store
    except PatchsmithError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@adapters_app.command("register")
def register(
    source: Annotated[str, typer.Argument(help="Adapter directory (peft) or a URI.")],
    name: Annotated[str, typer.Option(help="Adapter name.")],
    version: Annotated[str, typer.Option(help="Version (immutable once registered).")],
    kind: Annotated[str, typer.Option(help="functional (edits) or guardrail (critic).")],
    base_model: Annotated[
        str | None, typer.Option(help="Base model (default: from adapter_config.json).")
    ] = None,
    rank: Annotated[int | None, typer.Option(help="LoRA rank (default: from the config).")] = None,
    target_modules: Annotated[
        str | None, typer.Option(help="Comma-separated target modules (default: from config).")
    ] = None,
    sha256: Annotated[
        str | None, typer.Option(help="sha256 of the files (required for a URI source).")
    ] = None,
    notes: Annotated[str, typer.Option(help="Free text: training run, data, caveats.")] = "",
) -> None:
    """Register SOURCE as NAME@VERSION and print its record as JSON."""
    targets = [t.strip() for t in (target_modules or "").split(",") if t.strip()] or None
    from patchsmith.adapters import registry

    with _store() as store:
        record = registry.register(
            store,
            source,
            name=name,
            version=version,
            kind=kind,
            base_model=base_model,
            rank=rank,
            target_modules=targets,
            sha256=sha256,
            notes=notes,
        )
    typer.echo(record.model_dump_json(indent=2))


@adapters_app.command("list")
def list_(
    kind: Annotated[str | None, typer.Option(help="Only functional or guardrail.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """List registered adapters, by name then registration time."""
    from patchsmith.adapters import registry

    with _store() as store:
        found = registry.records(store, kind)
    if as_json:
        for r in found:
            typer.echo(r.model_dump_json())
        return
    table = Table(title="LoRA adapters")
    for col in ("adapter", "kind", "base model", "rank", "sha256", "registered", "notes"):
        table.add_column(col)
    for r in found:
        table.add_row(
            r.ref,
            r.kind,
            r.base_model,
            str(r.rank or ""),
            r.sha256[:12],
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r.registered_at)),
            r.notes[:40],
        )
    _out.print(table if found else "no adapters registered (patchsmith adapters register …)")


@adapters_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION, or NAME for the latest version.")],
) -> None:
    """Print one adapter's record as JSON."""
    from patchsmith.adapters import registry

    with _store() as store:
        record = registry.resolve(store, ref)
    typer.echo(json.dumps(record.model_dump(mode="json"), indent=2))


@adapters_app.command("remove")
def remove(ref: Annotated[str, typer.Argument(help="NAME@VERSION to forget.")]) -> None:
    """Forget one adapter version (its files are left alone)."""
    from patchsmith.adapters import registry

    with _store() as store:
        record = registry.remove(store, ref)
    typer.echo(f"removed {record.ref} ({record.kind}, sha256 {record.sha256[:12]}…)")
