"""Small dialect helpers: the same upsert statements on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def table(model: type[Any]) -> Table:
    """The Core table behind an ORM class."""
    return cast(Table, model.__table__)


def _insert(session: Session, target: Table) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(target)


def insert_ignore(session: Session, target: Table) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING``: rows whose keys exist are skipped."""
    return _insert(session, target).on_conflict_do_nothing()


def upsert(session: Session, target: Table, keys: list[str], columns: list[str]) -> Any:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` of ``columns``."""
    stmt = _insert(session, target)
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={c: stmt.excluded[c] for c in columns}
    )
