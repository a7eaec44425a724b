"""One campaign's shared state and the per-instance wrapper both flows use.

``run_instance`` is where provenance happens: it skips work already done (resume), hands
every attempt to the store and the tracker as it finishes, and records an outcome even when
the repair raised, before letting the error propagate so Prefect marks the task failed.
A stop (``Interrupted``) is the exception: the instance run is marked ``interrupted`` with
no outcome, so the next run resumes it after its recorded attempts.
"""

from __future__ import annotations

import dataclasses
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patchsmith import pyast
from patchsmith.adapters.resolve import resolve_tier
from patchsmith.config import Campaign, LLMTier
from patchsmith.domain import Attempt, Instance, Outcome, OutcomeStatus, config_hash
from patchsmith.errors import ConfigError, Interrupted
from patchsmith.infra import models
from patchsmith.infra.llm.config import ModelConfig
from patchsmith.infra.sandbox import get_sandbox, resolve_backend, running
from patchsmith.infra.store import Store
from patchsmith.infra.tracking import Tracker, make_tracker
from patchsmith.infra.workspace import WorkspaceManager
from patchsmith.outputs import OutputWriter
from patchsmith.progress import emit
from patchsmith.tasks.llm.models import warm_up
from patchsmith.tasks.llm.transcript import transcript
from patchsmith.tasks.repair import DIRECT, RepairContext, RepairError, Steps, repair
from patchsmith.tasks.slots import Slots


def run_params(campaign: Campaign) -> dict[str, Any]:
    """Instance-run params beyond the campaign's own (which the tracker copies on)."""
    return {"sandbox_backend_resolved": resolve_backend(campaign.sandbox.backend)}


@dataclass
class Session:
    """What the instances of one campaign run share."""

    campaign: Campaign
    ctx: RepairContext
    store: Store
    tracker: Tracker
    writer: OutputWriter
    campaign_id: str
    campaign_run_id: str | None
    redo: bool = False
    flow_run_id: str | None = None
    slots: Slots = field(default_factory=lambda: Slots(1))
    warming: list[threading.Thread] = field(default_factory=list)
    attached: bool = False
    """The campaign run belongs to a parent flow (distributed mode): this session adds
    instance runs to it and leaves finishing it to the parent."""


def open_session(
    campaign: Campaign,
    *,
    home: Path,
    out_dir: Path,
    concurrency: int | None = None,
    redo: bool = False,
    tracking: bool = True,
    flow_run_id: str | None = None,
    store: Store | None = None,
    keep_outputs: bool = False,
    attach: tuple[str, str | None] | None = None,
) -> Session:
    """Open the store and tracker, start the campaign records, prepare the output dir.

    ``attach``: the (store, MLflow) ids of a campaign run a parent flow started; this
    session then records its instance runs under them instead of starting a campaign run.
    A catalog model that is not installed stops it here, before any instance starts."""
    pyast.install()  # instances parse code in parallel threads from here on
    models.require_all(m.model for m in campaign.model_configs() if m.backend == "hf")
    store = store or Store.open(home=home)
    tracker = make_tracker(tracking, home)
    if attach is None:
        cfg = campaign.model_dump(mode="json")
        campaign_id = store.start_campaign(campaign, config=cfg, flow_run_id=flow_run_id)
        run_id = tracker.start_campaign(
            campaign, config_hash=config_hash(campaign), flow_run_id=flow_run_id
        )
    else:
        campaign_id, run_id = attach
        store.campaign(campaign_id)  # fails with the reason when the store does not have it
        tracker.attach_campaign(run_id, campaign, config_hash=config_hash(campaign))
    ctx = RepairContext(
        campaign=campaign,
        sandbox=get_sandbox(campaign.sandbox.backend),
        workspaces=WorkspaceManager(
            home / "workspaces", disk_mb=campaign.sandbox.disk_mb, inodes=campaign.sandbox.inodes
        ),
        store=store,
    )
    return Session(
        campaign=campaign,
        ctx=ctx,
        store=store,
        tracker=tracker,
        writer=OutputWriter(out_dir, keep_existing=keep_outputs),
        campaign_id=campaign_id,
        campaign_run_id=run_id,
        redo=redo,
        flow_run_id=flow_run_id,
        slots=Slots(concurrency or campaign.concurrency),
        warming=warm_up(_later_models(campaign, store)),
        attached=attach is not None,
    )


def _later_models(campaign: Campaign, store: Store) -> list[ModelConfig]:
    """The models of the LLM tiers after the first, as their generators will ask for them
    (with adapters resolved): loading them can overlap the cheaper tiers. A tier whose
    adapters do not resolve is left out; it reports that itself when it starts."""
    configs: list[ModelConfig] = []
    for tier in campaign.tiers[1:]:
        if not isinstance(tier, LLMTier):
            continue
        try:
            models = resolve_tier(tier, store)
        except ConfigError:
            continue
        configs.append(models.generator)
        if models.critic is not None:
            configs.append(models.critic)
    return configs


def work_key(session: Session, instance: Instance) -> str:
    """Resume key: same instance, same source content, same effective config ⇒ same work."""
    source = session.ctx.workspaces.fingerprint(instance)
    return config_hash(session.campaign.instance_key(instance), source)


def run_instance(session: Session, instance: Instance, steps: Steps = DIRECT) -> Outcome:
    """Repair one instance with full provenance; skip it when already done (resume)."""
    key = work_key(session, instance)
    if not session.redo:
        done = session.store.find_outcome(key)
        # An error (e.g. an infrastructure fault) is not "done": a re-run tries again.
        if done is not None and done.status != OutcomeStatus.error:
            outcome = done.model_copy(
                update={"reasons": [*done.reasons, "reused the stored outcome (use --redo)"]}
            )
            outcome = session.writer.add(outcome, instance)
            emit("instance_done", outcome=outcome, skipped=True)
            return outcome
    with session.slots.hold():
        if running.stop_requested():
            raise Interrupted(f"{instance.instance_id}: not started, the campaign is stopping")
        return _run_fresh(session, instance, key, steps)


def _run_fresh(session: Session, instance: Instance, key: str, steps: Steps) -> Outcome:
    store, tracker = session.store, session.tracker
    prior = [] if session.redo else store.attempts_for_key(key)
    run_id = store.start_instance(session.campaign_id, instance, key)
    ml_run = tracker.start_instance(
        session.campaign_run_id,
        instance,
        key=key,
        params=run_params(session.campaign),
        flow_run_id=session.flow_run_id,
    )
    emit("instance_started", instance_id=instance.instance_id)

    def on_attempt(attempt: Attempt) -> None:
        store.record_attempt(run_id, attempt)
        if attempt.usage.prompt_tokens or attempt.usage.completion_tokens:
            model = str(attempt.model.get("id") or attempt.generator)
            tracker.model_call(
                ml_run, model=model, usage=attempt.usage,
                attributes={"attempt": attempt.number, "tier": attempt.tier},
                transcript=transcript(store, attempt.model),
            )  # fmt: skip
        tracker.log_attempt(ml_run, attempt)
        emit("attempt", instance_id=instance.instance_id, attempt=attempt)

    def trace(name: str, attrs: dict[str, Any]) -> AbstractContextManager[Any]:
        return tracker.step(ml_run, name, attributes=attrs)

    ctx = dataclasses.replace(
        session.ctx, on_attempt=on_attempt, trace=trace, next_tier=session.slots.requeue
    )
    error: BaseException | None = None
    try:
        with tracker.step(ml_run, "repair", attributes={"instance_id": instance.instance_id}):
            outcome = repair(instance, ctx, steps, prior=prior)
    except Interrupted:
        try:
            store.interrupt_instance(run_id)
        finally:
            tracker.abort_instance(ml_run)
            emit("instance_interrupted", instance_id=instance.instance_id)
        raise
    except RepairError as exc:
        error, outcome = exc.__cause__ or exc, exc.outcome
    except Exception as exc:
        error = exc
        outcome = Outcome(
            instance_id=instance.instance_id,
            status=OutcomeStatus.error,
            reasons=[f"{type(exc).__name__}: {exc}"],
        )
    try:
        store.record_outcome(run_id, key, outcome)
    finally:
        # Even if the store refused, the outputs and the tracking run are completed.
        outcome = session.writer.add(outcome, instance)
        tracker.end_instance(ml_run, outcome, logs={})
        emit("instance_done", outcome=outcome, skipped=False)
    if ml_run is not None and not tracker.failed:
        store.mark_tracking_synced(run_id, ml_run)
    if error is not None:
        raise error
    return outcome


def campaign_status(outcomes: list[Outcome], *, interrupted: bool = False) -> str:
    """``interrupted`` after a stop, ``failed`` when an instance ended in an error, else
    ``completed``."""
    if interrupted:
        return "interrupted"
    return "failed" if any(o.status == OutcomeStatus.error for o in outcomes) else "completed"


def close_session(
    session: Session, config_yaml: str, *, interrupted: bool = False
) -> tuple[list[Outcome], str]:
    """Finish the campaign records and write the summary; returns outcomes and status.

    ``interrupted``: a stop was requested; the outcomes are those of finished instances, the
    tracking run ends KILLED and the store's campaign run ``interrupted``.
    """
    if not interrupted:  # a model still loading: let it finish (a stop does not wait)
        for thread in session.warming:
            thread.join()
    outcomes = session.writer.outcomes()
    status = campaign_status(outcomes, interrupted=interrupted)
    session.writer.write_summary(session.campaign.name)
    if session.attached:  # the parent flow finishes the campaign run
        return outcomes, status
    session.tracker.end_campaign(
        session.campaign_run_id, outcomes, config_yaml=config_yaml, interrupted=interrupted
    )
    session.store.finish_campaign(session.campaign_id, status)
    return outcomes, status
