"""infra/deploy: the compose file and the Kubernetes job template wire patchsmith as the
distributed test runs it (same variables, same pools); doctor reports what it finds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from patchsmith import doctor
from patchsmith.infra import prefect_setup

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "infra" / "deploy"
#: What every worker needs to share state with the others (flows/distributed.py).
SHARED = {"PREFECT_API_URL", "PATCHSMITH_DB_URL", "MLFLOW_TRACKING_URI", "PATCHSMITH_REPO"}


def test_compose_workers_share_the_servers_and_poll_the_yaml_pools() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "prefect-server", "mlflow", "worker", "gpu-worker", "vllm"} <= set(services)
    pools = set(prefect_setup.yaml_pools(REPO / "prefect.yaml"))
    for name in ("worker", "gpu-worker"):
        worker = services[name]
        env = set(worker["environment"])
        assert env >= SHARED, (name, SHARED - env)
        pool = re.search(r"--pool (\S+)", worker["command"])
        assert pool and pool.group(1) in pools
    prefect_db = services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert prefect_db.startswith("postgresql+asyncpg://")
    assert "postgresql" in services["mlflow"]["command"]
    assert services["vllm"]["environment"]["HF_HUB_OFFLINE"] == "1"  # no downloads at run time
    for port in [p for s in services.values() for p in s.get("ports", [])]:
        assert port.startswith("127.0.0.1:"), f"{port}: published beyond loopback"
    init = (DEPLOY / "postgres-init.sql").read_text()
    assert "CREATE DATABASE prefect" in init and "CREATE DATABASE mlflow" in init


def test_k8s_template_defines_every_placeholder_it_uses() -> None:
    template = json.loads((DEPLOY / "k8s" / "base-job-template.json").read_text())
    used = set(re.findall(r"\{\{ *(\w+) *\}\}", json.dumps(template["job_configuration"])))
    defined = set(template["variables"]["properties"])
    assert used <= defined, used - defined
    env = template["variables"]["properties"]["env"]["default"]
    assert int(env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]) >= 30


def test_doctor_lists_the_deploy_files() -> None:
    _, ok, detail = doctor._deploy_files()
    assert ok, detail
    for path in doctor.DEPLOY_FILES:
        assert path in detail


@pytest.mark.usefixtures("prefect_harness")
def test_doctor_reports_the_servers_pools_and_crash_detection() -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    url = str(PREFECT_API_URL.value())  # the harness's server
    with get_client(sync_client=True) as client:
        prefect_setup.setup(client, pools={"doctor-pool": "process"}, limits={"gpu-dr": 2})
    _, ok, detail = doctor._server(url)
    assert ok, detail
    assert "doctor-pool (0 worker(s) online)" in detail
    assert "gpu-dr" in detail and "crash detection on" in detail
    _, down, why = doctor._server("http://127.0.0.1:9/api")
    assert not down and "does not answer" in why
