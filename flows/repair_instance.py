"""Flow: repair one instance of a campaign (the deployment users trigger from the UI)."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import State

from patchsmith.domain import Outcome
from patchsmith.errors import ConfigError, Interrupted
from patchsmith.flows.common import (
    campaign_yaml,
    current_flow_run_id,
    interrupted_state,
    load_inputs,
    publish_summary,
)
from patchsmith.infra.sandbox import running
from patchsmith.tasks.campaign import close_session, open_session, run_instance
from patchsmith.tasks.steps import PREFECT_STEPS


@flow(name="repair_instance")
def repair_instance(
    campaign_file: str,
    instance_id: str,
    out: str | None = None,
    redo: bool = False,
    tracking: bool = True,
    campaign_id: str | None = None,
    campaign_run_id: str | None = None,
    more_instance_ids: list[str] | None = None,
) -> dict[str, Any] | State[Any]:
    """Repair the instance ``instance_id`` of ``campaign_file`` (Cancelled after a stop).

    ``campaign_id`` (+ ``campaign_run_id``, its MLflow run): record the instance under that
    campaign run of the store, as a distributed ``run_campaign`` asks its workers to;
    otherwise the instance gets a campaign run of its own. ``more_instance_ids``: repair
    these too, one after another, in this flow run (a distributed campaign's batch)."""
    campaign, home, out_dir = load_inputs(campaign_file, out)
    by_id = {i.instance_id: i for i in campaign.instances}
    wanted = [instance_id, *(more_instance_ids or [])]
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        raise ConfigError(
            f"{campaign_file}: no instance {', '.join(map(repr, unknown))}; known: "
            f"{', '.join(sorted(by_id))}"
        )
    session = open_session(
        campaign,
        home=home,
        out_dir=out_dir,
        redo=redo,
        tracking=tracking,
        flow_run_id=current_flow_run_id(),
        keep_outputs=True,  # update the campaign's outputs, do not replace them
        attach=(campaign_id, campaign_run_id) if campaign_id else None,
    )
    done: list[Outcome] = []
    failed: BaseException | None = None
    stopped: Interrupted | None = None
    try:
        for one in wanted:
            try:
                done.append(run_instance(session, by_id[one], PREFECT_STEPS))
            except Interrupted as exc:
                stopped = exc
                break
            except Exception as exc:  # recorded as its outcome; the batch goes on
                failed = exc
    finally:
        interrupted = running.stop_requested()
        outcomes, _ = close_session(session, campaign_yaml(campaign), interrupted=interrupted)
        if not session.attached:  # a parent flow publishes the campaign's summary
            publish_summary(campaign, outcomes)
    if stopped is not None:
        return interrupted_state(str(stopped))
    if failed is not None:
        raise failed  # the flow run fails, as the instance did (its outcome is recorded)
    if len(done) == 1:
        return done[0].model_dump(mode="json")
    return {"outcomes": [o.model_dump(mode="json") for o in done]}
