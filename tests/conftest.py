"""Shared fixtures: a fresh data directory per test, Prefect's test harness once per session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
# The kept migrated Prefect database (infra/prefect_db.py): one per session, not the user's.
os.environ.setdefault("PATCHSMITH_CACHE", tempfile.mkdtemp(prefix="patchsmith-cache-"))

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI a missing bubblewrap fails the run: the sandbox tests must not silently skip."""
    if os.environ.get("CI") == "true" and shutil.which("bwrap") is None:
        raise pytest.UsageError(
            "CI=true but bubblewrap (bwrap) is not on PATH, so the sandbox tests cannot run; "
            "install it (scripts/install.sh does, as root: apt-get install bubblewrap)"
        )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh PATCHSMITH_HOME (store, MLflow, workspaces) for one test."""
    data = tmp_path / "home"
    data.mkdir()
    monkeypatch.setenv("PATCHSMITH_HOME", str(data))
    monkeypatch.delenv("PATCHSMITH_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return data


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Prefect's own test harness (a temporary API on SQLite), started once per session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (127.0.0.1:5432), dropped at the end."""
    from store_helpers import (
        postgres_unreachable_reason,
        temporary_postgres_database,
    )

    reason = postgres_unreachable_reason()
    if reason:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    with temporary_postgres_database() as url:
        yield url


@pytest.fixture
def fresh_backends() -> Iterator[None]:
    """No model backend cached from another test, before or after (scripted fakes and
    tiny models register themselves process-wide)."""
    from patchsmith.tasks.llm.models import clear_backends

    clear_backends()
    yield
    clear_backends()
