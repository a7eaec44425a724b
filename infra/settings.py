"""Where patchsmith keeps its data, and the environment it sets up for Prefect and MLflow.

Everything lives under one data directory, ``$PATCHSMITH_HOME`` (default ``./.patchsmith``):
the Prefect ephemeral API database, the MLflow store, the provenance store and workspaces.
``configure()`` must run before Prefect is imported (the CLI and flows call it first).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def home() -> Path:
    """The data directory (``$PATCHSMITH_HOME`` or ``./.patchsmith``), absolute."""
    return Path(os.environ.get("PATCHSMITH_HOME", ".patchsmith")).resolve()


def cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where patchsmith keeps what any data directory may reuse (``$PATCHSMITH_CACHE``, else
    ``$XDG_CACHE_HOME/patchsmith`` or ``~/.cache/patchsmith``): model files, a migrated
    Prefect database."""
    if env.get("PATCHSMITH_CACHE"):
        return Path(env["PATCHSMITH_CACHE"])
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "patchsmith"


def configure(data_dir: Path | None = None) -> Path:
    """Create the data directory and point Prefect/MLflow defaults into it (offline, quiet).

    Only sets variables the user has not set, so an explicit PREFECT_API_URL (a real Prefect
    server) or MLFLOW_TRACKING_URI wins.
    """
    root = (data_dir or home()).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ["PATCHSMITH_HOME"] = str(root)
    defaults = {
        "PREFECT_HOME": str(root / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return root
