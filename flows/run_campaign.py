"""Flow: run a whole campaign, instances in parallel with bounded concurrency.

Instances run as Prefect tasks, not sub-flows: a flow run costs seconds on the embedded
SQLite API, a task milliseconds (see bench/orchestration.py).

A stop (``sandbox.running.request_stop()``, from the CLI's Ctrl-C/SIGTERM handler) ends
each instance task Cancelled without an outcome; the flow then closes the campaign as
``interrupted`` and ends Cancelled itself. The flow only checks the flag: signal handlers
belong to the main thread of the process, which is the CLI's.
"""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

from prefect import flow, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from patchsmith.approval import gate
from patchsmith.domain import Instance, Outcome
from patchsmith.errors import Interrupted
from patchsmith.flows.common import (
    artifact_key,
    campaign_yaml,
    current_flow_run_id,
    interrupted_state,
    link_tracking_run,
    load_inputs,
    publish_summary,
)
from patchsmith.flows.distributed import DEFAULT_DEPLOYMENT, FanOut
from patchsmith.infra.sandbox import running
from patchsmith.tasks.campaign import Session, close_session, open_session, run_instance
from patchsmith.tasks.steps import PREFECT_STEPS


@task(
    name="repair-instance",
    cache_policy=NO_CACHE,
    persist_result=False,
    task_run_name="repair {instance.instance_id}",
)
def repair_instance_task(session: Session, instance: Instance) -> Outcome | State[Any]:
    """One instance inside a campaign (errors are recorded, then re-raised; a stop ends
    the task Cancelled)."""
    try:
        return run_instance(session, instance, PREFECT_STEPS)
    except Interrupted as exc:
        return interrupted_state(str(exc))


# Prefect 3.8's TaskRunner generic is invariant, so mypy rejects its own runner here.
@flow(name="run_campaign", task_runner=ThreadPoolTaskRunner(max_workers=32))  # type: ignore[arg-type]
def run_campaign(
    campaign_file: str,
    out: str | None = None,
    concurrency: int | None = None,
    redo: bool = False,
    tracking: bool = True,
    distributed: bool = False,
    deployment: str = DEFAULT_DEPLOYMENT,
    batch: int = 1,
) -> dict[str, Any] | State[Any]:
    """Repair every instance of a campaign file; write outcomes, patches and a summary.

    ``distributed``: each instance runs as a flow run of ``deployment`` on whichever worker
    of its work pool picks it up (see ``flows/distributed.py``); needs a Prefect server and
    a store every worker reaches (``PATCHSMITH_DB_URL``); ``batch`` instances share one flow
    run there. Otherwise instances run here, as tasks in this flow run.
    Returns the result, or a Cancelled state (with the same result as data) after a stop.
    """
    campaign, home, out_dir = load_inputs(campaign_file, out)
    session = open_session(
        campaign,
        home=home,
        out_dir=out_dir,
        concurrency=concurrency,
        redo=redo,
        tracking=tracking,
        flow_run_id=current_flow_run_id(),
    )
    link_tracking_run(campaign, session.tracker.run_url(session.campaign_run_id))
    total = len(campaign.instances)
    progress = cast(
        UUID,
        create_progress_artifact(
            0.0, key=f"{artifact_key(campaign.name)}-progress", description="instances finished"
        ),
    )
    if distributed:
        FanOut(
            session,
            campaign_file,
            deployment=deployment,
            tracking=tracking,
            batch=batch,
            on_finished=lambda done: update_progress_artifact(progress, 100.0 * done / total),
        ).run()
    else:
        futures = [repair_instance_task.submit(session, inst) for inst in campaign.instances]
        for done, _future in enumerate(as_completed(futures), start=1):
            update_progress_artifact(progress, 100.0 * done / total)
    stopped = running.stop_requested()
    outcomes, status = close_session(session, campaign_yaml(campaign), interrupted=stopped)
    publish_summary(campaign, outcomes)
    result: dict[str, Any] = {
        "campaign": campaign.name,
        "status": status,
        "out_dir": str(out_dir),
        "outcomes": [o.model_dump(mode="json") for o in outcomes],
    }
    if not stopped:  # held changesets wait for a person (approval: required), then publish
        result["review"] = gate(campaign, out_dir)
    if stopped:
        return interrupted_state(
            f"interrupted: {len(outcomes)}/{total} instance(s) finished; run again to resume",
            result,
        )
    return result
