"""Tracking around real campaigns: MLflow down must not lose anything; sync pushes it later."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from helpers import make_stats_project, run_spans, write_campaign

from patchsmith.config import load_campaign
from patchsmith.domain import AttemptStatus, OutcomeStatus
from patchsmith.flows.common import campaign_yaml
from patchsmith.infra.store import Store
from patchsmith.infra.tracking_mlflow import MlflowTracker
from patchsmith.tasks.campaign import close_session, open_session, run_instance
from patchsmith.tasks.repair import DIRECT
from patchsmith.tasks.sync import sync_tracking

pytestmark = [
    pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning"),
]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mlflow_down_loses_nothing_and_sync_pushes_it_later(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_stats_project(tmp_path)
    campaign = load_campaign(write_campaign(tmp_path, name="offline"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=True)
    outcomes = [run_instance(session, inst, DIRECT) for inst in campaign.instances]
    close_session(session, campaign_yaml(campaign))
    assert getattr(session.tracker, "failed", False), "the tracker should have noticed"
    assert [o.status for o in outcomes] == [OutcomeStatus.resolved, OutcomeStatus.unresolved]
    assert (tmp_path / "out" / "patches" / "stats-window.diff").is_file()
    store = session.store
    assert len(store.unsynced_instance_runs()) == 2
    attempts = sum(o.attempts for o in outcomes)

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracker = MlflowTracker(uri)
    result = sync_tracking(Store.open(home=home), tracker)
    tracker.flush()
    assert (result.synced, result.failed) == (2, 0)
    assert store.unsynced_instance_runs() == []

    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("offline")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    kinds = sorted(r.data.tags.get("patchsmith.kind", "") for r in runs)
    assert kinds == ["campaign", "instance", "instance"]
    inst_runs = [r for r in runs if r.data.tags.get("patchsmith.kind") == "instance"]
    assert sum(int(r.data.metrics["attempts"]) for r in inst_runs) == attempts
    resolved = {
        r.data.tags["patchsmith.instance_id"]: r.data.metrics["resolved"] for r in inst_runs
    }
    assert resolved == {"stats-window": 1.0, "stats-describe": 0.0}
    assert all(r.info.status == "FINISHED" for r in runs)


def test_live_tracking_records_spans_per_step(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    make_stats_project(tmp_path)
    campaign = load_campaign(write_campaign(tmp_path, name="live"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=True)
    run_instance(session, campaign.instances[0], DIRECT)
    close_session(session, campaign_yaml(campaign))
    assert not getattr(session.tracker, "failed", False)
    mlflow.flush_trace_async_logging()
    [row] = session.store.instance_runs(session.campaign_id)
    assert row["tracking_synced"] and row["mlflow_run_id"]
    names = {span.name for span in run_spans(uri, "live", row["mlflow_run_id"])}
    assert {"plan", "generate", "sandbox-test", "critique", "verify"} <= names


def test_live_tracking_logs_every_attempt_as_it_happens(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each attempt of a real campaign is in MLflow: step-indexed metrics, patch and summary."""
    import mlflow
    from mlflow import MlflowClient

    make_stats_project(tmp_path)
    campaign = load_campaign(write_campaign(tmp_path, name="per-attempt"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=True)
    outcomes = [run_instance(session, inst, DIRECT) for inst in campaign.instances]
    close_session(session, campaign_yaml(campaign))
    assert not getattr(session.tracker, "failed", False)
    assert [o.status for o in outcomes] == [OutcomeStatus.resolved, OutcomeStatus.unresolved]

    client = MlflowClient(uri)
    rows = session.store.instance_runs(session.campaign_id)
    assert len(rows) == 2
    for row in rows:
        attempts = session.store.attempts_for_run(row["id"])
        numbers = [a.number for a in attempts]
        assert numbers == list(range(1, len(attempts) + 1)) and len(attempts) >= 1
        run = client.get_run(row["mlflow_run_id"])

        def history(name: str, run_id: str = run.info.run_id) -> list[tuple[int, float]]:
            return sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))

        assert history("attempt_accepted") == [
            (a.number, float(a.status == AttemptStatus.accepted)) for a in attempts
        ]
        assert history("attempt_well_formed") == [
            (a.number, float(a.status != AttemptStatus.malformed_edit)) for a in attempts
        ]
        assert history("attempt_tests_failing") == [
            (a.number, float(len(a.report.failing()))) for a in attempts if a.report is not None
        ]
        assert history("attempt_duration_s") == [
            (a.number, pytest.approx(a.duration_s)) for a in attempts
        ]

        listed = {f.path for f in client.list_artifacts(run.info.run_id, "attempts")}
        for a in attempts:
            stem = f"attempts/{a.number:03d}"
            summary = json.loads(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/{stem}.json"))
            assert (summary["number"], summary["status"]) == (a.number, str(a.status))
            assert summary["instance_id"] == row["instance_id"]
            if a.candidate is not None:
                patch = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/{stem}.patch")
                assert patch == a.candidate.diff
            else:
                assert f"{stem}.patch" not in listed
        assert {p for p in listed if p.endswith(".json")} == {
            f"attempts/{a.number:03d}.json" for a in attempts
        }
    accepted = [
        a
        for row in rows
        for a in session.store.attempts_for_run(row["id"])
        if a.status == AttemptStatus.accepted
    ]
    assert len(accepted) == 1, "the fixable instance ends on exactly one accepted attempt"
