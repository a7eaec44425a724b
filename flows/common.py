"""Pieces both flows share: loading inputs and publishing the summary to the Prefect UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.runtime import flow_run
from prefect.states import Cancelled, State

from patchsmith.config import Campaign, load_campaign
from patchsmith.domain import Outcome
from patchsmith.infra.settings import configure
from patchsmith.outputs import summary_markdown, summary_rows


def load_inputs(campaign_file: str, out: str | None) -> tuple[Campaign, Path, Path]:
    """Validate the campaign (before any work) and settle the data and output dirs."""
    home = configure()
    campaign = load_campaign(campaign_file)
    out_dir = Path(out) if out else home / "runs" / campaign.name
    out_dir.mkdir(parents=True, exist_ok=True)
    return campaign, home, out_dir.resolve()


def current_flow_run_id() -> str | None:
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None


def artifact_key(name: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "campaign"


def publish_summary(campaign: Campaign, outcomes: list[Outcome]) -> None:
    """Markdown + table artifacts with the campaign summary."""
    key = artifact_key(campaign.name)
    create_markdown_artifact(
        markdown=summary_markdown(campaign.name, outcomes),
        key=f"{key}-summary",
        description=f"patchsmith campaign {campaign.name}",
    )
    create_table_artifact(
        table=summary_rows(outcomes), key=f"{key}-instances", description="Per-instance outcomes"
    )


def interrupted_state(message: str, data: Any = None) -> State[Any]:
    """The state a flow or task run ends in after a stop (Ctrl-C, SIGTERM): Cancelled."""
    return Cancelled(message=message, data=data)


def campaign_yaml(campaign: Campaign) -> str:
    return yaml.safe_dump(campaign.model_dump(mode="json"), sort_keys=False)


def link_tracking_run(campaign: Campaign, url: str | None) -> None:
    """A Prefect link artifact to the campaign's MLflow run, when a UI address is known."""
    if url:
        create_link_artifact(
            link=url,
            link_text=f"MLflow run of {campaign.name}",
            key=f"{artifact_key(campaign.name)}-mlflow",
            description="Campaign run in MLflow (params, metrics, traces)",
        )
