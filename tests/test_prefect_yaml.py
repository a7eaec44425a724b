"""prefect.yaml: the deployments point at flows that load, with parameters they accept."""

from __future__ import annotations

import inspect
from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

ROOT = Path(__file__).resolve().parent.parent


def test_deployments_load_and_their_parameters_fit() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = {d["name"] for d in spec["deployments"]}
    assert {
        "nightly-campaign",
        "repair-instance",
        "distributed-campaign",
        "repair-instance-gpu",
    } <= names
    pools = {p["name"] for p in spec["definitions"]["work_pools"].values()}
    for dep in spec["deployments"]:
        flow = load_flow_from_entrypoint(str(ROOT / dep["entrypoint"]))
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(dep["parameters"]) <= accepted, (dep["name"], set(dep["parameters"]) - accepted)
        gpu = dep["name"].endswith("-gpu")  # GPU deployments on the GPU pool, the rest on CPU
        assert dep["work_pool"]["name"] == ("patchsmith-gpu" if gpu else "patchsmith-process")
        assert dep["work_pool"]["name"] in pools
    nightly = next(d for d in spec["deployments"] if d["name"] == "nightly-campaign")
    assert nightly["schedules"][0]["cron"] == "0 2 * * *"
    assert (ROOT / nightly["parameters"]["campaign_file"]).is_file()
    fan_out = next(d for d in spec["deployments"] if d["name"] == "distributed-campaign")
    assert fan_out["parameters"]["distributed"] is True
    # the deployment a distributed campaign submits to is one of this file's
    flow_name, dep_name = fan_out["parameters"]["deployment"].split("/")
    assert dep_name in names and flow_name == "repair_instance"
