"""The cache key of an ``install`` environment: what its content depends on.

A sha256 over: the layout version, the repository's identity (its path or URL), the content
of its dependency files (``pyproject.toml``, ``setup.py``, ``setup.cfg``,
``requirements*.txt`` and every file named by ``-r``/``-c``, followed through requirement
files, plus the build files of local path arguments such as ``.``), the install arguments,
the base interpreter and its version, ``find_links`` with the names and sizes of the files
in them (a new wheel there is a new environment), ``index_url``, the network flag and uv's
version. The repository's other files are not in it: editing code does not rebuild.

Only files inside the repository are read; a dependency file that is a symlink out of the
tree contributes its link text, never the content of the host file it names.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from patchsmith.domain import Environment
from patchsmith.infra.envs_python import Interpreter

ENV_FORMAT = 1
DEP_FILES = ("pyproject.toml", "setup.py", "setup.cfg")
_REQ_OPT = re.compile(r"^(?:-r|-c|--requirement|--constraint)(?:=|\s+)?(.+)$")
_FILE_OPTS = {"-r", "-c", "--requirement", "--constraint"}


def _inside(root: Path, rel: str) -> Path | None:
    """``root/rel`` when it stays inside ``root`` (no ``..`` escape, no absolute path)."""
    if os.path.isabs(rel):
        return None
    candidate = Path(os.path.normpath(root / rel))
    return candidate if candidate == root or root in candidate.parents else None


def _digest(path: Path, root: Path) -> str | None:
    """sha256 of a regular file inside ``root``; a symlink out of the tree hashes its target
    string only (nothing outside the tree is read for a repository's sake)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if os.path.islink(path):
        real = Path(os.path.realpath(path))
        if real != root and root not in real.parents:
            return "symlink:" + os.readlink(path)
        path = real
    elif not path.is_file():
        return None
    if st.st_size > 16 * 1024 * 1024:
        return f"large:{st.st_size}:{st.st_mtime_ns}"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _named_files(args: Sequence[str]) -> list[str]:
    """Files named by -r/-c (in any of pip's spellings) in install arguments."""
    out: list[str] = []
    for i, word in enumerate(args):
        if word in _FILE_OPTS and i + 1 < len(args):
            out.append(args[i + 1])
        elif (m := _REQ_OPT.match(word)) and word not in _FILE_OPTS:
            out.append(m.group(1).strip())
    return out


def _local_dirs(args: Sequence[str]) -> list[str]:
    """Local path arguments (``.``, ``./pkg``, ``.[test]``, ``-e .``) as directories."""
    out = []
    for i, word in enumerate(args):
        if word.startswith("-") or (i > 0 and args[i - 1] in _FILE_OPTS):
            continue
        path = word.split("[", 1)[0]
        if path in (".", "..") or path.startswith(("./", "../", "/")):
            out.append(path)
    return out


def dependency_files(root: Path, install: Sequence[str]) -> dict[str, str]:
    """``{path relative to root: sha256}`` of every file the install's result depends on."""
    root = Path(os.path.realpath(root))
    found: dict[str, str] = {}
    queue: list[str] = [*DEP_FILES, *(p.name for p in sorted(root.glob("requirements*.txt")))]
    queue += _named_files(install)
    for local in _local_dirs(install):
        queue += [f"{local}/{name}" for name in DEP_FILES]
    while queue:
        rel = queue.pop(0)
        path = _inside(root, rel)
        if path is None:
            found.setdefault(rel, "outside the repository")
            continue
        key = path.relative_to(root).as_posix()
        if key in found:
            continue
        digest = _digest(path, root)
        if digest is None:
            continue
        found[key] = digest
        if key.endswith(".txt") and not digest.startswith(("symlink:", "large:")):
            for line in path.read_text(errors="replace").splitlines():
                m = _REQ_OPT.match(line.strip())
                if m:
                    queue.append(str(Path(key).parent / m.group(1).split("#", 1)[0].strip()))
    return dict(sorted(found.items()))


def _listing(directory: str) -> list[str]:
    try:
        return sorted(f"{e.name}:{e.stat().st_size}" for e in os.scandir(directory) if e.is_file())
    except OSError:
        return ["missing"]


def uv_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("uv")
    except PackageNotFoundError:
        return "missing"


def build_key(
    env: Environment, repo: str, pristine: Path, interpreter: Interpreter
) -> tuple[str, dict[str, Any]]:
    """(key, what went into it) of an ``install`` environment; see the module docstring."""
    parts: dict[str, Any] = {
        "format": ENV_FORMAT,
        "repo": repo,
        "files": dependency_files(pristine, env.install),
        "install": list(env.install),
        "python": interpreter.python,
        "python_version": interpreter.version,
        "find_links": {d: _listing(d) for d in env.find_links},
        "index_url": env.index_url,
        "network": env.network,
        "uv": uv_version(),
    }
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24], parts
