"""Store write cost: attempts/second with concurrent writer threads sharing one Store.

Each attempt carries a unique ~2 KB diff and ~4 KB test log (stored as artifacts),
21 per-test outcomes, a critique and usage: what an LLM-tier attempt looks like.
SQLite always (a fresh file in a temp dir); PostgreSQL too when 127.0.0.1:5432 is
reachable (a throwaway database, dropped afterwards). Target: >= 200 attempts/s on
SQLite with 8 writers.

    .venv/bin/python bench/store_writes.py [--writers 8] [--attempts 250]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from patchsmith.config import Campaign
from patchsmith.domain import Instance
from patchsmith.infra.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from store_helpers import (
    postgres_unreachable_reason,
    sample_attempt,
    temporary_postgres_database,
)

TARGET = 200.0


def measure(url: str, writers: int, per_writer: int) -> tuple[float, float]:
    """(attempts/second, p99 seconds per record_attempt) for one store URL."""
    campaign = Campaign(
        name="bench",
        instances=[Instance(instance_id=f"bench-{w}", repo="/src") for w in range(writers)],
    )
    store = Store.open(url)
    try:
        cid = store.start_campaign(campaign, config={})
        runs = [store.start_instance(cid, i, campaign.instance_key(i)) for i in campaign.instances]
        attempts = [
            [sample_attempt(f"bench-{w}", n) for n in range(1, per_writer + 1)]
            for w in range(writers)
        ]
        latencies: list[float] = []
        barrier = threading.Barrier(writers + 1)

        def write(w: int) -> None:
            barrier.wait()
            mine = []
            for attempt in attempts[w]:
                t0 = time.perf_counter()
                store.record_attempt(runs[w], attempt)
                mine.append(time.perf_counter() - t0)
            latencies.extend(mine)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        stored = sum(
            len(store.attempts_for_key(campaign.instance_key(i))) for i in campaign.instances
        )
        if stored != writers * per_writer:
            raise SystemExit(f"lost rows: stored {stored} of {writers * per_writer}")
    finally:
        store.close()
    latencies.sort()
    return writers * per_writer / elapsed, latencies[int(0.99 * (len(latencies) - 1))]


def report(label: str, rate: float, p99: float, writers: int, per_writer: int) -> None:
    print(
        f"{label:<11} {writers} writers x {per_writer} attempts: {rate:8.0f} attempts/s "
        f"(p99 record_attempt {p99 * 1000:.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8, help="concurrent writer threads")
    parser.add_argument("--attempts", type=int, default=250, help="attempts per writer")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rate, p99 = measure(f"sqlite:///{Path(tmp) / 'bench.db'}", args.writers, args.attempts)
    report("sqlite", rate, p99, args.writers, args.attempts)
    verdict = "meets" if rate >= TARGET else "MISSES"
    print(f"sqlite {verdict} the target of {TARGET:.0f} attempts/s")
    if args.no_postgres:
        return
    reason = postgres_unreachable_reason()
    if reason:
        print(f"postgresql  skipped: {reason}")
        return
    with temporary_postgres_database() as url:
        rate, p99 = measure(url, args.writers, args.attempts)
    report("postgresql", rate, p99, args.writers, args.attempts)


if __name__ == "__main__":
    main()
