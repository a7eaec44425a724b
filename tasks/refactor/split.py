"""Splitting a large refactoring into changesets a person can review one at a time.

``split: file`` makes one part per file, ``split: package`` one per top-level directory
(a package, or the repository root's modules together). Each part is a diff against the
original tree, verified there on its own (every guard green, no occurrence added), so a
reviewer can merge any of them alone; the whole change was verified together already.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from patchsmith.tasks.edits.diff import make_diff
from patchsmith.tasks.testing.precheck import file_versions

PART_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def part_key(path: str, split: Literal["file", "package"]) -> str:
    if split == "file":
        return path
    parts = Path(path).parts
    return parts[0] if len(parts) > 1 else "(root)"


def parts(original: Path, patch: str, split: Literal["file", "package"]) -> dict[str, str]:
    """Part name → its diff against ``original`` (names are safe in file and branch names)."""
    groups: dict[str, dict[str, tuple[str | None, str | None]]] = {}
    for path, (old, new) in sorted(file_versions(original, patch).items()):
        key = PART_NAME.sub("-", part_key(path, split)).strip("-") or "root"
        groups.setdefault(key, {})[path] = (old, new)
    return {name: make_diff(files) for name, files in groups.items()}
