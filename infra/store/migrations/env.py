"""Alembic environment: runs on the connection that ``migrate.upgrade`` hands over.

There is no alembic.ini; ``patchsmith.infra.store.migrate.alembic_config`` builds the
config. To write a new revision from a checkout::

    python -c "from patchsmith.infra.store.migrate import revision; revision('add x')"
"""

from __future__ import annotations

from alembic import context

from patchsmith.infra.store.migrate import VERSION_TABLE
from patchsmith.infra.store.models import Base

config = context.config
connection = config.attributes.get("connection")

if connection is None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
        render_as_batch=True,
    )
else:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
    )

with context.begin_transaction():
    context.run_migrations()
