"""Many writers at once: threads sharing one Store, and processes sharing one file.

No row may be lost or duplicated, on SQLite and (when reachable) on PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select
from store_helpers import (
    postgres_unreachable_reason,
    sample_attempt,
    write_attempts,
)

from patchsmith.config import Campaign
from patchsmith.domain import Instance
from patchsmith.infra.store import Store
from patchsmith.infra.store.models import ArtifactRow, AttemptRow, Base

THREADS, PER_THREAD = 16, 50
PG_REASON = postgres_unreachable_reason()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


def count(store: Store, model: type[Base], *where: object) -> int:
    stmt = select(func.count()).select_from(model)
    for clause in where:
        stmt = stmt.where(clause)  # type: ignore[arg-type]
    with store.engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


def run_together(n: int, fn: Callable[[int], object]) -> list[object]:
    """Run fn(0..n-1) on n threads released at the same moment; re-raise any error."""
    barrier = threading.Barrier(n)

    def go(i: int) -> object:
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(go, range(n)))


def test_concurrent_threads_lose_no_rows(url: str) -> None:
    campaign = Campaign(
        name="many", instances=[Instance(instance_id=f"i{t}", repo="/src") for t in range(THREADS)]
    )
    with Store.open(url) as store:
        cid = store.start_campaign(campaign, config={})
        runs = [
            store.start_instance(cid, inst, campaign.instance_key(inst))
            for inst in campaign.instances
        ]

        def writer(t: int) -> None:
            for number in range(1, PER_THREAD + 1):
                # the same instance id everywhere: threads race on shared diff/log artifacts
                store.record_attempt(runs[t], sample_attempt("shared", number))

        run_together(THREADS, writer)
        assert count(store, AttemptRow, AttemptRow.instance_run_id.in_(runs)) == 800
        assert count(store, ArtifactRow) >= 2 * PER_THREAD
        for t in (0, THREADS - 1):
            key = campaign.instance_key(campaign.instances[t])
            got = store.attempts_for_key(key)
            assert got == [sample_attempt("shared", n) for n in range(1, PER_THREAD + 1)]


def test_racing_duplicates_are_recorded_once(url: str) -> None:
    campaign = Campaign(name="dupes", instances=[Instance(instance_id="d", repo="/src")])
    inst = campaign.instances[0]
    with Store.open(url) as store:
        cid = store.start_campaign(campaign, config={})
        rid = store.start_instance(cid, inst, campaign.instance_key(inst))

        def writer(_t: int) -> None:
            for number in range(1, 21):
                store.record_attempt(rid, sample_attempt("d", number))

        run_together(8, writer)
        assert count(store, AttemptRow, AttemptRow.instance_run_id == rid) == 20


@pytest.mark.slow
def test_two_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"  # not created yet: both processes migrate
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        runs = pool.starmap(write_attempts, [(url, "p1", 100), (url, "p2", 100)])
    assert len(set(runs)) == 2
    with Store.open(url) as store:
        assert count(store, AttemptRow) == 200
        for rid in runs:
            assert count(store, AttemptRow, AttemptRow.instance_run_id == rid) == 100
        assert {r["name"] for r in store.campaign_runs()} == {"proc-p1", "proc-p2"}


def test_writer_waits_for_a_held_sqlite_lock(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(f"sqlite:///{path}") as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        done = threading.Event()

        def write() -> None:
            store.put_artifact(b"waited", "log")
            done.set()

        writer = threading.Thread(target=write)
        start = time.monotonic()
        writer.start()
        assert not done.wait(0.5), "the write did not wait for the lock"
        other.execute("COMMIT")
        other.close()
        writer.join(10)
        assert done.is_set() and time.monotonic() - start >= 0.5
        assert count(store, ArtifactRow) == 1
