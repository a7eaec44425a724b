"""What the environment modules share: the build marker, the error, a resolved environment,
config merging, and where builds happen. Below ``envs`` and ``envs_build`` so that imports
between them go one way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from patchsmith.domain import SandboxConfig
from patchsmith.errors import PatchsmithError

MARKER = ".patchsmith-env.json"


class EnvError(PatchsmithError):
    """An environment cannot be used: its build failed, or it is missing. Names the fix."""


@dataclass(frozen=True)
class ResolvedEnv:
    """An environment ready for the sandbox: ``config`` is what test runs use."""

    kind: Literal["default", "python", "install"]
    config: SandboxConfig
    python: str
    key: str | None = None
    path: Path | None = None
    built: bool = False
    seconds: float = 0.0
    record: Mapping[str, Any] = field(default_factory=dict)


def merge_config(
    base: SandboxConfig,
    *,
    ro_paths: Sequence[str] = (),
    path_prepend: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> SandboxConfig:
    """``base`` with extra read-only binds, PATH entries first, and defaults for variables
    the campaign did not set itself (its own ``sandbox.env`` wins)."""
    ro = [*base.ro_paths, *(p for p in ro_paths if p not in base.ro_paths)]
    return base.model_copy(
        update={
            "ro_paths": ro,
            "path_prepend": [*path_prepend, *base.path_prepend],
            "env": {**(env or {}), **base.env},
        }
    )


class BuildSite(Protocol):
    """Where ``install`` environments are built: ``Environments`` is one."""

    root: Path
    sandbox: Any
    workspaces: Any
