"""Unified diffs: make them, apply them (all-or-nothing), measure them.

Every candidate edit is normalized to a git-style unified diff (``a/`` and ``b/``
prefixes, 3 lines of context) made by :func:`make_diff`. :func:`apply_diff` checks
that every hunk of every file applies before it writes anything: context must match
exactly, but a hunk may sit up to ``MAX_OFFSET`` lines away from where its header
says (like ``patch`` with fuzz 0). Bad text raises :class:`MalformedEdit`; a diff
that does not match the files raises :class:`ApplyError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from pathlib import Path

from patchsmith.errors import ApplyError
from patchsmith.tasks.edits.parse import (
    DEV_NULL,
    NO_NEWLINE,
    FilePatch,
    Hunk,
    HunkLine,
    check_relpath,
    parse_diff,
    resolve_inside,
    split_lines,
)

__all__ = [
    "FilePatch",
    "Hunk",
    "HunkLine",
    "apply_diff",
    "apply_diff_to_text",
    "changed_lines",
    "diff_size",
    "make_diff",
    "parse_diff",
]

CONTEXT = 3
MAX_OFFSET = 200

_Op = tuple[str, int, int, int, int]

# ------------------------------------------------------------------------- make


def _opcodes(old: list[str], new: list[str]) -> list[_Op]:
    # Trim the common prefix/suffix first: fast on large files, and deterministic.
    lo = 0
    while lo < min(len(old), len(new)) and old[lo] == new[lo]:
        lo += 1
    hi = 0
    while hi < min(len(old), len(new)) - lo and old[-1 - hi] == new[-1 - hi]:
        hi += 1
    matcher = difflib.SequenceMatcher(
        None, old[lo : len(old) - hi], new[lo : len(new) - hi], autojunk=False
    )
    ops: list[_Op] = [
        (tag, i1 + lo, i2 + lo, j1 + lo, j2 + lo) for tag, i1, i2, j1, j2 in matcher.get_opcodes()
    ]
    if lo:
        ops.insert(0, ("equal", 0, lo, 0, lo))
    if hi:
        ops.append(("equal", len(old) - hi, len(old), len(new) - hi, len(new)))
    return ops


def _groups(ops: list[_Op], n: int = CONTEXT) -> Iterator[list[_Op]]:
    """Split opcodes into hunks with ``n`` lines of context (as difflib does)."""
    if not ops:
        return
    ops = list(ops)
    if ops[0][0] == "equal":
        tag, i1, i2, j1, j2 = ops[0]
        ops[0] = (tag, max(i1, i2 - n), i2, max(j1, j2 - n), j2)
    if ops[-1][0] == "equal":
        tag, i1, i2, j1, j2 = ops[-1]
        ops[-1] = (tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n))
    group: list[_Op] = []
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal" and i2 - i1 > 2 * n:
            group.append((tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            yield group
            group = []
            i1, j1 = max(i1, i2 - n), max(j1, j2 - n)
        group.append((tag, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        yield group


def _range(start: int, length: int) -> str:
    # git convention: an empty side names the line before it; ",1" is omitted.
    first = start + 1 if length else start
    return str(first) if length == 1 else f"{first},{length}"


def _emit(prefix: str, line: str) -> Iterator[str]:
    yield prefix + line
    if not line.endswith("\n"):
        yield "\n" + NO_NEWLINE + "\n"


def _hunks(old: list[str], new: list[str]) -> Iterator[str]:
    for group in _groups(_opcodes(old, new)):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        yield f"@@ -{_range(i1, i2 - i1)} +{_range(j1, j2 - j1)} @@\n"
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                for line in old[a1:a2]:
                    yield from _emit(" ", line)
                continue
            for line in old[a1:a2]:
                yield from _emit("-", line)
            for line in new[b1:b2]:
                yield from _emit("+", line)


def make_diff(changes: Mapping[str, tuple[str | None, str | None]]) -> str:
    """One git-style unified diff for ``{relpath: (old_text, new_text)}``.

    ``None`` on a side means the file does not exist there (a created or deleted
    file). Unchanged files are left out; files come in sorted order; "" means no change.
    """
    out: list[str] = []
    for path in sorted(changes):
        old, new = changes[path]
        if old == new:
            continue
        check_relpath(path)
        out.append(f"diff --git a/{path} b/{path}\n")
        if old is None:
            out.append("new file mode 100644\n")
        if new is None:
            out.append("deleted file mode 100644\n")
        body = list(_hunks(split_lines(old or ""), split_lines(new or "")))
        if body:
            out.append(f"--- {DEV_NULL if old is None else 'a/' + path}\n")
            out.append(f"+++ {DEV_NULL if new is None else 'b/' + path}\n")
            out.extend(body)
    return "".join(out)


# ------------------------------------------------------------------------ apply


def _find(lines: list[str], want: list[str], expected: int, lo: int) -> int | None:
    """Nearest index >= lo where ``want`` matches exactly, within MAX_OFFSET of expected."""
    if not want:
        return expected if lo <= expected <= len(lines) else None
    for delta in range(MAX_OFFSET + 1):
        for at in (expected - delta, expected + delta) if delta else (expected,):
            if lo <= at <= len(lines) - len(want) and lines[at : at + len(want)] == want:
                return at
    return None


def _describe(hunk: Hunk) -> str:
    first = next((ln.text for ln in hunk.lines if ln.kind != "+"), "")
    return f"hunk @@ -{hunk.old_start},{hunk.old_len} @@ (expected {first.rstrip()[:60]!r})"


def apply_diff_to_text(text: str, file_patch: FilePatch) -> str:
    """Apply one file's hunks to ``text``; ApplyError when the context does not match."""
    path = file_patch.path
    if file_patch.is_new and text:
        raise ApplyError(f"{path}: the diff creates it, but it already exists")
    lines = split_lines(text)
    out: list[str] = []
    pos = offset = 0
    for hunk in file_patch.hunks:
        old, new = hunk.old_lines(), hunk.new_lines()
        header_at = hunk.old_start - 1 if hunk.old_len else hunk.old_start
        at = _find(lines, old, max(header_at + offset, 0), pos)
        if at is None:
            raise ApplyError(f"{path}: {_describe(hunk)} does not match the file")
        end = at + len(old)
        if new and not new[-1].endswith("\n") and end != len(lines):
            raise ApplyError(f"{path}: {_describe(hunk)} drops a newline before the end")
        out.extend(lines[pos:at])
        out.extend(new)
        pos, offset = end, at - header_at
    out.extend(lines[pos:])
    result = "".join(out)
    if file_patch.is_deleted and result:
        raise ApplyError(f"{path}: the diff deletes it but leaves content behind")
    return result


def read_text(target: Path, relpath: str) -> str | None:
    """A file's exact text (newlines kept), None if absent; ApplyError if not UTF-8 text."""
    if not target.exists() and not target.is_symlink():
        return None
    if not target.is_file():
        raise ApplyError(f"{relpath}: not a regular file")
    try:
        with open(target, encoding="utf-8", newline="") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise ApplyError(f"{relpath}: not UTF-8 text ({exc.reason})") from exc


def _check_parents(root: Path, target: Path, relpath: str) -> None:
    for parent in target.relative_to(root).parents:
        if (root / parent).exists() and not (root / parent).is_dir():
            raise ApplyError(f"{relpath}: {parent} is a file, not a directory")


def apply_diff(root: Path, diff: str) -> list[str]:
    """Apply ``diff`` to the files under ``root``, all or nothing; return changed relpaths.

    Every hunk is checked before any file is written. Paths must stay inside ``root``
    (MalformedEdit); missing files, existing "new" files and mismatched context raise
    ApplyError and leave the tree untouched.
    """
    pending: dict[str, tuple[Path, str | None]] = {}
    for fp in parse_diff(diff):
        target = resolve_inside(root, fp.path)
        current = pending[fp.path][1] if fp.path in pending else read_text(target, fp.path)
        if current is None and not fp.is_new:
            raise ApplyError(f"{fp.path}: no such file")
        _check_parents(root, target, fp.path)
        new = apply_diff_to_text(current or "", fp)
        pending[fp.path] = (target, None if fp.is_deleted else new)
    for target, content in pending.values():
        if content is None:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w", encoding="utf-8", newline="") as fh:
            fh.write(content)
    return list(pending)


# ---------------------------------------------------------------------- measure


def changed_lines(diff: str) -> dict[str, set[int]]:
    """New-side line numbers added or changed, per file (deleted files are left out)."""
    result: dict[str, set[int]] = {}
    for fp in parse_diff(diff):
        if fp.is_deleted:
            result.pop(fp.path, None)
            continue
        lines = result.setdefault(fp.path, set())
        for hunk in fp.hunks:
            number = hunk.new_start
            for ln in hunk.lines:
                if ln.kind == "+":
                    lines.add(number)
                if ln.kind != "-":
                    number += 1
    return result


def diff_size(diff: str) -> int:
    """Lines added plus lines removed."""
    return sum(ln.kind != " " for fp in parse_diff(diff) for hunk in fp.hunks for ln in hunk.lines)
