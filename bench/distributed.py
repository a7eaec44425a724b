"""Campaign throughput: in-process vs distributed (1 and 2 workers), same campaign.

The campaign is the example campaign's search-fixable instances (search tier only, so the
work per instance is the same in every mode). Every mode runs ``patchsmith run --redo``
against the same loopback deployment (infra/local_cluster.py: a Prefect server on
PostgreSQL, an MLflow server, the store on PostgreSQL); the embedded default (ephemeral
API, SQLite) runs too, for reference. Parallelism is 2 everywhere: ``--concurrency 2``
in-process, one worker with ``--limit 2``, or two workers with ``--limit 1``; then two
workers again with ``--batch 5`` (five instances per flow run).

Per-instance orchestration overhead of the distributed mode is shown two ways:
  * in-flow: a child flow run's time (Running -> end) minus its instances' repair time in
    the store, per instance (process start before Running is not in it);
  * wall: (distributed wall - in-process wall) x parallelism / instances: everything,
    process starts and pool polling included.

    .venv/bin/python bench/distributed.py [--instances 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from patchsmith.infra.local_cluster import BIN, QUIET, LocalCluster  # noqa: E402


def campaign(tmp: Path, count: int) -> Path:
    example = yaml.safe_load((ROOT / "examples" / "campaign.yaml").read_text())
    picked = [
        {**i, "repo": str(ROOT / "examples" / i["repo"])}
        for i in example["instances"]
        if "fixable" in i.get("tags", []) and "hangs" not in i.get("tags", [])
        and not i.get("environment")
    ][:count]  # fmt: skip
    for inst in picked:
        inst.pop("tags", None)
    path = tmp / "throughput.yaml"
    data = {"name": "throughput", "instances": picked, "tiers": [{"kind": "search"}],
            "budget": {"max_attempts": 40, "max_wall_s": 300}}  # fmt: skip
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(argv: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}")
    out = Path(argv[argv.index("--out") + 1])
    outcomes = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    return wall, {"resolved": sum(o["status"] == "resolved" for o in outcomes), "n": len(outcomes)}


def in_flow_overhead(cluster: LocalCluster, names: set[str], since: float) -> list[float]:
    """Per child flow run: (end - start) - the store's repair time of its instance."""
    url = make_url(cluster.db_url("store")).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as db:
        rows = db.execute(
            "select instance_id, finished - started from instances where started > %s",
            (since,),
        ).fetchall()
    repair = dict(rows)
    req = urllib.request.Request(
        f"{cluster.api_url}/flow_runs/filter", data=b"{}",
        headers={"content-type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(req) as response:
        runs = json.loads(response.read())
    out = []
    for r in runs:
        started = r["start_time"] and datetime.fromisoformat(r["start_time"]).timestamp()
        fresh = started and started > since
        if "instance_id" not in r["parameters"]:
            continue  # the campaign's own flow run
        ids = [r["parameters"]["instance_id"], *r["parameters"].get("more_instance_ids", [])]
        if fresh and r["total_run_time"] and all(i in repair and i in names for i in ids):
            spent = sum(float(repair[i]) for i in ids)
            out.append((float(r["total_run_time"]) - spent) / len(ids))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ps-dist-") as tmp_name:
        tmp = Path(tmp_name)
        camp = campaign(tmp, args.instances)
        names = {i["id"] for i in yaml.safe_load(camp.read_text())["instances"]}
        n = len(names)
        rows: list[tuple[str, float, dict[str, Any], str]] = []
        patchsmith = str(BIN / "patchsmith")
        base = [patchsmith, "run", str(camp), "--redo", "--concurrency", "2"]

        embedded_env = {**os.environ, **QUIET, "PATCHSMITH_HOME": str(tmp / "emb"),
                        "PREFECT_HOME": str(tmp / "emb" / "prefect")}  # fmt: skip
        for key in ("PREFECT_API_URL", "PATCHSMITH_DB_URL", "MLFLOW_TRACKING_URI"):
            embedded_env.pop(key, None)
        wall, res = run([*base, "--out", str(tmp / "o-emb")], embedded_env)
        rows.append(("in-process, embedded (SQLite, ephemeral API)", wall, res, ""))

        with LocalCluster(tmp / "cluster", workers=0) as cluster:
            env = cluster.env("parent")
            wall_in, res = run([*base, "--out", str(tmp / "o-in")], env)
            rows.append(("in-process, PostgreSQL + Prefect/MLflow servers", wall_in, res, ""))
            for workers, limit, batch in ((1, 2, 1), (2, 1, 1), (2, 1, 5)):
                cluster.stop_workers()
                cluster.worker_limit = limit
                for i in range(workers):
                    cluster.start_worker(f"bench-{workers}-{i}")
                time.sleep(3)  # the workers' first poll
                since = time.time()
                out = str(tmp / f"o-d{workers}")
                out += f"-b{batch}"
                argv = [*base, "--distributed", "--batch", str(batch), "--out", out]
                wall, res = run(argv, env)
                flow = in_flow_overhead(cluster, names, since)
                extra = (wall - wall_in) * 2 / n
                note = (
                    f"in-flow overhead median {statistics.median(flow):.2f} s "
                    f"(n={len(flow)}); wall overhead {extra:.2f} s/instance"
                    if flow
                    else "no child runs measured"
                )
                mode = f"distributed, {workers} worker(s) x limit {limit}, batch {batch}"
                rows.append((mode, wall, res, note))

    print(f"campaign: {n} search-fixable example instances, parallelism 2, this machine")
    print(f"{'mode':50} {'wall s':>8} {'inst/h':>8} {'resolved':>9}  notes")
    for mode, wall, res, note in rows:
        per_hour = res["n"] / wall * 3600
        print(f"{mode:50} {wall:8.1f} {per_hour:8.0f} {res['resolved']:>4}/{res['n']:<4}  {note}")


if __name__ == "__main__":
    main()
