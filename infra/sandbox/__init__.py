"""Sandboxes: run one command in a workspace under limits, return an ExecResult.

Backends are found by short name (``get_sandbox("bwrap")``); each lives in its own module,
imported only when used. ``auto`` picks bwrap where bubblewrap exists, else subprocess.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from patchsmith.domain import ExecResult, SandboxConfig
from patchsmith.errors import ConfigError


class Sandbox(Protocol):
    """Runs ``argv`` with ``workspace`` as its writable working directory."""

    name: str

    def run(
        self,
        workspace: Path,
        argv: Sequence[str],
        config: SandboxConfig,
        env: Mapping[str, str] | None = None,
        *,
        pass_fds: Sequence[int] = (),
    ) -> ExecResult:
        """Run to completion or until a limit; raise SandboxStartError if it cannot start.

        ``pass_fds`` stay open in the command (a socket to a warm test runner, say)."""
        ...


BACKENDS: dict[str, str] = {
    "bwrap": "patchsmith.infra.sandbox.bwrap:BwrapSandbox",
    "subprocess": "patchsmith.infra.sandbox.subprocess_backend:SubprocessSandbox",
    "docker": "patchsmith.infra.sandbox.docker_backend:DockerSandbox",
}


def resolve_backend(name: str) -> str:
    """Turn ``auto`` into a concrete backend name."""
    if name == "auto":
        return "bwrap" if shutil.which("bwrap") else "subprocess"
    return name


def get_sandbox(name: str = "auto") -> Sandbox:
    """Return a sandbox backend by short name; an unknown name lists the valid ones."""
    name = resolve_backend(name)
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown sandbox backend {name!r}; choose one of: auto, {', '.join(BACKENDS)}"
        ) from None
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    sandbox: Sandbox = cls()
    return sandbox
