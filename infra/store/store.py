"""The provenance store: campaigns, instance runs, attempts, outcomes, artifacts.

One ``Store`` is shared by every thread of a campaign. Each call is one short
transaction; writes start with ``BEGIN IMMEDIATE`` on SQLite and are retried a
bounded number of times when the database stays locked. Database errors leave as
``StoreError``.
"""

from __future__ import annotations

import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Engine, bindparam, select, update
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from patchsmith.config import Campaign
from patchsmith.domain import Attempt, Instance, Outcome, Usage, config_hash
from patchsmith.errors import StoreError
from patchsmith.infra.store import registry
from patchsmith.infra.store.codec import (
    Blob,
    attempt_from,
    attempt_values,
    decode_text,
    outcome_from,
    outcome_values,
    unpack,
)
from patchsmith.infra.store.engine import (
    WRITE_OPTION,
    check_connection,
    default_url,
    describe_open_error,
    make_engine,
    parse_url,
)
from patchsmith.infra.store.migrate import upgrade
from patchsmith.infra.store.models import (
    ArtifactRow,
    AttemptRow,
    CampaignRow,
    InstanceRow,
    OutcomeRow,
)
from patchsmith.infra.store.sql import insert_ignore, table

T = TypeVar("T")
MAX_TRIES = 8
_TRANSIENT = ("database is locked", "database is busy", "deadlock detected", "could not serialize")


class Store:
    """Provenance of every campaign, instance run and attempt. Thread-safe."""

    def __init__(self, engine: Engine) -> None:
        """Wrap a migrated engine; use :meth:`open` to get one."""
        self._engine = engine
        self._reader = sessionmaker(engine, expire_on_commit=False)
        self._writer = sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    @classmethod
    def open(cls, url: str | None = None, *, home: Path | None = None) -> Store:
        """Connect, check and migrate to head; StoreError with a fix-it message if not."""
        engine = make_engine(parse_url(url if url is not None else default_url(home)))
        try:
            check_connection(engine)
            try:
                upgrade(engine)
            except (DBAPIError, sqlite3.Error) as exc:
                raise StoreError(describe_open_error(engine.url, exc)) from exc
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for reports and tests that query directly)."""
        return self._engine

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- transactions

    def _run(self, what: str, fn: Callable[[Session], T], *, write: bool) -> T:
        maker = self._writer if write else self._reader
        for attempt in range(1, MAX_TRIES + 1):
            try:
                with maker.begin() as session:
                    return fn(session)
            except OperationalError as exc:
                transient = any(m in str(exc.orig).lower() for m in _TRANSIENT)
                if not transient or attempt == MAX_TRIES:
                    raise StoreError(f"store: {what} failed: {exc.orig}") from exc
                time.sleep(random.uniform(0, min(0.02 * 2**attempt, 1.0)))
            except SQLAlchemyError as exc:
                detail = getattr(exc, "orig", None) or exc
                raise StoreError(f"store: {what} failed: {detail}") from exc
        raise AssertionError("unreachable")

    def _write(self, what: str, fn: Callable[[Session], T]) -> T:
        return self._run(what, fn, write=True)

    def _read(self, what: str, fn: Callable[[Session], T]) -> T:
        return self._run(what, fn, write=False)

    @staticmethod
    def _put_blobs(session: Session, blobs: Iterable[Blob]) -> None:
        now = time.time()
        rows = [b.values(now) for b in blobs]
        if rows:
            session.execute(insert_ignore(session, table(ArtifactRow)), rows)

    @staticmethod
    def _texts(session: Session, shas: Iterable[str | None]) -> dict[str, str]:
        wanted = {s for s in shas if s}
        if not wanted:
            return {}
        rows = session.execute(
            select(ArtifactRow.sha256, ArtifactRow.encoding, ArtifactRow.data).where(
                ArtifactRow.sha256.in_(wanted)
            )
        )
        return {sha: decode_text(unpack(enc, data)) for sha, enc, data in rows}

    # ---------------------------------------------------------------- campaigns

    def start_campaign(
        self, campaign: Campaign, *, config: dict[str, Any], flow_run_id: str | None = None
    ) -> str:
        """Record a new campaign run; returns its id (uuid4 hex)."""
        row = CampaignRow(
            id=uuid.uuid4().hex,
            name=campaign.name,
            flow_run_id=flow_run_id,
            config=config,
            config_hash=config_hash(config),
            status="running",
            started=time.time(),
        )
        self._write("start_campaign", lambda s: s.add(row))
        return row.id

    def finish_campaign(self, campaign_id: str, status: str) -> None:
        """Mark a campaign run finished with ``status`` (completed, failed, interrupted)."""
        stmt = (
            update(CampaignRow)
            .where(CampaignRow.id == campaign_id)
            .values(status=status, finished=time.time())
        )
        self._must_update("finish_campaign", stmt, f"campaign run {campaign_id}")

    def campaign(self, campaign_id: str) -> dict[str, Any]:
        """One campaign run (as in ``campaign_runs``); a StoreError names a missing one."""
        stmt = select(CampaignRow).where(CampaignRow.id == campaign_id)
        row = self._read("campaign", lambda s: s.scalars(stmt).first())
        if row is None:
            where = self.engine.url.render_as_string(hide_password=True)
            raise StoreError(
                f"store {where}: no campaign run {campaign_id}: every worker must use the "
                "parent flow's store (set PATCHSMITH_DB_URL to the same database everywhere)"
            )
        return _campaign_dict(row)

    def campaign_runs(self, name: str | None = None) -> list[dict[str, Any]]:
        """Campaign runs, oldest first: id, name, started, finished, status, config."""
        stmt = select(CampaignRow).order_by(CampaignRow.started, CampaignRow.id)
        if name is not None:
            stmt = stmt.where(CampaignRow.name == name)
        rows = self._read("campaign_runs", lambda s: list(s.scalars(stmt)))
        return [_campaign_dict(r) for r in rows]

    # ------------------------------------------------------------ instance runs

    def start_instance(self, campaign_id: str, instance: Instance, key: str) -> str:
        """Record the start of one instance's repair; returns the instance-run id."""
        row = InstanceRow(
            id=uuid.uuid4().hex,
            campaign_id=campaign_id,
            instance_id=instance.instance_id,
            key=key,
            repo=instance.repo,
            base_commit=instance.base_commit,
            instance=instance.model_dump(mode="json"),
            status="running",
            started=time.time(),
            tracking_synced=False,
        )
        self._write("start_instance", lambda s: s.add(row))
        return row.id

    def interrupt_instance(self, instance_run_id: str) -> None:
        """Mark an instance run stopped before its outcome (status ``interrupted``).

        It stays unfinished: it has no outcome, ``sync-tracking`` leaves it alone, and its
        attempts count for the next run under the same key (resume).
        """
        stmt = (
            update(InstanceRow)
            .where(InstanceRow.id == instance_run_id)
            .values(status="interrupted")
        )
        self._must_update("interrupt_instance", stmt, f"instance run {instance_run_id}")

    def abandon_instance_runs(self, campaign_id: str, instance_id: str) -> int:
        """Mark the ``running`` runs of one instance in one campaign run ``crashed``.

        For a run whose process died without a word (a worker lost with its machine): like
        an interrupted run it has no outcome and its attempts count for the next run under
        the same key. Returns how many runs were marked.
        """
        stmt = (
            update(InstanceRow)
            .where(
                InstanceRow.campaign_id == campaign_id,
                InstanceRow.instance_id == instance_id,
                InstanceRow.status == "running",
            )
            .values(status="crashed")
        )

        def go(session: Session) -> int:
            return int(cast(CursorResult[Any], session.execute(stmt)).rowcount)

        return self._write("abandon_instance_runs", go)

    def instance_runs(self, campaign_id: str) -> list[dict[str, Any]]:
        """Instance runs of one campaign run, oldest first."""
        stmt = (
            select(InstanceRow)
            .where(InstanceRow.campaign_id == campaign_id)
            .order_by(InstanceRow.started, InstanceRow.id)
        )
        return [
            _instance_dict(r) for r in self._read("instance_runs", lambda s: list(s.scalars(stmt)))
        ]

    def unsynced_instance_runs(self) -> list[dict[str, Any]]:
        """Finished instance runs not yet copied to MLflow (for ``sync-tracking``)."""
        stmt = (
            select(InstanceRow)
            .where(InstanceRow.tracking_synced.is_(False), InstanceRow.finished.is_not(None))
            .order_by(InstanceRow.started, InstanceRow.id)
        )
        return [_instance_dict(r) for r in self._read("unsynced", lambda s: list(s.scalars(stmt)))]

    def mark_tracking_synced(self, instance_run_id: str, mlflow_run_id: str) -> None:
        """Remember that an instance run is in MLflow, under ``mlflow_run_id``."""
        stmt = (
            update(InstanceRow)
            .where(InstanceRow.id == instance_run_id)
            .values(tracking_synced=True, mlflow_run_id=mlflow_run_id)
        )
        self._must_update("mark_tracking_synced", stmt, f"instance run {instance_run_id}")

    def _must_update(self, what: str, stmt: Any, thing: str) -> None:
        def go(session: Session) -> None:
            if cast(CursorResult[Any], session.execute(stmt)).rowcount == 0:
                raise StoreError(f"store: {what}: no {thing}")

        self._write(what, go)

    # ---------------------------------------------------------------- attempts

    def record_attempt(self, instance_run_id: str, attempt: Attempt) -> None:
        """Store a finished attempt; a second call with the same number is a no-op.

        Refused for a run marked ``crashed``: its instance was given to another process,
        which resumes after the attempts stored so far (see ``abandon_instance_runs``)."""
        values, blobs = attempt_values(instance_run_id, attempt)

        def go(session: Session) -> None:
            _refuse_if_abandoned(session, instance_run_id)
            self._put_blobs(session, blobs)
            session.execute(insert_ignore(session, table(AttemptRow)), [values])

        self._write("record_attempt", go)

    def attempts_for_key(self, key: str) -> list[Attempt]:
        """Every attempt recorded under ``key``, across runs: oldest run first, by number."""
        return self._attempts("attempts_for_key", InstanceRow.key == key)

    def attempts_for_run(self, instance_run_id: str) -> list[Attempt]:
        """The attempts of one instance run, by number (for ``sync-tracking``)."""
        return self._attempts("attempts_for_run", InstanceRow.id == instance_run_id)

    def generator_attempts(self, generator: str) -> list[tuple[bool, list[str]]]:
        """(accepted, operators) of every attempt of ``generator`` (``tune-search``)."""
        stmt = select(AttemptRow.status, AttemptRow.payload).where(
            AttemptRow.generator == generator
        )

        def go(session: Session) -> list[tuple[bool, list[str]]]:
            out = []
            for status, payload in session.execute(stmt):
                candidate = (payload or {}).get("candidate") or {}
                operators = candidate.get("operators") or []
                out.append((status == "accepted", [str(op) for op in operators]))
            return out

        return self._read("generator_attempts", go)

    def model_usage(self, model_id: str) -> tuple[int, Usage]:
        """(attempts, summed usage) of every recorded attempt of ``model_id`` (pre-flight
        rates: tokens and model seconds per call as this machine ran them)."""
        stmt = select(AttemptRow.payload).where(AttemptRow.model_id == model_id)

        def go(session: Session) -> tuple[int, Usage]:
            count, total = 0, Usage()
            for (payload,) in session.execute(stmt):
                usage = Usage.model_validate((payload or {}).get("usage") or {})
                if usage.completion_tokens:  # not a verify-only run, which reuses a reply
                    count += 1
                    total = total + usage
            return count, total

        return self._read("model_usage", go)

    def _attempts(self, what: str, where: Any) -> list[Attempt]:
        stmt = (
            select(AttemptRow.payload, AttemptRow.diff_sha, AttemptRow.log_sha)
            .join(InstanceRow, InstanceRow.id == AttemptRow.instance_run_id)
            .where(where)
            .order_by(InstanceRow.started, InstanceRow.id, AttemptRow.number)
        )

        def go(session: Session) -> list[Attempt]:
            rows = session.execute(stmt).all()
            texts = self._texts(session, [s for r in rows for s in (r.diff_sha, r.log_sha)])
            return [attempt_from(r.payload, r.diff_sha, r.log_sha, texts.__getitem__) for r in rows]

        return self._read(what, go)

    # ---------------------------------------------------------------- outcomes

    def record_outcome(self, instance_run_id: str, key: str, outcome: Outcome) -> None:
        """Store the outcome of an instance run (once) and mark the run finished."""

        def go(session: Session) -> None:
            run = session.get(InstanceRow, instance_run_id)
            if run is None:
                raise StoreError(f"store: record_outcome: no instance run {instance_run_id}")
            _refuse_if_abandoned(session, instance_run_id)
            if run.key != key:
                raise StoreError(
                    f"store: record_outcome: key {key[:12]}… differs from the key "
                    f"{run.key[:12]}… the instance run was started with"
                )
            values, blobs = outcome_values(instance_run_id, run.campaign_id, key, outcome)
            existing = session.scalars(
                select(OutcomeRow).where(OutcomeRow.instance_run_id == instance_run_id)
            ).first()
            if existing is not None:
                if existing.payload == values["payload"]:
                    return
                raise StoreError(
                    f"store: instance run {instance_run_id} already has an outcome "
                    f"({existing.status}); start a new instance run to record another"
                )
            self._put_blobs(session, blobs)
            now = time.time()
            session.add(OutcomeRow(**values, created=now))
            run.status, run.finished = outcome.status.value, now

        self._write("record_outcome", go)

    def find_outcome(self, key: str) -> Outcome | None:
        """The latest outcome stored under ``key`` (for resume), or None."""
        return self._one_outcome("find_outcome", OutcomeRow.key == key)

    def outcome_for_run(self, instance_run_id: str) -> Outcome | None:
        """The outcome of one instance run, or None while it has none."""
        return self._one_outcome("outcome_for_run", OutcomeRow.instance_run_id == instance_run_id)

    def _one_outcome(self, what: str, where: Any) -> Outcome | None:
        stmt = (
            select(OutcomeRow.payload, OutcomeRow.patch_sha)
            .where(where)
            .order_by(OutcomeRow.created.desc(), OutcomeRow.id.desc())
            .limit(1)
        )

        def go(session: Session) -> Outcome | None:
            row = session.execute(stmt).first()
            if row is None:
                return None
            texts = self._texts(session, [row.patch_sha])
            return outcome_from(row.payload, row.patch_sha, texts.__getitem__)

        return self._read(what, go)

    def outcomes(
        self, campaign_id: str, instance_ids: Iterable[str] | None = None
    ) -> list[Outcome]:
        """Outcomes of one campaign run (of these instances only, when given), in the order
        they were recorded."""
        stmt = (
            select(OutcomeRow.payload, OutcomeRow.patch_sha)
            .where(OutcomeRow.campaign_id == campaign_id)
            .order_by(OutcomeRow.created, OutcomeRow.id)
        )
        if instance_ids is not None:
            stmt = stmt.where(OutcomeRow.instance_id.in_(list(instance_ids)))

        def go(session: Session) -> list[Outcome]:
            rows = session.execute(stmt).all()
            texts = self._texts(session, [r.patch_sha for r in rows])
            return [outcome_from(r.payload, r.patch_sha, texts.__getitem__) for r in rows]

        return self._read("outcomes", go)

    # --------------------------------------------------------------- artifacts

    def put_artifact(self, data: bytes, kind: str) -> str:
        """Store bytes once (content-addressed); returns their sha256 hex."""
        blob = Blob.of(data, kind)
        self._write("put_artifact", lambda s: self._put_blobs(s, [blob]))
        return blob.sha256

    def get_artifact(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``; StoreError when there are none."""
        stmt = select(ArtifactRow.encoding, ArtifactRow.data).where(ArtifactRow.sha256 == sha256)
        row = self._read("get_artifact", lambda s: s.execute(stmt).first())
        if row is None:
            raise StoreError(f"store: no artifact {sha256}")
        return unpack(row.encoding, row.data)

    # ---------------------------------------------------------------- adapters

    def put_adapter(self, record: dict[str, Any]) -> None:
        """Add or replace a LoRA adapter record (needs string ``name`` and ``version``)."""
        self._write("put_adapter", lambda s: registry.put(s, record))

    def get_adapter(self, name: str, version: str | None = None) -> dict[str, Any] | None:
        """One adapter record; the latest registered version when ``version`` is None."""
        return self._read("get_adapter", lambda s: registry.get(s, name, version))

    def list_adapters(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Adapter records, by name then registration time; optionally of one kind."""
        return self._read("list_adapters", lambda s: registry.listing(s, kind))

    def remove_adapter(self, name: str, version: str) -> bool:
        """Forget one adapter version; False when it was not there."""
        return self._write("remove_adapter", lambda s: registry.remove(s, name, version))


_INSTANCE_STATUS = select(table(InstanceRow).c.status).where(
    table(InstanceRow).c.id == bindparam("id")
)
"""The fence's query, as a Core statement: the ORM's per-call overhead was ~0.7 ms, a third
of an attempt's record on a small machine."""


def _refuse_if_abandoned(session: Session, instance_run_id: str) -> None:
    """A fence for a process that was given up for dead but still runs (its heartbeats
    were late): once its run is ``crashed`` it may write nothing more."""
    status = session.connection().execute(_INSTANCE_STATUS, {"id": instance_run_id}).scalar()
    if status == "crashed":
        raise StoreError(
            f"store: instance run {instance_run_id} was given up as crashed (its flow run "
            "stopped sending heartbeats) and its instance resubmitted: this process must "
            "stop; the new run resumes after the attempts stored before"
        )


def _campaign_dict(r: CampaignRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "started": r.started,
        "finished": r.finished,
        "status": r.status,
        "config": r.config,
        "config_hash": r.config_hash,
        "flow_run_id": r.flow_run_id,
    }


def _instance_dict(r: InstanceRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "campaign_id": r.campaign_id,
        "instance_id": r.instance_id,
        "instance": r.instance,
        "key": r.key,
        "base_commit": r.base_commit,
        "status": r.status,
        "started": r.started,
        "finished": r.finished,
        "tracking_synced": r.tracking_synced,
        "mlflow_run_id": r.mlflow_run_id,
    }


__all__ = ["Store"]
