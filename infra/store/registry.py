"""Queries behind the LoRA adapter registry methods of ``Store``.

A record is any JSON object with string ``name`` and ``version``; ``kind`` and
``base_model`` are copied into columns for filtering. Records come back as given.
"""

from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from patchsmith.errors import StoreError
from patchsmith.infra.store.models import AdapterRow
from patchsmith.infra.store.sql import table, upsert


def put(session: Session, record: dict[str, Any]) -> None:
    """Insert or replace the record for (name, version)."""
    name, version = record.get("name"), record.get("version")
    if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
        raise StoreError(
            f"store: an adapter record needs non-empty string 'name' and 'version' "
            f"(got name={name!r}, version={version!r})"
        )
    kind, base = record.get("kind"), record.get("base_model")
    values = {
        "name": name,
        "version": version,
        "kind": str(kind) if kind is not None else None,
        "base_model": str(base) if base is not None else None,
        "record": dict(record),
        "created": time.time(),
    }
    session.execute(
        upsert(session, table(AdapterRow), ["name", "version"], ["kind", "base_model", "record"]),
        [values],
    )


def get(session: Session, name: str, version: str | None) -> dict[str, Any] | None:
    """One record, or the most recently registered version of ``name``."""
    stmt = select(AdapterRow.record).where(AdapterRow.name == name)
    if version is not None:
        stmt = stmt.where(AdapterRow.version == version)
    stmt = stmt.order_by(AdapterRow.created.desc(), AdapterRow.version.desc()).limit(1)
    return session.scalars(stmt).first()


def listing(session: Session, kind: str | None) -> list[dict[str, Any]]:
    """All records (of one kind), by name, then registration time."""
    stmt = select(AdapterRow.record).order_by(AdapterRow.name, AdapterRow.created)
    if kind is not None:
        stmt = stmt.where(AdapterRow.kind == kind)
    return list(session.scalars(stmt))


def remove(session: Session, name: str, version: str) -> bool:
    """Delete one version; True when a row went."""
    stmt = delete(AdapterRow).where(AdapterRow.name == name, AdapterRow.version == version)
    return bool(cast(CursorResult[Any], session.execute(stmt)).rowcount)
