"""``patchsmith sync-tracking``: push store records that never reached MLflow.

The store is the record of truth: when MLflow was down or failed during a campaign, every
attempt and outcome is still in the store, and this replays them into MLflow later.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import yaml

from patchsmith.config import Campaign
from patchsmith.domain import Instance
from patchsmith.infra.store import Store
from patchsmith.infra.tracking import Tracker
from patchsmith.tasks.campaign import run_params


@dataclass
class SyncResult:
    synced: int = 0
    failed: int = 0


def sync_tracking(store: Store, tracker: Tracker) -> SyncResult:
    """Replay every finished, unsynced instance run into the tracker, campaign by campaign."""
    result = SyncResult()
    pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in store.unsynced_instance_runs():
        pending[run["campaign_id"]].append(run)
    campaigns = {c["id"]: c for c in store.campaign_runs()}
    for campaign_id, runs in pending.items():
        row = campaigns[campaign_id]
        campaign = Campaign.model_validate(row["config"])
        parent = tracker.start_campaign(
            campaign, config_hash=row["config_hash"], flow_run_id=row.get("flow_run_id")
        )
        for run in runs:
            ml_run = tracker.start_instance(
                parent,
                Instance.model_validate(run["instance"]),
                key=run["key"],
                params=run_params(campaign),
                flow_run_id=row.get("flow_run_id"),
            )
            for attempt in store.attempts_for_run(run["id"]):
                tracker.log_attempt(ml_run, attempt)
            outcome = store.outcome_for_run(run["id"])
            if outcome is not None:
                tracker.end_instance(ml_run, outcome, logs={})
            if ml_run is None or tracker.failed:
                result.failed += 1
                continue
            store.mark_tracking_synced(run["id"], ml_run)
            result.synced += 1
        tracker.end_campaign(
            parent, store.outcomes(campaign_id), config_yaml=yaml.safe_dump(row["config"])
        )
    return result
