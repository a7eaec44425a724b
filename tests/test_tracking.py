"""Tracking against a real MLflow sqlite store in a temp dir (one DB per session)."""

from __future__ import annotations

import contextvars
import hashlib
import logging
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from tracking_sim import Step, run_fake_instance

from patchsmith import preflight
from patchsmith.config import Campaign, SearchTier
from patchsmith.domain import AttemptStatus, Instance, OutcomeStatus, config_hash
from patchsmith.infra.tracking import NullTracker, Prices, make_tracker, price
from patchsmith.infra.tracking_params import flatten

# MLflow warns (UserWarning, coloured text) when it imports mlflow.pyfunc lazily while
# starting the first span; with warnings as errors, that span would silently be dropped.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:.*Any type hint is inferred as AnyType:UserWarning"
)

A, R, M = AttemptStatus.accepted, AttemptStatus.rejected, AttemptStatus.malformed_edit
LLM = {
    "model": "qwen2.5-coder-1.5b",
    "adapters": [{"name": "fix-lora", "version": "3", "sha256": "ab" * 32}],
    "quantization": {"method": "bnb-4bit", "bits": 4, "quant_type": "nf4"},
    "attn_implementation": "sdpa",
}
GPU = Prices(per_gpu_hour=2.0)


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One sqlite store per session (a new DB takes seconds to migrate)."""
    root = tmp_path_factory.getbasetemp() / "mlflow-shared"
    root.mkdir(exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


@pytest.fixture
def tracker(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from patchsmith.infra.tracking_mlflow import MlflowTracker

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)  # MLflow sets it; restore after
    return MlflowTracker(mlflow_uri)


def make_campaign(name: str, n: int, tmp_path: Path) -> Campaign:
    instances = [Instance(instance_id=f"i{k}", repo=str(tmp_path)) for k in range(n)]
    return Campaign(name=name, instances=instances, tiers=[SearchTier()])


def start(tracker, campaign: Campaign) -> str:  # type: ignore[no-untyped-def]
    run_id = tracker.start_campaign(
        campaign, config_hash=config_hash(campaign), flow_run_id="flow-campaign"
    )
    assert run_id is not None
    return str(run_id)


def test_price_known_unknown_and_zero(caplog: pytest.LogCaptureFixture) -> None:
    assert price(1000, 500, 0.0, Prices(per_1k_prompt=0.5, per_1k_completion=1.0)) == 1.0
    assert price(1000, 500, 1800.0, GPU) == 1.0  # self-hosted: GPU time covers tokens
    assert price(0, 0, 0.0, None) == 0.0
    with caplog.at_level(logging.WARNING, logger="patchsmith.infra.tracking"):
        assert price(10, 0, 0.0, None) is None
        assert price(20, 0, 0.0, None) is None
        assert price(10, 10, 0.0, Prices(per_1k_prompt=1.0)) is None  # output not priced
    assert [r.getMessage().count("no prices configured") for r in caplog.records] == [1, 0]


def test_params_flatten_hashes_long_text_and_drops_secrets() -> None:
    out = flatten("tier.1", {"api_key": "sk-x", "prompt": "p" * 500, "sampling": {"t": 0.2}})
    digest = hashlib.sha256(b"p" * 500).hexdigest()
    assert out == {"tier.1.prompt.sha256": digest, "tier.1.sampling.t": "0.2"}


def test_lifecycle_records_params_metrics_artifacts_and_traces(tracker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    campaign = make_campaign("lifecycle", 2, tmp_path)
    cid = start(tracker, campaign)
    steps0 = [Step(status=R), Step(status=R, regressions=2), Step(status=A)]
    llm: dict[str, Any] = dict(
        tier="llm", generator="hf", model=LLM, prices=GPU, tokens_in=900, tokens_out=100
    )
    steps1 = [Step(status=M), Step(**llm, gpu_seconds=900.0, status=R)]
    steps1.append(Step(**llm, gpu_seconds=900.0, status=M))
    run0, out0 = run_fake_instance(tracker, cid, campaign.instances[0], steps0)
    run1, out1 = run_fake_instance(tracker, cid, campaign.instances[1], steps1)
    tracker.end_campaign(cid, [out0, out1], config_yaml="name: lifecycle\n")
    assert not tracker.failed and tracker.errors == 0

    client = tracker.client
    camp = client.get_run(cid)
    assert camp.info.status == "FINISHED"
    assert camp.data.tags["patchsmith.flow_run_id"] == "flow-campaign"
    params = camp.data.params
    assert params["tiers"] == "search" and params["sandbox.backend"] == "auto"
    assert params["config_hash"] == config_hash(campaign) and "patchsmith_version" in params
    worst = preflight.estimate(campaign)  # the pre-flight worst case, before any work
    assert params["preflight_max_attempts"] == str(worst.attempts) == "400"
    m = camp.data.metrics
    assert m["instances"] == 2 and m["resolved_rate"] == 0.5
    assert m["patch_correctness_rate"] == 1.0
    assert m["regressions_per_1000_changes"] == pytest.approx(1000 / 4)  # 1 of 4 tested
    assert m["well_formed_edit_rate"] == pytest.approx(4 / 6)
    assert m["cost_per_success_usd"] == pytest.approx(1.0)  # 1800 GPU-s at $2/h, 1 success
    assert m["share_solved.search"] == 1.0
    assert "campaign.yaml" in {f.path for f in client.list_artifacts(cid)}

    r0 = client.get_run(run0)
    assert r0.data.tags["mlflow.parentRunId"] == cid
    assert r0.data.tags["patchsmith.flow_run_id"] == "flow-i0"
    assert r0.data.tags["patchsmith.resolved_tier"] == "search"
    assert r0.data.params["instance_id"] == "i0" and r0.data.params["tiers"] == "search"
    assert r0.data.metrics["resolved"] == 1 and r0.data.metrics["attempts_to_success"] == 3
    assert r0.data.metrics["regressions_introduced"] == 1
    history = client.get_metric_history(run0, "attempt_regressions")
    assert [(h.step, h.value) for h in history] == [(1, 0.0), (2, 2.0), (3, 0.0)]
    files = {f.path for f in client.list_artifacts(run0)}
    assert {"patch.diff", "outcome.json", "attempts", "logs"} <= files
    assert {"attempts/001.patch", "attempts/003.json"} <= {
        f.path for f in client.list_artifacts(run0, "attempts")
    }
    r1 = client.get_run(run1)
    assert r1.data.metrics["resolved"] == 0 and "attempts_to_success" not in r1.data.metrics
    assert r1.data.metrics["tokens_in"] == 1800 and r1.data.metrics["dollars"] == 1.0
    assert any(k.startswith("model_config.") and "fix-lora" in v for k, v in r1.data.params.items())

    tracker.flush()
    (trace,) = client.search_traces(locations=[camp.info.experiment_id], run_id=run1)
    names = [s.name for s in trace.data.spans]
    assert names[0] == "instance i1" and names.count("generate") == 3
    llm_spans = [s for s in trace.data.spans if s.span_type == "LLM"]
    assert len(llm_spans) == 2
    usage = llm_spans[0].attributes["mlflow.chat.tokenUsage"]
    assert usage == {"input_tokens": 900, "output_tokens": 100, "total_tokens": 1000}
    assert llm_spans[0].attributes["mlflow.llm.cost"] == {"total_cost": 0.5}
    by_id = {s.span_id: s for s in trace.data.spans}
    assert {by_id[s.parent_id].name for s in llm_spans} == {"generate"}


def test_unknown_price_is_null_never_zero(tracker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    campaign = make_campaign("unpriced", 1, tmp_path)
    cid = start(tracker, campaign)
    step = Step(tier="llm", generator="hf", model=LLM, tokens_in=50, tokens_out=5, status=A)
    run_id, out = run_fake_instance(tracker, cid, campaign.instances[0], [step])
    tracker.end_campaign(cid, [out], config_yaml="")
    assert out.usage.dollars is None
    assert "dollars" not in tracker.client.get_run(str(run_id)).data.metrics
    metrics = tracker.client.get_run(cid).data.metrics
    assert metrics["resolved_rate"] == 1.0
    assert "cost_per_success_usd" not in metrics and "cost_usd" not in metrics
    tracker.flush()
    exp = tracker.client.get_run(cid).info.experiment_id
    (trace,) = tracker.client.search_traces(locations=[exp], run_id=run_id)
    (llm,) = [s for s in trace.data.spans if s.span_type == "LLM"]
    assert llm.attributes["patchsmith.cost_unknown"] is True
    assert "mlflow.llm.cost" not in llm.attributes


def test_concurrent_instances_leave_no_orphans_and_spans_land_in_their_run(  # type: ignore[no-untyped-def]
    tracker, tmp_path: Path
) -> None:
    campaign = make_campaign("concurrent", 8, tmp_path)
    cid = start(tracker, campaign)
    llm: dict[str, Any] = dict(tier="llm", generator="hf", model=LLM, prices=GPU, gpu_seconds=3.0)
    plans = [[Step(status=R), Step(**llm, status=R)] + [Step(**llm, status=A)] * (k % 3)
             for k in range(8)]  # fmt: skip
    results: dict[str, str | None] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            inst = campaign.instances[k]
            results[inst.instance_id] = run_fake_instance(tracker, cid, inst, plans[k])[0]
        except BaseException as exc:  # surfaced below: a thread cannot fail the test itself
            errors.append(exc)

    # Threads start inside an open campaign-level step, with the context copied (as
    # Prefect does): instance spans must still go to their own instance's trace.
    with tracker.step(cid, "dispatch"):
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(work, k))
            for k in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    tracker.end_campaign(cid, [], config_yaml="")
    assert not tracker.failed

    client = tracker.client
    exp = client.get_run(cid).info.experiment_id
    runs = client.search_runs([exp], max_results=1000)
    assert len(runs) == 9
    assert all(r.info.status == "FINISHED" for r in runs)
    orphans = [
        r for r in runs if r.info.run_id != cid and r.data.tags.get("mlflow.parentRunId") != cid
    ]
    assert orphans == []
    tracker.flush()
    for k, inst in enumerate(campaign.instances):
        run_id = results[inst.instance_id]
        traces = client.search_traces(locations=[exp], run_id=run_id)
        assert len(traces) == 1
        spans = traces[0].data.spans
        attempts = len(plans[k][: next((i + 1 for i, s in enumerate(plans[k]) if s.status == A),
                                       len(plans[k]))])  # fmt: skip
        llm_calls = sum(1 for s in plans[k][:attempts] if s.model)
        refines = attempts - (1 if any(s.status == A for s in plans[k]) else 0)
        assert len(spans) == 2 + 3 * attempts + llm_calls + refines  # root + plan + per attempt
        owners = {s.attributes.get("patchsmith.instance_id") for s in spans}
        assert owners == {inst.instance_id}
    (dispatch,) = client.search_traces(locations=[exp], run_id=cid)
    assert [s.name for s in dispatch.data.spans] == ["dispatch"]


def test_step_error_marks_span_and_propagates(tracker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    campaign = make_campaign("errors", 1, tmp_path)
    cid = start(tracker, campaign)
    with pytest.raises(RuntimeError, match="sandbox died"), tracker.step(cid, "sandbox-test"):
        raise RuntimeError("sandbox died")
    tracker.end_campaign(cid, [], config_yaml="")
    tracker.flush()
    exp = tracker.client.get_run(cid).info.experiment_id
    (trace,) = tracker.client.search_traces(locations=[exp], run_id=cid)
    assert trace.data.spans[0].status.status_code == "ERROR"
    assert not tracker.failed


def test_unreachable_server_does_not_stop_the_campaign(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from patchsmith.infra.tracking_mlflow import MlflowTracker

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    campaign = make_campaign("offline", 2, tmp_path)
    tracker = MlflowTracker(uri)
    with caplog.at_level(logging.WARNING, logger="patchsmith.infra.tracking_mlflow"):
        cid = tracker.start_campaign(campaign, config_hash="h", flow_run_id=None)
        outs = [run_fake_instance(tracker, cid, i, [Step(status=A)]) for i in campaign.instances]
        tracker.end_campaign(cid, [o for _, o in outs], config_yaml="")
    assert cid is None and all(r is None for r, _ in outs)
    assert all(o.status == OutcomeStatus.resolved and o.patch for _, o in outs)
    assert tracker.failed and tracker.errors == 1 and tracker.skipped > 0
    (record,) = caplog.records
    assert "start_campaign: MlflowException" in record.getMessage()
    assert "sync-tracking" in record.getMessage()


def test_null_tracker_and_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    campaign = make_campaign("off", 1, tmp_path)
    null = make_tracker(False, tmp_path)
    assert isinstance(null, NullTracker)
    run_id, out = run_fake_instance(null, None, campaign.instances[0], [Step(status=A)])
    assert run_id is None and out.status == OutcomeStatus.resolved
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = make_tracker(True, tmp_path / "home")
    assert tracker.tracking_uri == f"sqlite:///{(tmp_path / 'home').resolve()}/mlflow.db"  # type: ignore[attr-defined]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/mlflow.db")
    tracker = make_tracker(True, tmp_path / "home")
    assert tracker.tracking_uri == "sqlite:////elsewhere/mlflow.db"  # type: ignore[attr-defined]
