"""``patchsmith infra setup`` against a real Prefect API (the test harness)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from patchsmith.cli import app
from patchsmith.config import Campaign
from patchsmith.errors import ConfigError
from patchsmith.infra import prefect_setup

REPO = Path(__file__).resolve().parents[1]


def gpu_campaign(pools: dict[str, int]) -> Campaign:
    return Campaign.model_validate(
        {
            "name": "gpu",
            "instances": [{"id": "x", "repo": str(REPO / "examples" / "textkit")}],
            "gpu_pools": pools,
        }
    )


def test_pools_come_from_prefect_yaml_cpu_and_gpu_apart() -> None:
    pools = prefect_setup.yaml_pools(REPO / "prefect.yaml")
    assert pools == {"patchsmith-process": "process", "patchsmith-gpu": "process"}
    data = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for name in ("process", "gpu"):  # heartbeats: a dead worker's runs can be crashed
        env = data["definitions"]["work_pools"][name]["job_variables"]["env"]
        assert int(env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]) >= 30


def test_two_sizes_for_one_pool_are_refused() -> None:
    with pytest.raises(ConfigError, match="give it one size"):
        prefect_setup.gpu_limits([gpu_campaign({"a100": 2}), gpu_campaign({"a100": 4})])


@pytest.mark.usefixtures("prefect_harness")
def test_setup_creates_then_keeps_then_updates() -> None:
    from prefect.client.orchestration import get_client

    pool = f"cpu-{uuid.uuid4().hex[:6]}"
    gpu = f"g{uuid.uuid4().hex[:6]}"
    limits = prefect_setup.gpu_limits([gpu_campaign({gpu: 3})])
    with get_client(sync_client=True) as client:
        first = prefect_setup.setup(client, pools={pool: "process"}, limits=limits)
        again = prefect_setup.setup(client, pools={pool: "process"}, limits=limits)
        grown = prefect_setup.setup(
            client, pools={pool: "process"}, limits={f"gpu-{gpu}": 5}, crash_after_s=120
        )
        assert client.read_work_pool(pool).type == "process"
        assert client.read_global_concurrency_limit_by_name(f"gpu-{gpu}").limit == 5
        (automation,) = client.read_automations_by_name(prefect_setup.ZOMBIE_AUTOMATION)
    assert first[0] == f"work pool {pool}: created (process)"
    assert first[1] == f"concurrency limit gpu-{gpu}: created, 3 slot(s)"
    assert again[:2] == [f"work pool {pool}: ok", f"concurrency limit gpu-{gpu}: ok, 3 slot(s)"]
    assert again[2].endswith(": ok (75 s)")
    assert grown[1] == f"concurrency limit gpu-{gpu}: updated, 3 -> 5 slot(s)"
    assert grown[2].endswith(": updated (120 s)")
    trigger = automation.trigger
    assert trigger.within.total_seconds() == 120  # type: ignore[union-attr]
    assert "prefect.flow-run.heartbeat" in trigger.expect  # type: ignore[union-attr]
    assert automation.actions[0].type == "change-flow-run-state"


def test_a_window_shorter_than_heartbeats_is_refused() -> None:
    with pytest.raises(ConfigError, match="heartbeats come every 30 s"):
        prefect_setup.setup(None, pools={}, limits={}, crash_after_s=30)  # type: ignore[arg-type]


def test_setup_without_a_server_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    result = CliRunner().invoke(app, ["infra", "setup"])
    assert result.exit_code == 2
    assert "set PREFECT_API_URL" in result.output


def test_distributed_run_names_what_it_is_missing(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = str(REPO / "examples" / "refactor.yaml")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    no_server = CliRunner().invoke(app, ["run", campaign, "--distributed"])
    assert no_server.exit_code == 2 and "set PREFECT_API_URL" in " ".join(no_server.output.split())
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    no_store = CliRunner().invoke(app, ["run", campaign, "--distributed"])
    assert no_store.exit_code == 2 and "set PATCHSMITH_DB_URL" in " ".join(no_store.output.split())
