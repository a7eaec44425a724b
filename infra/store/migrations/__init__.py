"""Alembic migrations of the provenance store (run by ``patchsmith.infra.store.migrate``)."""
