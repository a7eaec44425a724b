"""``patchsmith sandbox run``: run one command in a sandbox and print its ExecResult as JSON.

For debugging limits and isolation by hand::

    patchsmith sandbox run --workspace /tmp/ws -- python -c "print('hi')"

Exit code 0 when the command ran (even if it failed: read ``exit_code`` in the JSON),
2 on bad input, 1 when the sandbox itself could not start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from patchsmith.domain import SandboxConfig
from patchsmith.errors import ConfigError, MissingExtra, SandboxStartError
from patchsmith.infra.sandbox import BACKENDS, get_sandbox

sandbox_app = typer.Typer(no_args_is_help=True, help="Run commands in the sandbox (debugging).")


@sandbox_app.callback()
def _group() -> None:
    """Run commands in the sandbox (debugging)."""


@sandbox_app.command(
    "run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def run(
    command: Annotated[list[str], typer.Argument(help="Command and its arguments, after --.")],
    workspace: Annotated[
        Path, typer.Option("--workspace", "-w", help="Directory the command runs in (writable).")
    ],
    backend: Annotated[
        str, typer.Option(help=f"auto, {', '.join(BACKENDS)} (auto = bwrap if installed).")
    ] = "auto",
    timeout: Annotated[float, typer.Option(help="Wall-clock limit in seconds.")] = 60.0,
    memory_mb: Annotated[int, typer.Option(help="Address-space limit in MiB.")] = 2048,
    max_procs: Annotated[int, typer.Option(help="Process/thread limit.")] = 256,
    output_kb: Annotated[int, typer.Option(help="KiB of stdout/stderr kept (tail).")] = 64,
) -> None:
    """Run COMMAND in WORKSPACE under the sandbox and print the result as JSON."""
    if not workspace.is_dir():
        typer.echo(
            f"error: workspace {workspace} is not a directory; create it first "
            "(mkdir -p DIR; as root also: chown 65534:65534 DIR so the sandbox can write)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        config = SandboxConfig(
            timeout_s=timeout, memory_mb=memory_mb, max_procs=max_procs, output_kb=output_kb
        )
        sandbox = get_sandbox(backend)
    except ConfigError as exc:
        typer.echo(f"error: {exc} (pass it with --backend)", err=True)
        raise typer.Exit(2) from exc
    except ValueError as exc:  # pydantic: a limit out of range
        typer.echo(f"error: invalid limit: {exc}", err=True)
        raise typer.Exit(2) from exc
    except (ImportError, MissingExtra) as exc:
        typer.echo(f"error: backend {backend!r} is not available: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        result = sandbox.run(workspace.resolve(), command, config)
    except SandboxStartError as exc:
        typer.echo(f"error: the sandbox could not start: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(result.model_dump_json(indent=2))
