"""Initial schema: campaigns, instances, attempts, artifacts, outcomes, adapters.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 01:14:05.424249
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "adapters",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("base_model", sa.String(length=300), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_adapters")),
    )
    with op.batch_alter_table("adapters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_adapters_kind"), ["kind"], unique=False)

    op.create_table(
        "artifacts",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("encoding", sa.String(length=8), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_artifacts")),
    )
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("started", sa.Float(), nullable=False),
        sa.Column("finished", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaigns_name"), ["name"], unique=False)

    op.create_table(
        "instances",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("instance_id", sa.String(length=300), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("repo", sa.Text(), nullable=False),
        sa.Column("base_commit", sa.String(length=64), nullable=True),
        sa.Column("instance", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("started", sa.Float(), nullable=False),
        sa.Column("finished", sa.Float(), nullable=True),
        sa.Column("tracking_synced", sa.Boolean(), nullable=False),
        sa.Column("mlflow_run_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_instances_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instances")),
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instances_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_instances_key"), ["key"], unique=False)

    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_run_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(length=100), nullable=False),
        sa.Column("generator", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=300), nullable=True),
        sa.Column("adapters", sa.JSON(), nullable=True),
        sa.Column("quantization", sa.JSON(), nullable=True),
        sa.Column("candidate_id", sa.String(length=64), nullable=True),
        sa.Column("diff_sha", sa.String(length=64), nullable=True),
        sa.Column("log_sha", sa.String(length=64), nullable=True),
        sa.Column("verdict", sa.String(length=32), nullable=True),
        sa.Column("tests_passed", sa.Integer(), nullable=True),
        sa.Column("tests_failed", sa.Integer(), nullable=True),
        sa.Column("regressions", sa.Integer(), nullable=True),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("dollars", sa.Float(), nullable=True),
        sa.Column("gpu_seconds", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["diff_sha"], ["artifacts.sha256"], name=op.f("fk_attempts_diff_sha_artifacts")
        ),
        sa.ForeignKeyConstraint(
            ["instance_run_id"],
            ["instances.id"],
            name=op.f("fk_attempts_instance_run_id_instances"),
        ),
        sa.ForeignKeyConstraint(
            ["log_sha"], ["artifacts.sha256"], name=op.f("fk_attempts_log_sha_artifacts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
        sa.UniqueConstraint("instance_run_id", "number", name=op.f("uq_attempts_instance_run_id")),
    )
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attempts_model_id"), ["model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_attempts_status"), ["status"], unique=False)

    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_run_id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(length=100), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("patch_sha", sa.String(length=64), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("usage", sa.JSON(), nullable=False),
        sa.Column("dollars", sa.Float(), nullable=True),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_outcomes_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["instance_run_id"],
            ["instances.id"],
            name=op.f("fk_outcomes_instance_run_id_instances"),
        ),
        sa.ForeignKeyConstraint(
            ["patch_sha"], ["artifacts.sha256"], name=op.f("fk_outcomes_patch_sha_artifacts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcomes")),
        sa.UniqueConstraint("instance_run_id", name=op.f("uq_outcomes_instance_run_id")),
    )
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outcomes_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outcomes_key"), ["key"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outcomes_key"))
        batch_op.drop_index(batch_op.f("ix_outcomes_campaign_id"))

    op.drop_table("outcomes")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attempts_status"))
        batch_op.drop_index(batch_op.f("ix_attempts_model_id"))

    op.drop_table("attempts")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_key"))
        batch_op.drop_index(batch_op.f("ix_instances_campaign_id"))

    op.drop_table("instances")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaigns_name"))

    op.drop_table("campaigns")
    op.drop_table("artifacts")
    with op.batch_alter_table("adapters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_adapters_kind"))

    op.drop_table("adapters")
