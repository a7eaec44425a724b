"""The approval gate through Prefect's own machinery: the flow run pauses for input, a
person's decisions (sent as the UI sends them) decide which changesets are published."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_examples import EXAMPLES
from tests.test_refactor import _git, bare_remote, committed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning"),
]


def _paused_run(deadline_s: float = 240) -> Any:
    from prefect.client.orchestration import get_client

    end = time.monotonic() + deadline_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < end:
            for run in client.read_flow_runs():
                if run.state is not None and run.state.is_paused():
                    return run
            time.sleep(0.5)
    raise AssertionError("the campaign's flow run never paused for approval")


def test_held_changesets_wait_for_approval_then_only_approved_ones_publish(
    prefect_harness: None, home: Path, tmp_path: Path
) -> None:
    import shutil

    from prefect.flow_runs import resume_flow_run

    from patchsmith.approval import field_name
    from patchsmith.flows.run_campaign import run_campaign

    repo = committed(Path(shutil.copytree(EXAMPLES / "invoicing", tmp_path / "invoicing")))
    remote = bare_remote(tmp_path / "remote.git")
    raw = yaml.safe_load((EXAMPLES / "refactor.yaml").read_text())
    for recipe in raw["recipes"]:
        recipe["repos"] = [str(repo)]
    raw["rules"] = [{"name": "billing-owners", "paths": ["invoicing/*.py"], "needs_review": True}]
    raw["approval"] = "required"
    raw["approval_timeout_s"] = 300
    raw["publish"] = {"remote": str(remote)}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    result: dict[str, Any] = {}

    def run() -> None:
        result.update(run_campaign(str(tmp_path / "c.yaml"), out=str(out), tracking=False))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        paused = _paused_run()
        # Nothing is published while the flow waits.
        assert _git(remote, "branch", "--list") == ""
        held = sorted(json.loads(p.read_text())["review"] for p in (out / "changesets").glob("*"))
        assert held == ["pending", "pending"]
        resume_flow_run(
            paused.id,
            run_input={
                field_name("utc-aware-invoicing"): True,
                field_name("format-amount-invoicing"): False,
            },
        )
    finally:
        thread.join(timeout=300)
    assert not thread.is_alive()
    assert result["review"]["decisions"] == {
        "format-amount-invoicing": "rejected",
        "utc-aware-invoicing": "approved",
    }
    assert json.loads((out / "approvals.json").read_text()) == result["review"]["decisions"]
    branches = _git(remote, "branch", "--list").split()
    assert branches == ["patchsmith/utc-aware"]
    assert "rejected by its reviewer" in result["review"]["published"]["format-amount-invoicing"]
