"""Per-attempt bookkeeping: what recording one attempt costs the repair loop.

The loop hands each attempt to the store (``record_attempt``) and to MLflow
(``log_attempt``: step metrics, buffered and written every ``flush_s``; the patch and a
JSON summary as artifacts). Both real, in a temp dir: a SQLite store and a SQLite MLflow
store. Prints the median and p90 per attempt for each, and both together.

    .venv/bin/python bench/attempt_bookkeeping.py [--attempts 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from patchsmith.config import Campaign
from patchsmith.domain import Instance
from patchsmith.infra.store import Store
from patchsmith.infra.tracking import make_tracker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from store_helpers import sample_attempt


def _stats(name: str, values: list[float]) -> None:
    p90 = sorted(values)[int(0.9 * (len(values) - 1))]
    print(f"  {name:<22} median {1000 * statistics.median(values):6.2f} ms   p90 "
          f"{1000 * p90:6.2f} ms")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, default=200)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    home = Path(tempfile.mkdtemp(prefix="bookkeeping-"))
    instance = Instance(instance_id="bench-0", repo="/src")
    campaign = Campaign(name="bench", instances=[instance])
    store = Store.open(home=home)
    tracker = make_tracker(True, home)
    cid = store.start_campaign(campaign, config={})
    run = store.start_instance(cid, instance, campaign.instance_key(instance))
    ml_campaign = tracker.start_campaign(campaign, config_hash="bench", flow_run_id=None)
    ml_run = tracker.start_instance(ml_campaign, instance, key="k", params={}, flow_run_id=None)
    attempts = [sample_attempt("bench-0", n) for n in range(1, args.attempts + 1)]
    store_s, track_s = [], []
    for attempt in attempts:
        t0 = time.perf_counter()
        store.record_attempt(run, attempt)
        t1 = time.perf_counter()
        tracker.log_attempt(ml_run, attempt)
        t2 = time.perf_counter()
        store_s.append(t1 - t0)
        track_s.append(t2 - t1)
    print(f"{args.attempts} attempts (~2 KB diff, ~4 KB log each), SQLite store + MLflow:")
    _stats("store.record_attempt", store_s)
    _stats("tracker.log_attempt", track_s)
    _stats("both", [a + b for a, b in zip(store_s, track_s, strict=True)])
    t0 = time.perf_counter()
    tracker.abort_instance(ml_run)  # writes what is buffered: metrics and artifacts, at once
    flush = time.perf_counter() - t0
    print(
        f"  final write of the buffered metrics and artifacts: {1000 * flush:.0f} ms "
        f"({1000 * flush / args.attempts:.2f} ms per attempt, amortized)"
    )


if __name__ == "__main__":
    main()
