"""``patchsmith env``: build, list and remove the per-repository environments.

    patchsmith env build CAMPAIGN    build/check every distinct environment of a campaign
    patchsmith env list              the built envs under $PATCHSMITH_HOME/envs
    patchsmith env rm KEY | --all    remove one env (by key or unique prefix), or all

``build`` prints one line per distinct environment (built / cached / failed / ok, seconds)
and one per instance whose test command cannot start in it; it exits 1 when any failed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from patchsmith.errors import PatchsmithError

env_app = typer.Typer(no_args_is_help=True, help="Per-repository environments (build, list, rm).")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


@env_app.callback()
def _group() -> None:
    """Per-repository environments: built once per dependency-file hash, then reused."""


def _describe(kind: str, python: str, install: list[str]) -> str:
    if kind == "default":
        return "patchsmith's interpreter"
    if kind == "python":
        return python
    return f"{python}  install {' '.join(install)}"


@env_app.command("build")
def build(campaign: Annotated[Path, typer.Argument(help="Campaign YAML file.")]) -> None:
    """Build (or check) every distinct environment of CAMPAIGN, one line of progress each."""
    from patchsmith.config import load_campaign
    from patchsmith.infra.envs import EnvError
    from patchsmith.infra.sandbox import get_sandbox
    from patchsmith.infra.settings import configure
    from patchsmith.infra.workspace import WorkspaceManager
    from patchsmith.tasks.repair import RepairContext, check_environment, environment
    from patchsmith.tasks.repair import prepare_pristine as pristine_of

    home = configure()
    try:
        parsed = load_campaign(campaign)
        ctx = RepairContext(
            campaign=parsed,
            sandbox=get_sandbox(parsed.sandbox.backend),
            workspaces=WorkspaceManager(home / "workspaces"),
        )
    except PatchsmithError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    seen: dict[str, str] = {}
    failed = 0
    for inst in parsed.instances:
        t0 = time.monotonic()
        pristine = pristine_of(ctx, inst)
        env = parsed.environment_for(inst)
        try:
            resolved = environment(ctx, inst, pristine)
        except EnvError as exc:
            failed += 1
            out.print(f"[red]failed[/red]  {inst.instance_id}  {time.monotonic() - t0:.1f}s")
            out.print(str(exc), markup=False)
            continue
        ident = resolved.key or f"{resolved.kind}:{resolved.python}"
        if ident not in seen:
            seen[ident] = inst.instance_id
            status = {True: "built", False: "cached"}[resolved.built] if resolved.key else "ok"
            python = str(resolved.record.get("python") or resolved.python)
            what = _describe(resolved.kind, python, list(env.install))
            key = (resolved.key or resolved.kind)[:12]
            out.print(
                f"[green]{status:<7}[/green] {key:<12} {time.monotonic() - t0:6.1f}s  {what}"
                f"  (first used by {inst.instance_id})"
            )
        problem = check_environment(ctx, inst, pristine)
        if problem:
            failed += 1
            out.print("[red]failed[/red] ", end="")
            out.print(problem, markup=False)
    total = len(seen)
    out.print(f"{total} environment(s), {failed} problem(s)")
    if failed:
        raise typer.Exit(1)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


@env_app.command("list")
def list_cmd() -> None:
    """The built environments: key, python, install args, size, built at, used by."""
    from patchsmith.infra.envs_store import list_envs
    from patchsmith.infra.settings import configure

    root = configure() / "envs"
    table = Table(title=f"environments in {root}")
    for col in ("key", "python", "install", "size", "built at", "used by"):
        table.add_column(col, overflow="fold")
    rows = list_envs(root)
    for row in rows:
        used = row["used_by"]
        table.add_row(
            row["key"],
            row["python"] if row["complete"] else "[yellow]incomplete[/yellow]",
            " ".join(row["install"]),
            _size(row["size"]),
            row["built_at"],
            ", ".join(used[-3:]) + (f" (+{len(used) - 3})" if len(used) > 3 else ""),
        )
    (out if out.is_terminal else Console(width=200)).print(table)
    if not rows:
        err.print("no environments yet: `patchsmith env build CAMPAIGN` builds them")


@env_app.command("rm")
def rm(
    key: Annotated[str | None, typer.Argument(help="Env key (or a unique prefix).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Remove every env and the tools.")] = False,
) -> None:
    """Remove one environment (the next run rebuilds it), or all of them with --all."""
    from patchsmith.infra.envs_store import list_envs, remove_all, remove_env
    from patchsmith.infra.settings import configure

    root = configure() / "envs"
    if all_ == (key is not None):
        err.print("[red]error:[/red] give a KEY or --all (one of them)")
        raise typer.Exit(2)
    if all_:
        out.print(f"removed {remove_all(root)} environment(s)")
        return
    assert key is not None
    matches = [e["key"] for e in list_envs(root) if e["key"].startswith(key)]
    if len(matches) != 1:
        why = "no environment" if not matches else f"{len(matches)} environments"
        err.print(f"[red]error:[/red] {why} match {key!r}; see `patchsmith env list`")
        raise typer.Exit(2)
    remove_env(root, matches[0])
    out.print(f"removed {matches[0]}")
