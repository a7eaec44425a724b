"""The provenance store: round-trips, resume, artifacts, adapters, bad databases.

Every test runs on a fresh SQLite file under tmp_path, and the backend-generic ones
also on PostgreSQL (a database created for this session at 127.0.0.1:5432, emptied
before each test) when that server is reachable.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from store_helpers import (
    postgres_unreachable_reason,
    sample_attempt,
)

from patchsmith.config import Campaign
from patchsmith.domain import (
    Attempt,
    AttemptStatus,
    Instance,
    Outcome,
    OutcomeStatus,
    TestReport,
    Usage,
)
from patchsmith.errors import StoreError
from patchsmith.infra.store import Store
from patchsmith.infra.store.migrate import VERSION_TABLE, head_revisions
from patchsmith.infra.store.models import ArtifactRow, AttemptRow, Base

PG_REASON = postgres_unreachable_reason()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty, migrated store on each backend."""
    if request.param == "sqlite":
        opened = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    else:
        opened = Store.open(request.getfixturevalue("pg_url"))
        tables = ", ".join(f'"{t}"' for t in Base.metadata.tables)
        with opened.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    yield opened
    opened.close()


def make_campaign(name: str = "nightly", ids: tuple[str, ...] = ("calc",)) -> Campaign:
    return Campaign(name=name, instances=[Instance(instance_id=i, repo="/src/" + i) for i in ids])


def start_run(store: Store, campaign: Campaign | None = None) -> tuple[str, str, str]:
    """(campaign id, instance-run id, key) for the campaign's first instance."""
    campaign = campaign or make_campaign()
    instance = campaign.instances[0]
    campaign_id = store.start_campaign(campaign, config={"name": campaign.name})
    key = campaign.instance_key(instance)
    return campaign_id, store.start_instance(campaign_id, instance, key), key


def count(store: Store, model: type[Base]) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


# ------------------------------------------------------------------ opening


def test_open_uses_patchsmith_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATCHSMITH_DB_URL", raising=False)
    monkeypatch.setenv("PATCHSMITH_HOME", str(tmp_path / "home"))
    with Store.open() as store:
        store.put_artifact(b"x", "log")
    assert (tmp_path / "home" / "patchsmith.db").is_file()
    with Store.open(home=tmp_path / "other") as store:
        assert store.engine.url.database == str(tmp_path / "other" / "patchsmith.db")


def test_env_url_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCHSMITH_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    with Store.open(home=tmp_path / "home"):
        pass
    assert (tmp_path / "env.db").is_file()
    assert not (tmp_path / "home" / "patchsmith.db").exists()


def test_sqlite_runs_in_wal_with_busy_timeout(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_migrations_match_models(store: Store) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert set(ctx.get_current_heads()) == head_revisions()
        assert compare_metadata(ctx, Base.metadata) == []


def test_reopen_keeps_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with Store.open(url) as store:
        sha = store.put_artifact(b"kept", "log")
    with Store.open(url) as store:
        assert store.get_artifact(sha) == b"kept"


# ---------------------------------------------------------------- campaigns


def test_campaign_round_trip(store: Store) -> None:
    cid = store.start_campaign(make_campaign(), config={"tiers": ["search"]}, flow_run_id="f-1")
    other = store.start_campaign(make_campaign("weekly"), config={})
    [run] = store.campaign_runs("nightly")
    assert run["id"] == cid and run["status"] == "running" and run["finished"] is None
    assert run["config"] == {"tiers": ["search"]} and run["flow_run_id"] == "f-1"
    store.finish_campaign(cid, "completed")
    runs = {r["id"]: r for r in store.campaign_runs()}
    assert set(runs) == {cid, other}
    assert runs[cid]["status"] == "completed"
    assert runs[cid]["finished"] >= runs[cid]["started"]
    with pytest.raises(StoreError, match="no campaign run"):
        store.finish_campaign("nope", "completed")


def test_instance_runs_and_tracking_sync(store: Store) -> None:
    cid, rid, key = start_run(store)
    [run] = store.instance_runs(cid)
    assert (run["id"], run["instance_id"], run["key"]) == (rid, "calc", key)
    assert run["status"] == "running" and run["tracking_synced"] is False
    assert store.unsynced_instance_runs() == []  # not finished yet
    store.record_outcome(rid, key, Outcome(instance_id="calc", status=OutcomeStatus.unresolved))
    assert [r["id"] for r in store.unsynced_instance_runs()] == [rid]
    store.mark_tracking_synced(rid, "mlflow-123")
    assert store.unsynced_instance_runs() == []
    [run] = store.instance_runs(cid)
    assert run["status"] == "unresolved" and run["finished"] is not None
    assert run["tracking_synced"] is True and run["mlflow_run_id"] == "mlflow-123"
    with pytest.raises(StoreError, match="no instance run"):
        store.mark_tracking_synced("nope", "x")


# ----------------------------------------------------------------- attempts


def bare_attempt(number: int) -> Attempt:
    """An attempt with no candidate, no report and no critique (malformed edit)."""
    return Attempt(
        instance_id="calc",
        number=number,
        tier="search",
        generator="mutation",
        candidate=None,
        report=None,
        critique=None,
        usage=Usage(dollars=None),
        status=AttemptStatus.malformed_edit,
        error="no SEARCH block",
        started_at=1.5,
        duration_s=0.125,
    )


def test_attempts_round_trip_across_runs(store: Store) -> None:
    campaign = make_campaign()
    _, first, key = start_run(store, campaign)
    odd = sample_attempt("calc", 2).model_copy(deep=True)
    assert odd.candidate is not None and odd.report is not None
    odd.candidate.diff = "+ ünïcödé \udcff surrogate\n"
    odd.report = TestReport(log_tail="")
    store.record_attempt(first, sample_attempt("calc", 1))
    store.record_attempt(first, odd)
    _, second, same_key = start_run(store, campaign)  # the interrupted run is resumed
    assert same_key == key
    store.record_attempt(second, bare_attempt(3))
    assert store.attempts_for_key(key) == [sample_attempt("calc", 1), odd, bare_attempt(3)]
    assert store.attempts_for_key("0" * 64) == []


def test_attempt_columns_are_searchable(store: Store) -> None:
    _, rid, _ = start_run(store)
    attempt = sample_attempt("calc", 1)
    store.record_attempt(rid, attempt)
    with store.engine.connect() as conn:
        row = conn.execute(select(AttemptRow)).one()
    assert attempt.candidate is not None and attempt.report is not None
    assert (row.tier, row.generator, row.status) == ("small", "llm", "rejected")
    assert row.model_id == "Qwen/Qwen2.5-Coder-1.5B-Instruct"
    assert row.adapters == [{"name": "fix-py", "version": "3"}]
    assert row.quantization == {"method": "bnb-4bit", "quant_type": "nf4"}
    assert row.candidate_id == attempt.candidate.candidate_id
    assert (row.verdict, row.tests_passed, row.tests_failed, row.regressions) == (
        "refine",
        20,
        1,
        0,
    )
    assert (row.tokens, row.dollars, row.gpu_seconds) == (1500, None, 0.7)
    assert store.get_artifact(row.diff_sha) == attempt.candidate.diff.encode()
    assert store.get_artifact(row.log_sha) == attempt.report.log_tail.encode()
    assert row.payload["candidate"]["diff"] == "" and row.payload["report"]["log_tail"] == ""


def test_record_attempt_is_idempotent(store: Store) -> None:
    _, rid, key = start_run(store)
    for _ in range(3):
        store.record_attempt(rid, sample_attempt("calc", 1))
    store.record_attempt(rid, sample_attempt("calc", 2))
    assert count(store, AttemptRow) == 2
    assert [a.number for a in store.attempts_for_key(key)] == [1, 2]


def test_record_attempt_for_unknown_run_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="record_attempt failed"):
        store.record_attempt("no-such-run", sample_attempt("calc", 1))
    assert count(store, AttemptRow) == 0


def test_a_run_given_up_as_crashed_may_write_nothing_more(store: Store) -> None:
    # A worker whose heartbeats were late still runs after the parent abandoned its run and
    # resubmitted the instance: the store fences it off, so the new run's attempt numbers
    # (after the ones stored) cannot collide with a late write of the old one.
    campaign_id, rid, key = start_run(store)
    store.record_attempt(rid, sample_attempt("calc", 1))
    assert store.abandon_instance_runs(campaign_id, "calc") == 1
    with pytest.raises(StoreError, match=r"given up as crashed.*must stop"):
        store.record_attempt(rid, sample_attempt("calc", 2))
    outcome = Outcome(instance_id="calc", status=OutcomeStatus.resolved)
    with pytest.raises(StoreError, match="given up as crashed"):
        store.record_outcome(rid, key, outcome)
    assert [a.number for a in store.attempts_for_key(key)] == [1]
    assert store.abandon_instance_runs(campaign_id, "calc") == 0  # only running ones


# ----------------------------------------------------------------- outcomes


def test_resume_finds_outcome_by_key(store: Store) -> None:
    campaign = make_campaign()
    cid, rid, key = start_run(store, campaign)
    assert store.find_outcome(key) is None
    outcome = Outcome(
        instance_id="calc",
        status=OutcomeStatus.resolved,
        attempts=3,
        tier="search",
        duration_s=4.5,
        patch="--- a/calc.py\n+++ b/calc.py\n",
        reasons=["target fixed"],
        usage=Usage(prompt_tokens=10, dollars=None),
    )
    store.record_outcome(rid, key, outcome)
    assert store.find_outcome(key) == outcome
    changed = campaign.model_copy(
        update={"budget": campaign.budget.model_copy(update={"max_attempts": 7})}
    )
    other_key = changed.instance_key(campaign.instances[0])
    assert other_key != key and store.find_outcome(other_key) is None
    assert store.outcomes(cid) == [outcome]
    # a --redo run stores a newer outcome under the same key; resume sees the newest
    cid2, rid2, _ = start_run(store, campaign)
    newer = Outcome(instance_id="calc", status=OutcomeStatus.unresolved, attempts=9)
    store.record_outcome(rid2, key, newer)
    assert store.find_outcome(key) == newer
    assert store.outcomes(cid2) == [newer] and store.outcomes(cid) == [outcome]


def test_one_outcome_per_instance_run(store: Store) -> None:
    _, rid, key = start_run(store)
    outcome = Outcome(instance_id="calc", status=OutcomeStatus.resolved, patch="p")
    store.record_outcome(rid, key, outcome)
    store.record_outcome(rid, key, outcome)  # the same again: fine, nothing added
    with pytest.raises(StoreError, match="already has an outcome"):
        store.record_outcome(rid, key, Outcome(instance_id="calc", status=OutcomeStatus.error))
    with pytest.raises(StoreError, match="differs from the key"):
        store.record_outcome(rid, "f" * 64, outcome)
    assert store.find_outcome(key) == outcome


def test_outcomes_are_per_campaign_in_order(store: Store) -> None:
    campaign = make_campaign(ids=("a", "b"))
    cid = store.start_campaign(campaign, config={})
    recorded = []
    for inst in reversed(campaign.instances):
        key = campaign.instance_key(inst)
        rid = store.start_instance(cid, inst, key)
        recorded.append(Outcome(instance_id=inst.instance_id, status=OutcomeStatus.resolved))
        store.record_outcome(rid, key, recorded[-1])
    assert store.outcomes(cid) == recorded
    assert store.outcomes("other") == []


# ---------------------------------------------------------------- artifacts


def test_artifacts_are_stored_once(store: Store) -> None:
    data = b"--- a/x\n+++ b/x\n" * 200  # compressible
    sha = store.put_artifact(data, "patch")
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.put_artifact(data, "patch") == sha
    small = store.put_artifact(b"\x00\xff", "log")
    assert count(store, ArtifactRow) == 2
    assert store.get_artifact(sha) == data and store.get_artifact(small) == b"\x00\xff"
    with store.engine.connect() as conn:
        stored = conn.execute(select(ArtifactRow).where(ArtifactRow.sha256 == sha)).one()
    assert stored.size == len(data) and len(stored.data) < len(data) / 4
    with pytest.raises(StoreError, match="no artifact"):
        store.get_artifact("0" * 64)


def test_attempts_share_artifacts(store: Store) -> None:
    _, first, _ = start_run(store)
    _, second, _ = start_run(store)
    store.record_attempt(first, sample_attempt("calc", 1))
    store.record_attempt(second, sample_attempt("calc", 1))
    assert count(store, AttemptRow) == 2
    assert count(store, ArtifactRow) == 2  # one diff, one log


# ----------------------------------------------------------------- adapters


def test_adapter_registry(store: Store) -> None:
    v1 = {"name": "fix-py", "version": "1", "kind": "functional", "rank": 16}
    v2 = {"name": "fix-py", "version": "2", "kind": "functional", "rank": 32}
    guard = {"name": "no-net", "version": "1", "kind": "guardrail", "base_model": "qwen"}
    for record in (v1, v2, guard):
        store.put_adapter(record)
    assert store.get_adapter("fix-py") == v2
    assert store.get_adapter("fix-py", "1") == v1
    assert store.get_adapter("missing") is None
    assert store.list_adapters() == [v1, v2, guard]
    assert store.list_adapters("guardrail") == [guard]
    store.put_adapter({**v1, "rank": 8})  # replaces version 1
    assert store.get_adapter("fix-py", "1") == {**v1, "rank": 8}
    assert store.remove_adapter("fix-py", "2") is True
    assert store.remove_adapter("fix-py", "2") is False
    assert store.get_adapter("fix-py") == {**v1, "rank": 8}
    with pytest.raises(StoreError, match="'name' and 'version'"):
        store.put_adapter({"name": "x"})


# ------------------------------------------------------------ bad databases


def test_unknown_dialect_is_refused() -> None:
    with pytest.raises(StoreError, match="unknown database dialect 'foo'"):
        Store.open("foo://")


def test_unparseable_url_is_refused() -> None:
    with pytest.raises(StoreError, match="cannot be parsed"):
        Store.open("not a url")


def test_missing_driver_is_named() -> None:
    with pytest.raises(StoreError, match="'psycopg2' is not installed"):
        Store.open("postgresql+psycopg2://127.0.0.1/x")


def test_unreachable_postgres_fails_fast() -> None:
    with pytest.raises(StoreError, match="cannot connect to the store database") as info:
        Store.open("postgresql://127.0.0.1:1/x")
    assert "PATCHSMITH_DB_URL" in str(info.value)


@pytest.mark.postgres
def test_missing_postgres_database_is_named() -> None:
    if PG_REASON:
        pytest.skip(f"PostgreSQL tests skipped: {PG_REASON}")
    with pytest.raises(StoreError, match="does not exist"):
        Store.open("postgresql://postgres@127.0.0.1:5432/patchsmith_no_such_db")


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist: create it"):
        Store.open(f"sqlite:///{tmp_path / 'nope' / 'store.db'}")


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(StoreError, match="in-memory"):
        Store.open("sqlite://")


def test_corrupt_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"this is not sqlite, just garbage bytes\x00\x01\x02" * 100)
    with pytest.raises(StoreError, match="corrupt or not a SQLite database"):
        Store.open(f"sqlite:///{path}")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    Store.open(url).close()
    with sqlite3.connect(tmp_path / "store.db") as conn:
        conn.execute(f"UPDATE {VERSION_TABLE} SET version_num = 'ffff_from_the_future'")
    with pytest.raises(StoreError, match="newer than this patchsmith") as info:
        Store.open(url)
    assert "upgrade patchsmith" in str(info.value)


def test_foreign_tables_are_not_adopted(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE attempts (id INTEGER PRIMARY KEY)")
    with pytest.raises(StoreError, match="not a patchsmith store"):
        Store.open(f"sqlite:///{tmp_path / 'other.db'}")


def test_interrupted_runs_keep_attempts_and_get_no_outcome(store: Store) -> None:
    cid, rid, key = start_run(store)
    store.record_attempt(rid, bare_attempt(1))
    store.interrupt_instance(rid)
    store.finish_campaign(cid, "interrupted")
    [run] = store.instance_runs(cid)
    assert run["status"] == "interrupted" and run["finished"] is None
    assert store.outcome_for_run(rid) is None and store.find_outcome(key) is None
    assert store.unsynced_instance_runs() == [], "sync-tracking leaves it alone"
    assert store.attempts_for_key(key) == [bare_attempt(1)], "the next run resumes after it"
    assert [c["status"] for c in store.campaign_runs()] == ["interrupted"]
    with pytest.raises(StoreError, match="no instance run"):
        store.interrupt_instance("nope")
