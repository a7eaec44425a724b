"""Reading a tree's in-scope Python files without following a repository's symlinks.

Trees read here are pristine copies of untrusted repositories, or workspaces a sandboxed
codemod just wrote: a symlink (``a.py -> /etc/shadow``, ``pkg -> /``) must never pull a
host file into a diff. Every path component is checked with lstat and the file is opened
with O_NOFOLLOW; a tree's sandboxed processes are all dead before it is read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

MAX_FILES = 20000
"""Directory entries looked at per tree, at most."""
MAX_FILE_BYTES = 2_000_000
"""Larger files are skipped (generated code, data): not refactoring targets."""


def read_regular(root: Path, rel: str) -> str | None:
    """The UTF-8 text of ``root/rel`` when it is a regular file reached through real
    directories only; None when it is absent, a symlink, not a file, too big or not text."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts:
        return None
    here = root
    for part in parts[:-1]:
        here = here / part
        try:
            if not stat.S_ISDIR(os.lstat(here).st_mode):
                return None
        except OSError:
            return None
    try:
        fd = os.open(root / rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            return None
        data = fh.read(MAX_FILE_BYTES + 1)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def python_files(root: Path, in_scope: Callable[[str], bool]) -> list[str]:
    """In-scope ``.py`` files under ``root`` (sorted; hidden directories and symlinks
    skipped)."""
    found: list[str] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow symlinked dirs
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and d not in ("__pycache__",)
        )
        for name in sorted(filenames):
            seen += 1
            if seen > MAX_FILES:
                return found
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if name.endswith(".py") and not path.is_symlink() and in_scope(rel):
                found.append(rel)
    return found


def read_tree(root: Path, in_scope: Callable[[str], bool]) -> dict[str, str]:
    """Path → text of every readable in-scope Python file of ``root``."""
    out: dict[str, str] = {}
    for rel in python_files(root, in_scope):
        text = read_regular(root, rel)
        if text is not None:
            out[rel] = text
    return out
