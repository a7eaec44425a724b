"""End-to-end campaign benchmark on the examples.

Measures, on the embedded default (ephemeral Prefect API on SQLite, SQLite store):
  * orchestration overhead: ``run_campaign`` through Prefect vs the same steps called directly
    (same code path, ``Steps`` = plain functions, no Prefect), per instance;
  * tracking overhead: MLflow tracking on vs off, as a share of instance wall time;
  * candidate throughput of the search tier: candidates verified per second.

    .venv/bin/python bench/campaign.py [--instances N] [--repeat R]

Each mode runs in a fresh data directory, so nothing is reused from an earlier run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _subset(n: int, tmp: Path) -> Path:
    """A copy of the example campaign limited to its first n fixable instances."""
    import yaml

    data = yaml.safe_load((ROOT / "examples" / "campaign.yaml").read_text())
    fixable = [i for i in data["instances"] if "fixable" in i.get("tags", [])][:n]
    for inst in fixable:
        inst["repo"] = str(ROOT / "examples" / inst["repo"])
    data["instances"] = fixable
    data["concurrency"] = 1
    path = tmp / "campaign.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_direct(campaign_file: Path, home: Path, tracking: bool) -> tuple[float, int, int]:
    from patchsmith.config import load_campaign
    from patchsmith.flows.common import campaign_yaml
    from patchsmith.tasks.campaign import close_session, open_session, run_instance
    from patchsmith.tasks.repair import DIRECT

    campaign = load_campaign(campaign_file)
    os.environ["PATCHSMITH_HOME"] = str(home)
    t0 = time.perf_counter()
    session = open_session(campaign, home=home, out_dir=home / "out", tracking=tracking)
    outcomes = [run_instance(session, inst, DIRECT) for inst in campaign.instances]
    close_session(session, campaign_yaml(campaign))
    wall = time.perf_counter() - t0
    return wall, sum(o.attempts for o in outcomes), sum(o.status == "resolved" for o in outcomes)


def run_prefect(campaign_file: Path, home: Path, tracking: bool) -> tuple[float, int, int]:
    from patchsmith.flows.run_campaign import run_campaign

    os.environ["PATCHSMITH_HOME"] = str(home)  # the flow reads its data dir from here
    t0 = time.perf_counter()
    result = run_campaign(str(campaign_file), out=str(home / "out"), tracking=tracking)
    wall = time.perf_counter() - t0
    outs = result["outcomes"]
    return wall, sum(o["attempts"] for o in outs), sum(o["status"] == "resolved" for o in outs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--only-orchestration", action="store_true", help="skip the tracking-on modes"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="patchsmith-bench-"))
    os.environ["PATCHSMITH_HOME"] = str(tmp / "home0")
    from patchsmith.infra.settings import configure

    configure(tmp / "home0")
    campaign_file = _subset(args.instances, tmp)

    from prefect import flow

    @flow
    def warm_up() -> int:
        return 1

    t0 = time.perf_counter()
    warm_up()
    print(f"Prefect ephemeral API start + first flow run: {time.perf_counter() - t0:.2f} s")

    # Create and migrate the MLflow store once (~6 s, once per store, not per instance).
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    t0 = time.perf_counter()
    from patchsmith.infra.tracking import make_tracker

    warm = make_tracker(True, tmp)
    from patchsmith.config import load_campaign

    warm.start_campaign(load_campaign(campaign_file), config_hash="warm-up", flow_run_id=None)
    print(f"MLflow store created and migrated: {time.perf_counter() - t0:.2f} s (once per store)")

    modes = {
        "direct, tracking off": (run_direct, False),
        "prefect, tracking off": (run_prefect, False),
        "direct, tracking on": (run_direct, True),
        "prefect, tracking on": (run_prefect, True),
    }
    if args.only_orchestration:
        modes = {label: mode for label, mode in modes.items() if not mode[1]}
    results: dict[str, list[float]] = {m: [] for m in modes}
    attempts = resolved = 0
    for r in range(args.repeat):
        for label, (fn, tracking) in modes.items():
            home = tmp / f"{label.replace(', ', '-').replace(' ', '_')}-{r}"
            home.mkdir()
            wall, attempts, resolved = fn(campaign_file, home, tracking)
            if not (home / "patchsmith.db").is_file():
                raise SystemExit(f"{label}: the run did not use its own data dir {home}")
            results[label].append(wall)
            print(
                f"  run {r} {label:24s} {wall:7.2f} s  attempts={attempts} resolved={resolved}",
                flush=True,
            )
    n = args.instances
    med = {label: statistics.median(v) for label, v in results.items()}
    print(f"\n{n} instances, median of {args.repeat} runs (sequential, concurrency 1)")
    for label, value in med.items():
        print(f"{label:24s} {value:7.2f} s  ({value / n:.2f} s/instance)")
    orch = (med["prefect, tracking off"] - med["direct, tracking off"]) / n
    print(
        f"orchestration overhead per instance (Prefect - direct, including the one flow "
        f"run and its artifacts spread over {n} instances): {orch * 1000:.0f} ms"
    )
    diffs = zip(results["prefect, tracking off"], results["direct, tracking off"], strict=True)
    print(
        "per run, Prefect - direct per instance: "
        + ", ".join(f"{(pf - dr) / n * 1000:.0f} ms" for pf, dr in diffs)
    )
    if "direct, tracking on" in med:
        track = (med["direct, tracking on"] - med["direct, tracking off"]) / n
        print(
            f"tracking overhead per instance: {track * 1000:.0f} ms "
            f"({100 * track / (med['direct, tracking off'] / n):.1f}% of instance wall time)"
        )
    print(
        f"search-tier throughput: {attempts / med['direct, tracking off']:.2f} candidates "
        f"verified per second ({attempts} attempts, {resolved}/{n} resolved)"
    )


if __name__ == "__main__":
    sys.exit(main())
