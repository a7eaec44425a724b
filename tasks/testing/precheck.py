"""Cheap checks before a test run: a candidate's new sources, whether they compile, and
whether they are the same code as a candidate already tested.

A candidate that does not compile cannot pass a test; one whose changed files parse to the
same syntax tree as an earlier candidate's (formatting and comments aside) would get the
same verdict. Both are rejected here, for the cost of a parse, before any sandbox starts.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
from pathlib import Path

from patchsmith.tasks.edits.diff import apply_diff_to_text, parse_diff, read_text
from patchsmith.tasks.edits.parse import resolve_inside


def file_versions(pristine: Path, diff: str) -> dict[str, tuple[str, str | None]]:
    """Each changed file's text before and after the diff ("" before: new; None after:
    deleted), read without following a link out of ``pristine``; ApplyError/MalformedEdit
    (EditErrors) as applying would."""
    versions: dict[str, tuple[str, str | None]] = {}
    for fp in parse_diff(diff):
        before = read_text(resolve_inside(pristine, fp.path), fp.path) or ""
        after = apply_diff_to_text(before, fp)
        versions[fp.path] = (before, None if fp.is_deleted else after)
    return versions


def new_sources(pristine: Path, diff: str) -> dict[str, str | None]:
    """Each changed file's text after the diff (None: deleted); see :func:`file_versions`."""
    return {path: after for path, (_, after) in file_versions(pristine, diff).items()}


def present(sources: dict[str, str | None]) -> dict[str, str]:
    """The files that exist after the diff, with their text."""
    return {path: text for path, text in sources.items() if text is not None}


def compile_error(sources: dict[str, str | None]) -> str | None:
    """``path:line: message`` of the first changed Python file that does not compile."""
    for path, text in sources.items():
        if text is None or not path.endswith(".py"):
            continue
        try:
            compile(text, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            msg = getattr(exc, "msg", None) or str(exc)
            return f"{path}:{line or '?'}: does not compile: {msg}"
    return None


def code_key(sources: dict[str, str | None]) -> str:
    """A digest of what the changed files mean: Python files by their syntax tree (without
    positions, so formatting and comments do not count), other files by their text."""
    digest = hashlib.sha256()
    for path in sorted(sources):
        text = sources[path]
        if text is not None and path.endswith(".py"):
            with contextlib.suppress(SyntaxError, ValueError):
                text = ast.dump(ast.parse(text), annotate_fields=False)
        digest.update(f"{path}\0{'-' if text is None else text}\0".encode())
    return digest.hexdigest()
