"""Distributed mode, for real: a Prefect server on PostgreSQL, an MLflow server, the
deployments of prefect.yaml and two process workers, all on 127.0.0.1 (infra/local_cluster).

One test walks what a platform team does: trigger ``repair-instance`` through the REST API
as the UI does, then run a campaign with ``patchsmith run --distributed``, SIGKILL the
worker that holds an instance mid-repair (with its flow-run process and sandboxes, as when
a machine dies), and check that Prefect crashed that run, the parent resubmitted it to the
other worker, and the records are whole: one outcome per instance, attempt numbers without
a gap or a repeat, nothing left RUNNING in Prefect, the store or MLflow.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy.engine import make_url
from store_helpers import PG_ADMIN_URL, postgres_unreachable_reason

from patchsmith.infra.local_cluster import BIN, REPO, LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

#: Every test run takes ~1 s (a sleep in the test), and no single mutation fixes the bug:
#: the instance runs its whole attempt budget, long enough to lose its worker mid-way.
SLOW_CODE = """\
def total(xs):
    s = 0
    for x in xs:
        s = s + x * 2 + 1
    return s - 3
"""
SLOW_TEST = """\
import time

from calc import total


def test_total():
    time.sleep(1.0)
    assert total([1, 2, 3]) == 42
"""
SLOW_ATTEMPTS = 8


def api(cluster: LocalCluster, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{cluster.api_url}{path}", data=json.dumps(body).encode(),
        headers={"content-type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def flow_runs(cluster: LocalCluster, name: str | None = None) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"flow_runs": {"name": {"any_": [name]}}} if name else {}
    return list(api(cluster, "/flow_runs/filter", body))


def wait_for(what: str, check: Any, timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def sql(cluster: LocalCluster, which: str, query: str) -> list[tuple[Any, ...]]:
    url = make_url(cluster.db_url(which)).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
        return list(conn.execute(query).fetchall())  # type: ignore[arg-type]


def write_campaign(tmp_path: Path) -> Path:
    slow = tmp_path / "slowcalc"
    (slow / "tests").mkdir(parents=True)
    (slow / "calc.py").write_text(SLOW_CODE)
    (slow / "tests" / "test_calc.py").write_text(SLOW_TEST)
    examples = REPO / "examples"
    campaign = {
        "name": "distributed",
        "instances": [
            {"id": "slow-total", "repo": str(slow), "test_cmd": "python -m pytest -q tests"},
            {"id": "invoicing-bulk-discount-threshold", "repo": str(examples / "invoicing"),
             "test_cmd": "python -m pytest -q tests/test_discounts.py"},
            {"id": "textkit-wrap-exact-width", "repo": str(examples / "textkit"),
             "test_cmd": "python -m pytest -q tests/test_wrap.py"},
        ],
        "budget": {"max_attempts": SLOW_ATTEMPTS, "max_wall_s": 300},
        "tiers": [{"kind": "search"}],
        "screening": "cold",
    }  # fmt: skip
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(campaign, sort_keys=False))
    return path


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    reason = postgres_unreachable_reason()
    if reason:
        pytest.skip(f"the distributed test needs PostgreSQL: {reason}")
    with LocalCluster(tmp_path / "cluster", pg_admin_url=PG_ADMIN_URL, workers=2) as running:
        yield running


def test_campaign_survives_a_worker_killed_mid_instance(cluster: LocalCluster, tmp_path: Path):
    campaign = write_campaign(tmp_path)

    # 1. As the UI does: create a flow run of the deployment, with parameters.
    (deployment,) = api(
        cluster, "/deployments/filter", {"deployments": {"name": {"any_": ["repair-instance"]}}}
    )
    params = {"campaign_file": str(campaign), "instance_id": "textkit-wrap-exact-width"}
    ui_run = api(cluster, f"/deployments/{deployment['id']}/create_flow_run",
                 {"parameters": params})  # fmt: skip

    def ui_run_done() -> Any:
        run = api(cluster, "/flow_runs/filter", {"flow_runs": {"id": {"any_": [ui_run["id"]]}}})
        return run[0]["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED") and run[0]

    finished = wait_for("the UI-triggered flow run", ui_run_done, 180)
    assert finished["state"]["type"] == "COMPLETED", finished["state"]
    ui_outcome = sql(cluster, "store", "select status from outcomes "
                     "where instance_id = 'textkit-wrap-exact-width'")  # fmt: skip
    assert ui_outcome == [("resolved",)]

    # 2. The campaign, fanned out from this "laptop" to the two workers.
    out = tmp_path / "out"
    parent = subprocess.Popen(
        [str(BIN / "patchsmith"), "run", str(campaign), "--distributed", "--out", str(out)],
        env=cluster.env("parent"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        # 3. Once the slow instance has recorded two attempts, its worker dies.
        def slow_attempts() -> int:
            rows = sql(cluster, "store", "select count(*) from attempts a join instances i on "
                       "i.id = a.instance_run_id where i.instance_id = 'slow-total'")  # fmt: skip
            return int(rows[0][0]) >= 2

        wait_for("two attempts of slow-total", slow_attempts, 240, every=0.5)
        (slow_run,) = [
            r for r in flow_runs(cluster, "slow-total") if r["state"]["type"] == "RUNNING"
        ]
        pid = int(str(slow_run["infrastructure_pid"]).rsplit(":", 1)[-1])
        worker = cluster.worker_of(pid)
        assert worker is not None, f"no worker holds flow-run process {pid}"
        victims = cluster.kill_worker(worker)
        assert pid in victims
        survivor = next(w for w in cluster.worker_services if w is not worker)
        assert survivor.alive()

        output, _ = parent.communicate(timeout=400)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 0, output

    # Prefect: the lost run Crashed (heartbeats stopped), a restart completed; none running.
    runs = flow_runs(cluster)
    states = {(r["name"], r["state"]["type"]) for r in runs}
    assert ("slow-total", "CRASHED") in states, states
    assert ("slow-total (restart 1)", "COMPLETED") in states, states
    assert not [r for r in runs if r["state"]["type"] in ("RUNNING", "PENDING", "SCHEDULED")]

    # Store: one outcome per instance the campaign ran (the UI run's instance is reused, not
    # repaired again); the lost instance run crashed; the attempts of slow-total over both
    # runs are numbered 1..N once each.
    ((campaign_id,),) = sql(cluster, "store", "select distinct campaign_id from instances "
                            "where instance_id = 'slow-total'")  # fmt: skip
    outcomes = sql(cluster, "store", f"select instance_id, status from outcomes "
                   f"where campaign_id = '{campaign_id}'")  # fmt: skip
    assert sorted(i for i, _ in outcomes) == ["invoicing-bulk-discount-threshold", "slow-total"]
    assert dict(outcomes)["invoicing-bulk-discount-threshold"] == "resolved"
    of_slow = f"where campaign_id = '{campaign_id}' and instance_id = 'slow-total'"
    runs_of_slow = sql(cluster, "store", f"select status from instances {of_slow} order by started")
    assert [s for (s,) in runs_of_slow] == ["crashed", "unresolved"]
    numbers = sorted(n for (n,) in sql(cluster, "store",
        "select a.number from attempts a join instances i on i.id = a.instance_run_id "
        f"where i.campaign_id = '{campaign_id}' and i.instance_id = 'slow-total'"))  # fmt: skip
    assert numbers == list(range(1, SLOW_ATTEMPTS + 1))
    assert not sql(cluster, "store", "select id from instances where status = 'running'")

    # MLflow: nothing RUNNING; the lost instance run KILLED and tagged crashed.
    ml = sql(cluster, "mlflow", "select name, status from runs")
    assert not [r for r in ml if r[1] == "RUNNING"], ml
    crashed = sql(cluster, "mlflow", "select r.name, r.status from runs r join tags t on "
                  "t.run_uuid = r.run_uuid where t.key = 'patchsmith.crashed'")  # fmt: skip
    assert crashed == [("slow-total", "KILLED")]

    # The parent's outputs come from the store, not from a worker's disk.
    written = {
        o["instance_id"]: o
        for o in map(json.loads, (out / "outcomes.jsonl").read_text().splitlines())
    }
    assert sorted(written) == sorted([*dict(outcomes), "textkit-wrap-exact-width"])
    patch_file = out / written["invoicing-bulk-discount-threshold"]["patch_file"]
    assert "+        if quantity >= tier.min_qty:" in patch_file.read_text()
    reused = written["textkit-wrap-exact-width"]
    assert reused["status"] == "resolved"
    assert any("reused the stored outcome" in r for r in reused["reasons"])
