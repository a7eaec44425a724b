"""A fresh data directory's ephemeral API starts from the kept migrated database."""

from __future__ import annotations

import contextlib
import sqlite3
import urllib.request
from pathlib import Path

import pytest

from patchsmith.infra import prefect_db, prefect_server


def _start(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Start (and stop) the ephemeral API for data directory ``root``; its database file."""
    monkeypatch.setenv("PREFECT_HOME", str(root / "prefect"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # start() sets it: undone after
    server = prefect_server.start(root)
    try:
        with urllib.request.urlopen(f"{server.api_url}/health", timeout=5) as response:
            assert response.status == 200
    finally:
        server.stop()
    return root / "prefect" / "prefect.db"


def _tables(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache of this test's own, and no user-chosen Prefect database."""
    monkeypatch.setenv("PATCHSMITH_CACHE", str(tmp_path / "cache"))
    for key in prefect_db.OWN_DATABASE:
        monkeypatch.delenv(key, raising=False)


def test_the_first_fresh_home_keeps_its_migrations_and_the_next_starts_from_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _start(tmp_path / "one", monkeypatch)
    kept = prefect_db.template()
    assert kept.parent == tmp_path / "cache" and kept.is_file()
    assert {"alembic_version", "flow_run"} <= _tables(kept)
    # Mark the kept copy: a second fresh home must be a copy of it, not migrated anew.
    with contextlib.closing(sqlite3.connect(kept)) as db:
        db.execute("CREATE TABLE patchsmith_marker (x)")
        db.commit()
    second = _start(tmp_path / "two", monkeypatch)
    assert "patchsmith_marker" in _tables(second)
    # A home that already has its database keeps it, and the kept copy is not replaced.
    assert "patchsmith_marker" not in _tables(first)
    _start(tmp_path / "one", monkeypatch)
    assert "patchsmith_marker" not in _tables(first)
    assert "patchsmith_marker" in _tables(kept)


def test_a_broken_kept_copy_is_dropped_and_the_api_migrates_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = prefect_db.template()
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"not a database")
    db = _start(tmp_path / "home", monkeypatch)
    assert "alembic_version" in _tables(db)
    assert "alembic_version" in _tables(kept), "the broken copy is replaced by a good one"


def test_a_database_the_user_chose_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"PREFECT_HOME": "/nonexistent", "PREFECT_API_DATABASE_CONNECTION_URL": "postgresql://x"}
    assert prefect_db.database(env) is None
    assert prefect_db.seed(env) is False and prefect_db.keep(env) is False


def _block_types(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM block_type").fetchone()[0])


def test_a_home_seeded_from_the_kept_copy_skips_migrating_and_registering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _start(tmp_path / "one", monkeypatch)
    assert _block_types(first) > 0
    # Empty the kept copy's block types: a start that registers them again refills them.
    kept = prefect_db.template()
    with contextlib.closing(sqlite3.connect(kept)) as db:
        db.execute("DELETE FROM block_schema")
        db.execute("DELETE FROM block_type")
        db.commit()
    seeded = _start(tmp_path / "two", monkeypatch)
    assert _block_types(seeded) == 0, "a seeded home's server registered block types again"
