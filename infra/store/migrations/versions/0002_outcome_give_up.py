"""Outcomes record why an unresolved instance ended (``give_up``: budget, exhausted, ...).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 09:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision: a nullable, indexed column (older rows stay NULL)."""
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("give_up", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_outcomes_give_up"), ["give_up"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outcomes_give_up"))
        batch_op.drop_column("give_up")
