"""The distributed fan-out's decisions, on Prefect's test harness API with no worker: the
flow runs it submits stay Scheduled until this test moves them (Crashed, Completed), as a
server would. The whole thing with real workers is tests/test_distributed.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml

from patchsmith.config import load_campaign
from patchsmith.domain import Outcome, OutcomeStatus
from patchsmith.errors import ConfigError
from patchsmith.infra.sandbox import running
from patchsmith.tasks.campaign import Session, open_session, work_key

pytestmark = [
    pytest.mark.usefixtures("prefect_harness"),
    pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning"),
]
REPO = Path(__file__).resolve().parents[1]
IDS = ["textkit-wrap-exact-width", "textkit-ngrams-drop-last"]


@pytest.fixture(scope="module")
def deployment() -> str:
    """A deployment of the real repair_instance flow, with nothing to run it."""
    from patchsmith.flows.repair_instance import repair_instance

    name = "fan-out-test"
    repair_instance.to_deployment(name=name).apply()
    return f"repair_instance/{name}"


def session_for(home: Path, tmp_path: Path) -> tuple[Session, Path]:
    path = tmp_path / "campaign.yaml"
    instances = [
        {"id": i, "repo": str(REPO / "examples" / "textkit"), "test_cmd": "python -m pytest -q"}
        for i in IDS
    ]
    path.write_text(yaml.safe_dump({"name": "fan-out", "instances": instances}))
    campaign = load_campaign(path)
    return open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=False), path


def runs_named(name: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        return list(
            client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
            )
        )


def wait_run(name: str, campaign_id: str) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mine = [r for r in runs_named(name) if r.parameters.get("campaign_id") == campaign_id]
        if mine:
            return mine[0]
        time.sleep(0.2)
    raise AssertionError(f"no flow run {name!r} was submitted")


def set_state(run_id: UUID, state: Any) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, state, force=True)


def start(session: Session, path: Path, deployment: str, **kwargs: Any) -> tuple[Any, list[Any]]:
    from patchsmith.flows.distributed import FanOut

    result: list[Any] = []
    fan = FanOut(session, str(path), deployment=deployment, tracking=False, poll_s=0.2, **kwargs)
    thread = threading.Thread(target=lambda: result.extend(fan.run()))
    thread.start()
    return thread, result


def test_children_carry_the_parent_campaign_and_a_stop_cancels_them(
    home: Path, tmp_path: Path, deployment: str, caplog: pytest.LogCaptureFixture
) -> None:
    session, path = session_for(home, tmp_path)
    thread, result = start(session, path, deployment, stall_s=0.5)
    try:
        first = wait_run(IDS[0], session.campaign_id)
        wait_run(IDS[1], session.campaign_id)
        deadline = time.monotonic() + 30
        while "with none running" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.1)  # nothing polls this deployment: the parent says so
        assert f"2 flow run(s) of {deployment} have waited" in caplog.text
        assert "is a worker polling work pool" in caplog.text
        assert first.parameters["instance_id"] == IDS[0]
        assert first.parameters["campaign_file"] == str(path)
        running.request_stop()
        thread.join(timeout=60)
    finally:
        running.reset()
    assert not thread.is_alive() and result == []
    for name in IDS:
        (run,) = [r for r in runs_named(name) if r.parameters["campaign_id"] == session.campaign_id]
        assert run.state.type.value in ("CANCELLING", "CANCELLED"), run.state


def test_a_crashed_child_is_abandoned_resubmitted_then_given_up(
    home: Path, tmp_path: Path, deployment: str
) -> None:
    from prefect.states import Completed, Crashed

    session, path = session_for(home, tmp_path)
    crashing, finishing = session.campaign.instances
    # what the lost run left: an instance run still "running" in the store
    lost_run = session.store.start_instance(
        session.campaign_id, crashing, work_key(session, crashing)
    )
    thread, result = start(session, path, deployment, max_restarts=1)
    try:
        first = wait_run(crashing.instance_id, session.campaign_id)
        set_state(first.id, Crashed(message="no heartbeat"))
        again = wait_run(f"{crashing.instance_id} (restart 1)", session.campaign_id)
        assert again.parameters == first.parameters  # the same instance, same campaign run
        runs = {r["id"]: r["status"] for r in session.store.instance_runs(session.campaign_id)}
        assert runs[lost_run] == "crashed"
        set_state(again.id, Crashed(message="no heartbeat"))

        # the other one completes with its outcome in the store, as a worker records it
        other = wait_run(finishing.instance_id, session.campaign_id)
        record(session, finishing, OutcomeStatus.resolved)
        set_state(other.id, Completed())
        thread.join(timeout=60)
    finally:
        running.reset()
    by_id = {o.instance_id: o for o in result}
    assert by_id[finishing.instance_id].status == OutcomeStatus.resolved
    given_up = by_id[crashing.instance_id]
    assert given_up.status == OutcomeStatus.error
    assert "ended CRASHED after 1 restart(s)" in given_up.reasons[0]
    stored = {o.instance_id: o.status for o in session.store.outcomes(session.campaign_id)}
    assert stored == {crashing.instance_id: "error", finishing.instance_id: "resolved"}


def record(session: Session, instance: Any, status: OutcomeStatus) -> None:
    """What a worker does for an instance it finished: its outcome in the shared store."""
    key = work_key(session, instance)
    run_id = session.store.start_instance(session.campaign_id, instance, key)
    outcome = Outcome(instance_id=instance.instance_id, status=status)
    session.store.record_outcome(run_id, key, outcome)


def test_a_batch_shares_a_flow_run_and_a_crash_resubmits_only_its_unfinished_part(
    home: Path, tmp_path: Path, deployment: str
) -> None:
    from prefect.states import Completed, Crashed

    session, path = session_for(home, tmp_path)
    first, second = session.campaign.instances
    thread, result = start(session, path, deployment, batch=2)
    try:
        both = wait_run(f"{first.instance_id} +1", session.campaign_id)
        assert both.parameters["instance_id"] == first.instance_id
        assert both.parameters["more_instance_ids"] == [second.instance_id]
        record(session, first, OutcomeStatus.resolved)  # the worker finished one, then died
        set_state(both.id, Crashed(message="no heartbeat"))
        rest = wait_run(f"{second.instance_id} (restart 1)", session.campaign_id)
        assert rest.parameters["instance_id"] == second.instance_id
        assert "more_instance_ids" not in rest.parameters
        record(session, second, OutcomeStatus.unresolved)
        set_state(rest.id, Completed())
        thread.join(timeout=60)
    finally:
        running.reset()
    assert sorted((o.instance_id, o.status) for o in result) == sorted(
        [
            (first.instance_id, OutcomeStatus.resolved),
            (second.instance_id, OutcomeStatus.unresolved),
        ]
    )


def test_the_flow_repairs_a_batch_one_after_another(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from patchsmith.flows.repair_instance import repair_instance

    monkeypatch.setenv("PATCHSMITH_HOME", str(home))
    path = tmp_path / "batch.yaml"
    tests = {
        "textkit-wrap-exact-width": "test_wrap.py",
        "textkit-ngrams-drop-last": "test_tokens.py",
    }
    instances = [
        {"id": i, "repo": str(REPO / "examples" / "textkit"),
         "test_cmd": f"python -m pytest -q tests/{f}"}
        for i, f in tests.items()
    ]  # fmt: skip
    path.write_text(yaml.safe_dump({"name": "batch", "instances": instances}))
    result = repair_instance(
        str(path), IDS[0], more_instance_ids=[IDS[1]], tracking=False, out=str(tmp_path / "o")
    )
    assert isinstance(result, dict)
    assert [(o["instance_id"], o["status"]) for o in result["outcomes"]] == [
        (IDS[0], "resolved"),
        (IDS[1], "resolved"),
    ]
    with pytest.raises(ConfigError, match=r"no instance 'nope'"):
        repair_instance(str(path), IDS[0], more_instance_ids=["nope"], tracking=False)
