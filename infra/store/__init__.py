"""The provenance store: SQLAlchemy models, Alembic migrations, and :class:`Store`.

``Store.open()`` picks the database (``PATCHSMITH_DB_URL``, else SQLite under
``PATCHSMITH_HOME``), migrates it to head, and refuses unusable ones with a message
that says what to fix.
"""

from patchsmith.infra.store.store import Store

__all__ = ["Store"]
