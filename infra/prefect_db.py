"""A migrated Prefect database to start from, so a fresh data directory starts in seconds.

The ephemeral API's first start in a new ``$PATCHSMITH_HOME`` spends about five seconds
creating its SQLite database (Alembic migrations, block-type registration). The result
depends only on the Prefect version, so the first such start keeps a copy of it in the
user's cache (``$PATCHSMITH_CACHE``, default ``$XDG_CACHE_HOME/patchsmith`` or
``~/.cache/patchsmith``) as ``prefect-<version>.db``, and later fresh homes start from that
copy. A copy that is unreadable, or not a migrated Prefect database, is removed and not
used. Nothing here applies when the user points Prefect at a database of their own
(``PREFECT_API_DATABASE_CONNECTION_URL`` / ``PREFECT_SERVER_DATABASE_CONNECTION_URL``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from patchsmith.infra.settings import cache_dir

log = logging.getLogger(__name__)
OWN_DATABASE = ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL")


def template(env: Mapping[str, str] = os.environ) -> Path:
    """The kept database for the installed Prefect version."""
    return cache_dir(env) / f"prefect-{importlib.metadata.version('prefect')}.db"


def database(env: Mapping[str, str] = os.environ) -> Path | None:
    """The ephemeral API's SQLite file, or None when the user chose a database."""
    if any(env.get(key) for key in OWN_DATABASE) or not env.get("PREFECT_HOME"):
        return None
    return Path(env["PREFECT_HOME"]) / "prefect.db"


def _migrated(path: Path) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            ok = db.execute("PRAGMA quick_check").fetchone()
            version = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return False
    return ok == ("ok",) and version is not None


def seed(env: Mapping[str, str] = os.environ) -> bool:
    """Start a new database from the kept one; True when it did."""
    db = database(env)
    if db is None or db.exists():
        return False
    kept = template(env)
    if not kept.is_file():
        return False
    if not _migrated(kept):
        log.warning("removed %s: not a migrated Prefect database", kept)
        kept.unlink(missing_ok=True)
        return False
    db.parent.mkdir(parents=True, exist_ok=True)
    _copy(kept, db)
    return True


def keep(env: Mapping[str, str] = os.environ) -> bool:
    """Keep a copy of a freshly migrated database for later fresh homes; True when it did.
    Uses SQLite's backup API: consistent while the server has the file open."""
    db = database(env)
    kept = template(env)
    if db is None or kept.exists() or not _migrated(db):
        return False
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        _copy(db, kept)
    except (OSError, sqlite3.Error) as exc:  # a read-only cache only costs the speed-up
        log.warning("could not keep the migrated Prefect database in %s: %s", kept, exc)
        return False
    return True


def _copy(source: Path, dest: Path) -> None:
    """A consistent copy, written beside ``dest`` and renamed into place (never half a file)."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with (
            contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src,
            contextlib.closing(sqlite3.connect(tmp)) as out,
        ):
            src.backup(out)
            out.execute("PRAGMA journal_mode=DELETE")  # one self-contained file (Prefect sets WAL)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
