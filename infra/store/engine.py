"""Database URLs and engines: where the store lives and how connections behave.

SQLite (the default) gets WAL, a 30 s busy timeout, foreign keys, and ``BEGIN
IMMEDIATE`` for write transactions, so that concurrent writers queue on the lock
instead of failing a read→write upgrade. PostgreSQL is reached through psycopg 3.
Every failure to reach or open the database becomes a ``StoreError`` that says what
to fix.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from patchsmith.errors import StoreError

BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5
#: execution option that makes a SQLite transaction start with ``BEGIN IMMEDIATE``.
WRITE_OPTION = "patchsmith_write"
URL_HELP = (
    "use sqlite:////abs/path/patchsmith.db or postgresql://user@host:5432/dbname "
    "(set PATCHSMITH_DB_URL, or unset it to use the SQLite file under PATCHSMITH_HOME)"
)


def default_url(home: Path | None = None) -> str:
    """``$PATCHSMITH_DB_URL``, else a SQLite file in the data directory (created).

    The data directory is ``home``, else ``$PATCHSMITH_HOME``, else ``./.patchsmith``.
    """
    env_url = os.environ.get("PATCHSMITH_DB_URL")
    if env_url:
        return env_url
    if home is None:
        home = Path(os.environ.get("PATCHSMITH_HOME") or ".patchsmith")
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home.resolve() / 'patchsmith.db'}"


def parse_url(url: str) -> URL:
    """Parse and normalize a URL; ``postgresql://`` means psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"store URL {url!r} cannot be parsed: {URL_HELP}") from exc
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(
            f"store URL {_shown(parsed)}: unknown database dialect {backend!r}; "
            f"patchsmith stores into SQLite or PostgreSQL: {URL_HELP}"
        )
    if backend == "sqlite":
        _check_sqlite_path(parsed)
    return parsed


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _check_sqlite_path(url: URL) -> None:
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        raise StoreError(
            f"store URL {_shown(url)}: an in-memory SQLite database is not shared between "
            f"threads and is lost at exit: give a file path instead ({URL_HELP})"
        )
    parent = Path(db).expanduser().parent
    if not parent.is_dir():
        raise StoreError(
            f"store URL {_shown(url)}: directory {parent} does not exist: create it "
            f"(mkdir -p {parent}) or point PATCHSMITH_DB_URL elsewhere"
        )


def make_engine(url: URL) -> Engine:
    """An engine configured for many threads sharing it; nothing is connected yet."""
    try:
        if url.get_backend_name() == "sqlite":
            engine = create_engine(
                url,
                connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
                pool_size=8,
                max_overflow=32,
                pool_timeout=60,
            )
            _configure_sqlite(engine)
            return engine
        return create_engine(
            url,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
            pool_size=8,
            max_overflow=32,
            pool_pre_ping=True,
        )
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise StoreError(
            f"store URL {_shown(url)}: the database driver {url.get_driver_name()!r} is not "
            f"installed: use postgresql+psycopg://… (psycopg 3 ships with patchsmith) or "
            f"pip install the driver ({exc})"
        ) from exc


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def check_connection(engine: Engine, *, attempts: int = 20) -> None:
    """Connect once; turn every failure into a StoreError that says what to fix.

    Two processes opening a fresh SQLite file race to switch it to WAL, and that switch
    fails with "database is locked" at once (the busy timeout does not cover it), so a
    locked database is retried a bounded number of times before giving up.
    """
    url = engine.url
    for attempt in range(1, attempts + 1):
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                if url.get_backend_name() == "sqlite":
                    conn.execute(text("SELECT count(*) FROM sqlite_master"))
            return
        except (DBAPIError, sqlite3.Error) as exc:
            if attempt < attempts and "database is locked" in str(exc):
                engine.dispose()
                time.sleep(0.05 * attempt)
                continue
            raise StoreError(describe_open_error(url, exc)) from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"store {_shown(url)}: cannot be used: {exc}") from exc


def describe_open_error(url: URL, exc: BaseException) -> str:
    """A fix-it message for an error raised while opening the database."""
    orig = getattr(exc, "orig", None) or exc
    detail = " ".join(str(orig).split())
    if url.get_backend_name() == "sqlite":
        if "not a database" in detail or "malformed" in detail:
            return (
                f"store {url.database} is corrupt or not a SQLite database ({detail}): "
                f"move it aside (or restore a backup) and run again to start a fresh store"
            )
        return (
            f"store {url.database} cannot be opened ({detail}): check the path and its "
            f"permissions, or point PATCHSMITH_DB_URL elsewhere"
        )
    return (
        f"cannot connect to the store database at {_shown(url)} ({detail}): check that "
        f"PostgreSQL is running and reachable there, that the database exists "
        f"(createdb …), and that the user may log in; fix PATCHSMITH_DB_URL if it is wrong"
    )
