"""Distributed mode: each instance is a flow run of the ``repair-instance`` deployment.

``run_campaign(..., distributed=True)`` keeps the campaign run (store row, MLflow parent
run) and submits one flow run per instance with ``run_deployment``: any number of workers,
on any machine, polling the deployment's work pool pick them up. Each child attaches to the
parent's campaign run (``campaign_id``/``campaign_run_id`` parameters), so everything it
records lands in the shared store (PostgreSQL) and the MLflow server; the parent reads the
outcomes back from the store, never from a worker's disk.

Deployments rather than Prefect's task workers: a flow run is what the UI shows, triggers,
cancels and retries; work pools carry the job variables (CPU vs GPU pools); and a flow run
whose worker dies is detected by Prefect itself (flow-run heartbeats + the "crash zombie
flow runs" automation that ``patchsmith infra setup`` creates) and ends Crashed. A task run
on a dead task worker stays Running with nothing to notice it. The price is a process start
per instance on the worker (seconds, next to minutes of repair): see bench/distributed.py.

A child that ends Crashed lost its process mid-instance. Its store rows and MLflow runs
still say running: the parent marks them crashed (KILLED) and submits the instance again;
the new run resumes after the attempts the lost one recorded (same work key), so attempt
numbers go on without a gap or a repeat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.states import Cancelling, StateType

from patchsmith.domain import Instance, Outcome, OutcomeStatus
from patchsmith.errors import ConfigError
from patchsmith.infra.sandbox import running
from patchsmith.progress import emit
from patchsmith.tasks.campaign import Session, run_instance, work_key

#: The deployment in prefect.yaml that repairs one instance.
DEFAULT_DEPLOYMENT = "repair_instance/repair-instance"
log = logging.getLogger(__name__)
WAITING = {StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED}


@dataclass
class Child:
    """The current flow run of one batch of instances (one instance unless ``batch``)."""

    instances: list[Instance]
    flow_run_id: UUID
    restarts: int = 0
    started: bool = False


@dataclass
class FanOut:
    """Submit, watch and collect the instances of a campaign as deployment flow runs."""

    session: Session
    campaign_file: str
    deployment: str = DEFAULT_DEPLOYMENT
    tracking: bool = True
    max_restarts: int = 2
    poll_s: float = 2.0
    stall_s: float = 120.0
    """Warn (once) when flow runs wait this long with none of them running."""
    batch: int = 1
    """Instances per flow run: the flow-run cost (a process on the worker) is shared by
    ``batch`` instances, repaired one after another there; 1 balances load best."""
    on_finished: Callable[[int], object] | None = None

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ConfigError(f"batch: {self.batch}: a flow run repairs at least 1 instance")

    def run(self) -> list[Outcome]:
        """Every instance to an outcome (or to a stop); returns the outcomes collected."""
        todo: dict[UUID, Child] = {}
        collected: list[Outcome] = []
        fresh: list[Instance] = []
        for inst in self.session.campaign.instances:
            if self._done_before(inst):  # resume: reuse the stored outcome, no flow run
                collected.append(run_instance(self.session, inst))
                self._finished(len(collected))
            else:
                fresh.append(inst)
        for start in range(0, len(fresh), self.batch):
            group = fresh[start : start + self.batch]
            child = Child(group, self._submit(group, 0))
            todo[child.flow_run_id] = child
        moved, warned = time.monotonic(), False
        with get_client(sync_client=True) as client:
            while todo:
                if running.stop_requested():
                    self._cancel(client, todo)
                    break
                runs = self._read(client, list(todo))
                for run in runs:
                    for outcome in self._settle(todo, run):
                        collected.append(outcome)
                        self._finished(len(collected))
                        moved = time.monotonic()
                if any(r.state and r.state.type == StateType.RUNNING for r in runs):
                    moved = time.monotonic()
                elif todo and not warned and time.monotonic() - moved > self.stall_s:
                    warned = True
                    log.warning(self._stalled(client, len(todo)))
                if todo:
                    time.sleep(self.poll_s)
        return collected

    def _stalled(self, client: Any, waiting: int) -> str:
        """Why nothing may be running: no worker on the pool, or no free slot."""
        pool = client.read_deployment_by_name(self.deployment).work_pool_name or "its pool"
        return (
            f"{waiting} flow run(s) of {self.deployment} have waited {self.stall_s:.0f} s "
            f"with none running: is a worker polling work pool {pool!r} with a free slot? "
            f"(prefect worker start --pool {pool} --limit N; a campaign's own flow run on a "
            "worker holds one of its slots)"
        )

    def _done_before(self, inst: Instance) -> bool:
        if self.session.redo:
            return False
        done = self.session.store.find_outcome(work_key(self.session, inst))
        return done is not None and done.status != OutcomeStatus.error

    def _submit(self, group: list[Instance], restarts: int) -> UUID:
        first, *more = [i.instance_id for i in group]
        params: dict[str, Any] = {
            "campaign_file": self.campaign_file,
            "instance_id": first,
            "redo": self.session.redo,
            "tracking": self.tracking,
            "campaign_id": self.session.campaign_id,
            "campaign_run_id": self.session.campaign_run_id,
        }
        if more:
            params["more_instance_ids"] = more
        name = first + (f" +{len(more)}" if more else "")
        run = cast(FlowRun, run_deployment(
            self.deployment,
            parameters=params,
            timeout=0,
            flow_run_name=name + (f" (restart {restarts})" if restarts else ""),
            idempotency_key=f"{self.session.campaign_id}:{name}:{restarts}",
            tags=["patchsmith", f"campaign:{self.session.campaign.name}"],
        ))  # fmt: skip
        return run.id

    @staticmethod
    def _read(client: Any, ids: list[UUID]) -> list[FlowRun]:
        runs: list[FlowRun] = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids)
        )
        return runs

    def _settle(self, todo: dict[UUID, Child], run: FlowRun) -> list[Outcome]:
        """Act on one child's state; the outcomes it brought."""
        child = todo[run.id]
        state = run.state.type if run.state else StateType.PENDING
        if state in WAITING:
            if state == StateType.RUNNING and not child.started:
                child.started = True
                for inst in child.instances:
                    emit("instance_started", instance_id=inst.instance_id)
            return []
        del todo[run.id]
        stored = self._stored(child.instances)
        done = [self._record(i, stored[i.instance_id]) for i in child.instances
                if i.instance_id in stored]  # fmt: skip
        rest = [i for i in child.instances if i.instance_id not in stored]
        if not rest or state in (StateType.CANCELLED, StateType.CANCELLING):
            return done  # cancelled from the UI: no outcome for the rest, a rerun resumes them
        if state == StateType.CRASHED:
            for inst in rest:
                self._abandon(inst)
            if child.restarts < self.max_restarts:
                again = Child(rest, self._submit(rest, child.restarts + 1), child.restarts + 1)
                todo[again.flow_run_id] = again
                return done
        # Crashed too often, or ended before run_instance could record an outcome
        return done + [self._record_lost(i, run, child.restarts) for i in rest]

    def _stored(self, instances: list[Instance]) -> dict[str, Outcome]:
        """The latest outcome of each of ``instances`` recorded under this campaign run
        (read per child, not the whole campaign's outcomes each time)."""
        ids = [i.instance_id for i in instances]
        found = self.session.store.outcomes(self.session.campaign_id, ids)
        return {o.instance_id: o for o in found}

    def _record(self, inst: Instance, outcome: Outcome) -> Outcome:
        outcome = self.session.writer.add(outcome, inst)
        emit("instance_done", outcome=outcome, skipped=False)
        return outcome

    def _record_lost(self, inst: Instance, run: FlowRun, restarts: int) -> Outcome:
        """An error outcome, in the store too: every instance of the campaign has one."""
        key = work_key(self.session, inst)
        run_id = self.session.store.start_instance(self.session.campaign_id, inst, key)
        outcome = _lost(inst, run, restarts)
        self.session.store.record_outcome(run_id, key, outcome)
        return self._record(inst, outcome)

    def _abandon(self, inst: Instance) -> None:
        """The lost run's store rows and MLflow runs: crashed, KILLED (not RUNNING)."""
        self.session.store.abandon_instance_runs(self.session.campaign_id, inst.instance_id)
        self.session.tracker.abandon_instance(self.session.campaign_run_id, inst.instance_id)

    def _cancel(self, client: Any, todo: dict[UUID, Child]) -> None:
        for flow_run_id in todo:
            client.set_flow_run_state(
                flow_run_id, Cancelling(message="the campaign is stopping"), force=True
            )

    def _finished(self, count: int) -> None:
        if self.on_finished is not None:
            self.on_finished(count)


def _lost(inst: Instance, run: FlowRun, restarts: int) -> Outcome:
    message = (run.state.message if run.state else None) or "no message"
    state = run.state.type.value if run.state else "unknown"
    return Outcome(
        instance_id=inst.instance_id,
        status=OutcomeStatus.error,
        reasons=[
            f"flow run {run.name} ({run.id}) ended {state} after {restarts} restart(s) "
            f"without an outcome: {message}"
        ],
    )
