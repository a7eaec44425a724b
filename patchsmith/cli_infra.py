"""``patchsmith infra``: prepare a Prefect server for distributed campaigns.

    patchsmith infra setup [CAMPAIGN ...]   work pools, GPU slot limits, crash detection

It talks to the server ``PREFECT_API_URL`` names (a real one: the ephemeral API of
``patchsmith run`` keeps nothing between runs). See the README's "Scaling out".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from patchsmith.errors import PatchsmithError

infra_app = typer.Typer(no_args_is_help=True, help="Prepare a Prefect server (scaling out).")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


@infra_app.callback()
def _group() -> None:
    """A Prefect server for distributed campaigns: work pools, GPU slots, crash detection."""


@infra_app.command("setup")
def setup_cmd(
    campaigns: Annotated[
        list[Path] | None,
        typer.Argument(help="Campaign files whose gpu_pools get concurrency limits."),
    ] = None,
    prefect_yaml: Annotated[
        Path, typer.Option(help="The deployments file whose work pools to create.")
    ] = Path("prefect.yaml"),
    crash_after: Annotated[
        int,
        typer.Option(help="Seconds without a heartbeat after which a flow run is Crashed."),
    ] = 75,
) -> None:
    """Create (or update) the work pools, one `gpu-POOL` limit per GPU pool of the
    campaigns, and the automation that crashes flow runs whose worker died."""
    if not os.environ.get("PREFECT_API_URL"):
        err.print(
            "[red]error:[/red] infra setup configures a Prefect server: set PREFECT_API_URL "
            "(e.g. http://127.0.0.1:4200/api) to the server the workers use"
        )
        raise typer.Exit(2)
    from prefect.client.orchestration import get_client

    from patchsmith.config import load_campaign
    from patchsmith.infra import prefect_setup

    try:
        parsed = [load_campaign(c) for c in campaigns or []]
        pools = prefect_setup.yaml_pools(prefect_yaml)
        limits = prefect_setup.gpu_limits(parsed)
        with get_client(sync_client=True) as client:
            lines = prefect_setup.setup(
                client, pools=pools, limits=limits, crash_after_s=crash_after
            )
    except PatchsmithError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    for line in lines:
        out.print(line)
