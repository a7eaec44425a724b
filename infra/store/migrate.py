"""Schema migrations, applied automatically when a store opens.

Alembic runs programmatically (no alembic.ini) from ``migrations/`` inside the package.
Opening is safe when several processes start at once: SQLite serializes on ``BEGIN
IMMEDIATE``, PostgreSQL on an advisory lock. A database stamped with a revision this
code does not know is refused (it was written by a newer patchsmith).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from patchsmith.errors import StoreError
from patchsmith.infra.store.engine import WRITE_OPTION
from patchsmith.infra.store.models import Base

MIGRATIONS = Path(__file__).parent / "migrations"
#: own version table, so the store can share a PostgreSQL database with other apps.
VERSION_TABLE = "patchsmith_alembic_version"
_PG_LOCK_KEY = 0x7061746368  # "patch"


def alembic_config(url: str = "") -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def head_revisions() -> set[str]:
    """The revisions this code migrates to."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(conn: Connection) -> set[str]:
    """The revisions the database is stamped with (empty for a fresh database)."""
    ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return set(ctx.get_current_heads())


def upgrade(engine: Engine) -> None:
    """Bring the database to head, or refuse a schema newer than this code."""
    cfg = alembic_config()
    script = ScriptDirectory.from_config(cfg)
    known = {rev.revision for rev in script.walk_revisions()}
    heads = set(script.get_heads())
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        current = current_revisions(conn)
        if current - known:
            raise StoreError(
                f"store {engine.url.render_as_string(hide_password=True)} has schema revision "
                f"{', '.join(sorted(current - known))}, newer than this patchsmith knows "
                f"({', '.join(sorted(heads))}): upgrade patchsmith (pip install -U patchsmith), "
                f"or point PATCHSMITH_DB_URL at another store"
            )
        if current == heads:
            return
        if not current:
            clash = set(inspect(conn).get_table_names()) & set(Base.metadata.tables)
            if clash:
                raise StoreError(
                    f"store {engine.url.render_as_string(hide_password=True)} already has "
                    f"tables {sorted(clash)} but no {VERSION_TABLE}: it is not a patchsmith "
                    f"store (or lost its version); use another database or file"
                )
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def revision(message: str) -> None:
    """Developer helper: autogenerate a new revision from the models (needs a checkout)."""
    from sqlalchemy import create_engine

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/head.db")
        upgrade(engine)
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.revision(cfg, message, autogenerate=True)
        engine.dispose()
