"""Existing interpreters and venvs: where they live and what the sandbox must bind for them.

Nothing here executes an interpreter: a venv is recognised by its ``pyvenv.cfg`` (whose
``home =`` names the base interpreter, bound too), a plain install by ``…/bin/pythonX.Y``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SYSTEM_PREFIXES = ("/usr", "/bin", "/sbin", "/lib", "/lib64")
"""Bound read-only in every sandbox already."""
PYTHON_NAME = re.compile(r"python[0-9.]*")


@dataclass(frozen=True)
class Interpreter:
    """A Python the sandbox can run: its executable, its bin dir and what to bind for it."""

    python: str
    bin_dir: str
    binds: tuple[str, ...]
    version: str | None = None
    venv: str | None = None

    @property
    def major_minor(self) -> str | None:
        return ".".join(self.version.split(".")[:2]) if self.version else None


def _pyvenv(root: Path) -> dict[str, str]:
    cfg = root / "pyvenv.cfg"
    if not cfg.is_file():
        return {}
    out: dict[str, str] = {}
    for line in cfg.read_text(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _prefix_of(executable: Path) -> Path:
    """``/x/bin/python3.11`` → ``/x`` (the install's prefix)."""
    parent = executable.parent
    return parent.parent if parent.name == "bin" else parent


def _bindable(paths: Sequence[Path]) -> tuple[str, ...]:
    """Real paths to bind, leaving out what the sandbox binds anyway and never ``/``."""
    out: list[str] = []
    for path in paths:
        real = os.path.realpath(path)
        if real == "/" or any(real == p or real.startswith(p + "/") for p in SYSTEM_PREFIXES):
            continue
        if real not in out:
            out.append(real)
    return tuple(out)


def locate_python(path: str | Path) -> Interpreter:
    """An interpreter (``…/bin/python``) or a venv/prefix directory → :class:`Interpreter`.

    Raises FileNotFoundError when there is no such interpreter. Nothing is executed.
    """
    given = Path(path).expanduser()
    if given.is_dir():
        root = given
        exe = next(
            (root / "bin" / n for n in ("python", "python3") if (root / "bin" / n).exists()),
            None,
        )
        if exe is None:
            raise FileNotFoundError(f"{given} has no bin/python or bin/python3")
    elif given.exists():
        exe, root = given, _prefix_of(given)
    else:
        raise FileNotFoundError(f"{given} does not exist")
    cfg = _pyvenv(root)
    real = Path(os.path.realpath(exe))
    prefixes = [root, _prefix_of(real)]
    if cfg.get("home"):
        prefixes.append(Path(cfg["home"]).parent)
    version = cfg.get("version_info") or cfg.get("version")
    if version is None:
        m = re.fullmatch(r"python(\d+\.\d+)", real.name)
        version = m.group(1) if m else None
    bin_dir = os.path.realpath(root / "bin") if (root / "bin").is_dir() else str(exe.parent)
    return Interpreter(
        python=str(Path(bin_dir) / exe.name) if cfg else str(exe),
        bin_dir=bin_dir,
        binds=_bindable(prefixes),
        version=version,
        venv=os.path.realpath(root) if cfg else None,
    )


def own_interpreter() -> Interpreter:
    """patchsmith's base interpreter (what ``install`` builds from when ``python`` is unset)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    interp = locate_python(base)
    v = sys.version_info
    return Interpreter(
        python=interp.python,
        bin_dir=interp.bin_dir,
        binds=interp.binds,
        version=f"{v.major}.{v.minor}.{v.micro}",
    )
