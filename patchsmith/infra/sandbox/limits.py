"""Pieces shared by sandbox backends: rlimits, the cleared environment, output tails."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from patchsmith.domain import SandboxConfig


def python_bin_dirs() -> list[str]:
    """bin directories of the running interpreter (venv first), for PATH in the sandbox."""
    dirs = [str(Path(sys.executable).parent)]
    base = str(Path(sys.base_prefix) / "bin")
    if base not in dirs:
        dirs.append(base)
    return dirs


def sandbox_path() -> str:
    """PATH inside the sandbox: the interpreter's bin dirs, then the system's."""
    return os.pathsep.join([*python_bin_dirs(), "/usr/local/bin", "/usr/bin", "/bin"])


def base_env() -> dict[str, str]:
    """A cleared environment: no host variables (and so no credentials) leak in."""
    return {
        "PATH": sandbox_path(),
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


def prlimit_prefix(config: SandboxConfig) -> list[str]:
    """argv prefix applying memory/process/cpu limits with util-linux prlimit."""
    mem = config.memory_mb * 1024 * 1024
    cpu = int(config.timeout_s) + 1
    return [
        "prlimit",
        f"--as={mem}",
        f"--nproc={config.max_procs}",
        f"--cpu={cpu}",
        "--core=0",
        "--",
    ]


def tail(data: bytes, limit: int) -> str:
    """Last ``limit`` bytes, decoded leniently."""
    return data[-limit:].decode("utf-8", errors="replace")
