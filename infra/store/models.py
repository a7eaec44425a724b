"""ORM tables of the provenance store.

One row per campaign run, per instance run, per attempt and per outcome; big text
(diffs, logs, final patches) lives once in ``artifacts``, addressed by its sha256.
Times are Unix epoch seconds (floats), like ``Attempt.started_at``.

Changing a table here needs a new migration under ``migrations/versions/``;
``tests/test_store.py`` checks that the migrations and these models agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Sha = String(64)
RunId = String(32)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (needed by migrations)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class CampaignRow(Base):
    """One run of a campaign (a re-run is a new row)."""

    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(RunId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    config: Mapped[dict[str, Any]]
    config_hash: Mapped[str] = mapped_column(Sha)
    #: running, completed, failed or interrupted (a plain string: no migration for new ones)
    status: Mapped[str] = mapped_column(String(32))
    started: Mapped[float] = mapped_column(Float)
    finished: Mapped[float | None] = mapped_column(Float)


class InstanceRow(Base):
    """One instance repaired within one campaign run (an "instance run")."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(RunId, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    instance_id: Mapped[str] = mapped_column(String(300))
    key: Mapped[str] = mapped_column(Sha, index=True)
    repo: Mapped[str] = mapped_column(Text)
    base_commit: Mapped[str | None] = mapped_column(String(64))
    instance: Mapped[dict[str, Any]]
    #: running, interrupted (stopped, no outcome), or the outcome's status
    status: Mapped[str] = mapped_column(String(32))
    started: Mapped[float] = mapped_column(Float)
    finished: Mapped[float | None] = mapped_column(Float)
    tracking_synced: Mapped[bool] = mapped_column(Boolean, default=False)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))


class ArtifactRow(Base):
    """Content-addressed bytes: patches, logs. ``encoding`` is ``raw`` or ``zlib``."""

    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(Sha, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    encoding: Mapped[str] = mapped_column(String(8))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[float] = mapped_column(Float)


class AttemptRow(Base):
    """One attempt: searchable columns plus the whole Attempt as JSON (``payload``).

    ``payload`` has the candidate diff and the report log tail blanked; they are the
    artifacts ``diff_sha`` and ``log_sha``.
    """

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("instance_run_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_run_id: Mapped[str] = mapped_column(ForeignKey("instances.id"))
    number: Mapped[int] = mapped_column(Integer)
    tier: Mapped[str] = mapped_column(String(100))
    generator: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(32), index=True)
    model_id: Mapped[str | None] = mapped_column(String(300), index=True)
    adapters: Mapped[list[Any] | None]
    quantization: Mapped[dict[str, Any] | None]
    candidate_id: Mapped[str | None] = mapped_column(String(64))
    diff_sha: Mapped[str | None] = mapped_column(ForeignKey("artifacts.sha256"))
    log_sha: Mapped[str | None] = mapped_column(ForeignKey("artifacts.sha256"))
    verdict: Mapped[str | None] = mapped_column(String(32))
    tests_passed: Mapped[int | None] = mapped_column(Integer)
    tests_failed: Mapped[int | None] = mapped_column(Integer)
    regressions: Mapped[int | None] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(Integer)
    dollars: Mapped[float | None] = mapped_column(Float)
    gpu_seconds: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float)
    payload: Mapped[dict[str, Any]]


class OutcomeRow(Base):
    """The outcome of one instance run (at most one per run)."""

    __tablename__ = "outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_run_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), unique=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    key: Mapped[str] = mapped_column(Sha, index=True)
    instance_id: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer)
    tier: Mapped[str | None] = mapped_column(String(100))
    duration_s: Mapped[float] = mapped_column(Float)
    patch_sha: Mapped[str | None] = mapped_column(ForeignKey("artifacts.sha256"))
    reasons: Mapped[list[Any]]
    give_up: Mapped[str | None] = mapped_column(String(32), index=True)
    usage: Mapped[dict[str, Any]]
    dollars: Mapped[float | None] = mapped_column(Float)
    created: Mapped[float] = mapped_column(Float)
    payload: Mapped[dict[str, Any]]


class AdapterRow(Base):
    """A LoRA adapter registry entry; ``record`` is the whole record as given."""

    __tablename__ = "adapters"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str | None] = mapped_column(String(32), index=True)
    base_model: Mapped[str | None] = mapped_column(String(300))
    record: Mapped[dict[str, Any]]
    created: Mapped[float] = mapped_column(Float)
