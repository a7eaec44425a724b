"""The env store on disk: locks, completion markers, ownership, the tools dir, listing.

See :mod:`patchsmith.infra.envs_build` for the layout under ``$PATCHSMITH_HOME/envs``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from patchsmith.infra.envs_types import MARKER

TOOLS_MARKER = ".patchsmith-tools.json"
TOOL_DISTS = ("pytest", "pytest-cov")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path``: between threads (each opens its own description) and
    between processes sharing the data directory."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_marker(env_dir: Path, key: str | None = None) -> dict[str, Any] | None:
    """The completion record of a finished env, or None (missing, foreign, incomplete)."""
    marker = env_dir / MARKER
    try:
        if not marker.is_file() or marker.is_symlink():
            return None
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or (key is not None and record.get("key") != key):
        return None
    return record if (env_dir / "bin" / "python").exists() else None


def remove_tree(path: Path) -> None:
    """Remove a directory a sandboxed build wrote (rmtree never follows its links)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def harden(root: Path) -> None:
    """Make everything under ``root`` root-owned, not writable by group/other, no set-id.

    Never follows a link (the tree was written by untrusted build code)."""
    if os.geteuid() != 0:
        return
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (dirpath, *(os.path.join(dirpath, n) for n in (*dirnames, *filenames))):
            st = os.lstat(name)
            os.lchown(name, 0, 0)
            if not os.path.islink(name):
                os.chmod(name, st.st_mode & 0o755)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``path`` atomically without following a link planted at either name."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


# ------------------------------------------------------------------ tools dir


def _tool_distributions() -> list[Any]:
    """patchsmith's pytest, pytest-cov and everything they require (markers evaluated)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    seen: dict[str, Any] = {}
    queue = list(TOOL_DISTS)
    while queue:
        name = queue.pop()
        norm = re.sub(r"[-_.]+", "-", name).lower()
        if norm in seen:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        seen[norm] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                queue.append(req.name)
    return sorted(seen.values(), key=lambda d: d.metadata["Name"].lower())


def ensure_tools(root: Path) -> str | None:
    """The tools directory for this interpreter version (built once), or None if empty."""
    dists = _tool_distributions()
    if not dists:
        return None
    v = sys.version_info
    ident = ",".join(f"{d.metadata['Name']}=={d.version}" for d in dists)
    digest = hashlib.sha256(f"{v.major}.{v.minor}.{v.micro}|{ident}".encode()).hexdigest()[:12]
    tools = root / "tools"
    tools.mkdir(parents=True, exist_ok=True)
    final = tools / f"py{v.major}.{v.minor}-{digest}"
    with locked(tools / f"{final.name}.lock"):
        if (final / TOOLS_MARKER).is_file():
            return str(final)
        remove_tree(final)
        final.mkdir()
        for dist in dists:
            base = Path(os.path.realpath(dist.locate_file("")))
            for rel in dist.files or []:
                src = Path(os.path.realpath(dist.locate_file(rel)))
                if base not in src.parents or not src.is_file():
                    continue  # console scripts (../../bin) and anything outside
                dest = final / src.relative_to(base)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
        harden(final)
        write_json(final / TOOLS_MARKER, {"distributions": ident, "python": sys.version})
    return str(final)


def write_log(path: Path, text: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def note_use(root: Path, key: str, label: str) -> None:
    path = root / f"{key}.uses"
    try:
        known = set(path.read_text().splitlines())
    except FileNotFoundError:
        known = set()
    if label not in known:
        with open(path, "a") as fh:
            fh.write(label + "\n")


def _uses(root: Path, key: str) -> list[str]:
    try:
        return [u for u in (root / f"{key}.uses").read_text().splitlines() if u]
    except FileNotFoundError:
        return []


def list_envs(root: Path) -> list[dict[str, Any]]:
    """Every env under ``root``: its marker's record (or ``incomplete``), size and users."""
    out: list[dict[str, Any]] = []
    if not root.is_dir():
        return out
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or entry.is_symlink() or entry.name == "tools":
            continue
        record = read_marker(entry, entry.name)
        out.append(
            {
                "key": entry.name,
                "complete": record is not None,
                "python": (record or {}).get("python", ""),
                "install": (record or {}).get("install", []),
                "built_at": (record or {}).get("built_at", ""),
                "seconds": ((record or {}).get("durations") or {}).get("total"),
                "size": dir_size(entry),
                "used_by": _uses(root, entry.name),
            }
        )
    return out


def remove_env(root: Path, key: str) -> bool:
    """Remove one env (under its lock) with its log and use records; False if unknown."""
    if not re.fullmatch(r"[0-9a-f]{8,64}", key) or not (root / key).is_dir():
        return False
    with locked(root / f"{key}.lock"):
        remove_tree(root / key)
        for suffix in (".log", ".uses"):
            with contextlib.suppress(FileNotFoundError):
                (root / f"{key}{suffix}").unlink()
    return True  # the lock file stays: a waiting process may hold it open


def remove_all(root: Path) -> int:
    """Remove every env and the tools dirs; returns how many envs there were."""
    keys = [e["key"] for e in list_envs(root)]
    for key in keys:
        remove_env(root, key)
    remove_tree(root / "tools")
    return len(keys)
