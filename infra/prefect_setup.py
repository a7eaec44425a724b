"""``patchsmith infra setup``: what a Prefect server needs before distributed campaigns run.

Idempotent; each step says what it did (created / updated / ok):

- the work pools ``prefect.yaml`` names (CPU pool for sandbox and test work, GPU pool for
  instances whose models run on the worker), created as process pools when missing;
- a global concurrency limit ``gpu-<pool>`` per GPU pool of the campaigns (``gpu_pools``),
  its limit set to the pool's slots;
- the automation that marks a flow run ``Crashed`` when its heartbeats stop (its worker or
  machine died: the distributed parent then resubmits the instance). Workers must emit
  heartbeats: ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` (seconds, at least 30), set in the
  work pools' job variables in ``prefect.yaml``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    WorkPoolCreate,
)
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectNotFound
from prefect.workers.process import ProcessWorker

from patchsmith.config import Campaign
from patchsmith.errors import ConfigError
from patchsmith.infra.gpu_slots import limit_name

ZOMBIE_AUTOMATION = "patchsmith: crash flow runs without heartbeats"
#: Heartbeats every 30 s (Prefect's minimum): two missed and a margin mean the run is gone.
DEFAULT_CRASH_AFTER_S = 75


def yaml_pools(prefect_yaml: Path) -> dict[str, str]:
    """Work pool name -> type, from ``definitions.work_pools`` of a ``prefect.yaml``."""
    try:
        data = yaml.safe_load(prefect_yaml.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{prefect_yaml}: cannot read it: {exc}") from exc
    pools = (data.get("definitions") or {}).get("work_pools") or {}
    found = {p["name"]: p.get("type", "process") for p in pools.values() if p.get("name")}
    if not found:
        raise ConfigError(f"{prefect_yaml}: definitions.work_pools names no work pool")
    return found


def gpu_limits(campaigns: list[Campaign]) -> dict[str, int]:
    """Limit name -> slots over the campaigns; a pool given two sizes is an error."""
    limits: dict[str, int] = {}
    for campaign in campaigns:
        for pool, slots in campaign.gpu_pools.items():
            name = limit_name(pool)
            if limits.get(name, slots) != slots:
                raise ConfigError(
                    f"gpu pool {pool!r} has {limits[name]} slots in one campaign and {slots} "
                    f"in {campaign.name!r}: give it one size"
                )
            limits[name] = slots
    return limits


def ensure_work_pool(client: SyncPrefectClient, name: str, kind: str) -> str:
    try:
        client.read_work_pool(name)
        return f"work pool {name}: ok"
    except ObjectNotFound:
        pass
    if kind != "process":
        raise ConfigError(
            f"work pool {name}: type {kind!r}: create it with `prefect work-pool create {name} "
            f"--type {kind}` (its worker package provides the job template)"
        )
    template = ProcessWorker.get_default_base_job_template()
    client.create_work_pool(WorkPoolCreate(name=name, type=kind, base_job_template=template))
    return f"work pool {name}: created ({kind})"


def ensure_limit(client: SyncPrefectClient, name: str, slots: int) -> str:
    try:
        current = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
        return f"concurrency limit {name}: created, {slots} slot(s)"
    if current.limit == slots and current.active:
        return f"concurrency limit {name}: ok, {slots} slot(s)"
    client.update_global_concurrency_limit(
        name, GlobalConcurrencyLimitUpdate(limit=slots, active=True)
    )
    return f"concurrency limit {name}: updated, {current.limit} -> {slots} slot(s)"


def zombie_automation(crash_after_s: int) -> AutomationCore:
    """Prefect's documented zombie detection: no heartbeat (nor end) within the window."""
    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description="A flow run whose heartbeats stopped lost its process: mark it Crashed "
        "(patchsmith resubmits crashed instances; see flows/distributed.py).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=crash_after_s),
        ),
        actions=[
            ChangeFlowRunState(
                name=None,
                force=False,  # a run that ended meanwhile keeps its state
                state=StateType.CRASHED,
                message=f"no heartbeat for {crash_after_s} s: its worker is gone",
            )
        ],
    )


def ensure_zombie_automation(client: SyncPrefectClient, crash_after_s: int) -> str:
    wanted = zombie_automation(crash_after_s)
    existing = client.read_automations_by_name(ZOMBIE_AUTOMATION)
    same = [a for a in existing if _window(a) == crash_after_s and a.enabled]
    if same and len(existing) == 1:
        return f"automation {ZOMBIE_AUTOMATION!r}: ok ({crash_after_s} s)"
    for old in existing:
        client.delete_automation(old.id)
    client.create_automation(wanted)
    verb = "updated" if existing else "created"
    return f"automation {ZOMBIE_AUTOMATION!r}: {verb} ({crash_after_s} s)"


def _window(automation: Any) -> float | None:
    within = getattr(automation.trigger, "within", None)
    return within.total_seconds() if within is not None else None


def setup(
    client: SyncPrefectClient,
    *,
    pools: dict[str, str],
    limits: dict[str, int],
    crash_after_s: int = DEFAULT_CRASH_AFTER_S,
) -> list[str]:
    """Every step, in order; returns one line per step."""
    if crash_after_s < 45:
        raise ConfigError(
            f"--crash-after {crash_after_s}: heartbeats come every 30 s at the most, so a "
            "window under 45 s would crash live runs; use 45 or more"
        )
    lines = [ensure_work_pool(client, name, kind) for name, kind in pools.items()]
    lines += [ensure_limit(client, name, slots) for name, slots in sorted(limits.items())]
    lines.append(ensure_zombie_automation(client, crash_after_s))
    return lines
