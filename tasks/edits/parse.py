"""Unified-diff values (FilePatch, Hunk, HunkLine) and the strict parser.

Text is split on ``\\n`` only, so ``\\r\\n`` files and odd characters (form feeds,
``\\u2028``) survive a round trip byte for byte. Garbage raises :class:`MalformedEdit`
with the line number and the reason; nothing else escapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from patchsmith.errors import MalformedEdit

NO_NEWLINE = "\\ No newline at end of file"
DEV_NULL = "/dev/null"

LineKind = Literal[" ", "-", "+"]


@dataclass(frozen=True)
class HunkLine:
    """One hunk line: ``kind`` is context/removed/added; ``text`` keeps its ``\\n``."""

    kind: LineKind
    text: str


@dataclass(frozen=True)
class Hunk:
    """One ``@@ -old_start,old_len +new_start,new_len @@`` block."""

    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: tuple[HunkLine, ...]

    def old_lines(self) -> list[str]:
        """The lines this hunk expects to find (context and removed)."""
        return [ln.text for ln in self.lines if ln.kind != "+"]

    def new_lines(self) -> list[str]:
        """The lines this hunk leaves behind (context and added)."""
        return [ln.text for ln in self.lines if ln.kind != "-"]


@dataclass(frozen=True)
class FilePatch:
    """The hunks for one file; ``is_new``/``is_deleted`` mirror ``/dev/null`` sides."""

    path: str
    hunks: tuple[Hunk, ...]
    is_new: bool = False
    is_deleted: bool = False


# ---------------------------------------------------------------------- helpers


def split_lines(text: str) -> list[str]:
    """Split on ``\\n`` only, keeping it; the last line may lack it."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def check_relpath(path: str) -> str:
    """Return ``path`` if it is a safe relative POSIX path; raise MalformedEdit otherwise."""
    if not path or "\x00" in path or "\\" in path:
        raise MalformedEdit(f"bad file path {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or path.startswith("~"):
        raise MalformedEdit(f"path {path!r} must be relative and stay inside the repository")
    if str(pure) in ("", "."):
        raise MalformedEdit(f"bad file path {path!r}")
    return str(pure)


def resolve_inside(root: Path, relpath: str) -> Path:
    """``root / relpath``, refusing paths (or symlinks) that leave ``root``."""
    target = root / check_relpath(relpath)
    try:
        target.resolve().relative_to(root.resolve())
    except ValueError as exc:
        raise MalformedEdit(f"path {relpath!r} resolves outside the repository") from exc
    return target


# ------------------------------------------------------------------------ parse

_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_EXT_HEADERS = (
    "index ",
    "new file mode ",
    "deleted file mode ",
    "old mode ",
    "new mode ",
    "similarity index ",
    "dissimilarity index ",
)


def _header_path(value: str, prefix: str) -> str | None:
    value = value.split("\t", 1)[0].rstrip("\r")
    if value == DEV_NULL:
        return None
    if len(value) >= 2 and value[0] == value[-1] == '"':
        raise MalformedEdit(f"quoted path {value} is not supported")
    if value.startswith(prefix):
        value = value[len(prefix) :]
    return check_relpath(value)


def _git_line_path(rest: str) -> str:
    # "a/X b/X": pick the split where both halves name the same file.
    for i in range(len(rest)):
        if rest.startswith(" b/", i) and rest.startswith("a/") and rest[2:i] == rest[i + 3 :]:
            return check_relpath(rest[2:i])
    raise MalformedEdit(f"cannot read the file name from 'diff --git {rest}'")


class _Parser:
    def __init__(self, diff: str) -> None:
        self.lines = diff.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.i = 0
        self.patches: list[FilePatch] = []

    def fail(self, reason: str) -> MalformedEdit:
        return MalformedEdit(f"line {self.i + 1}: {reason}")

    def run(self) -> list[FilePatch]:
        started = False
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.startswith("diff --git ") or (
                line.startswith("--- ") and self._peek(1).startswith("+++ ")
            ):
                started = True
                self.patches.append(self._file())
            elif not started or not line.strip():
                self.i += 1  # preamble (mail headers, prose) or blank separator
            else:
                raise self.fail(f"unexpected line {line[:60]!r} between file patches")
        if not self.patches:
            raise MalformedEdit("no file headers ('diff --git' or '---'/'+++') found")
        return self.patches

    def _peek(self, k: int) -> str:
        j = self.i + k
        return self.lines[j] if j < len(self.lines) else ""

    def _file(self) -> FilePatch:
        path: str | None = None
        is_new = is_deleted = False
        if self.lines[self.i].startswith("diff --git "):
            path = _git_line_path(self.lines[self.i][len("diff --git ") :].rstrip("\r"))
            self.i += 1
            while self.i < len(self.lines) and self.lines[self.i].startswith(_EXT_HEADERS):
                is_new |= self.lines[self.i].startswith("new file mode")
                is_deleted |= self.lines[self.i].startswith("deleted file mode")
                self.i += 1
            if self.lines[self.i : self.i + 1] and self.lines[self.i].startswith(
                ("rename ", "copy ")
            ):
                raise self.fail("renames and copies are not supported")
        if self.i < len(self.lines) and self.lines[self.i].startswith("--- "):
            if not self._peek(1).startswith("+++ "):
                raise self.fail("'---' header without a '+++' header after it")
            old = _header_path(self.lines[self.i][4:], "a/")
            new = _header_path(self.lines[self.i + 1][4:], "b/")
            if old is not None and new is not None and old != new:
                raise self.fail(f"renames are not supported ({old} -> {new})")
            is_new |= old is None
            is_deleted |= new is None
            named = new if new is not None else old
            if named is None:
                raise self.fail("both sides are /dev/null")
            if path is not None and named != path:
                raise self.fail(f"'diff --git' names {path} but '+++' names {named}")
            path = named
            self.i += 2
        if path is None:
            raise self.fail("file patch without a file name")
        if is_new and is_deleted:
            raise self.fail(f"{path} is both created and deleted")
        hunks: list[Hunk] = []
        while self.i < len(self.lines) and self.lines[self.i].startswith("@@"):
            hunks.append(self._hunk())
        return FilePatch(path, tuple(hunks), is_new, is_deleted)

    def _hunk(self) -> Hunk:
        m = _HUNK_RE.match(self.lines[self.i])
        if m is None:
            raise self.fail(f"bad hunk header {self.lines[self.i][:60]!r}")
        o_start, n_start = int(m[1]), int(m[3])
        o_len = 1 if m[2] is None else int(m[2])
        n_len = 1 if m[4] is None else int(m[4])
        self.i += 1
        body: list[HunkLine] = []
        o_left, n_left = o_len, n_len
        while o_left or n_left:
            if self.i >= len(self.lines):
                raise self.fail("hunk is shorter than its header says (truncated diff?)")
            raw = self.lines[self.i]
            kind, text = (raw[0], raw[1:]) if raw else (" ", "")
            if kind == " " and o_left and n_left:
                o_left, n_left = o_left - 1, n_left - 1
            elif kind == "-" and o_left:
                o_left -= 1
            elif kind == "+" and n_left:
                n_left -= 1
            else:
                raise self.fail(f"unexpected line {raw[:60]!r} in hunk (counts do not add up)")
            body.append(HunkLine(kind, text + "\n"))  # type: ignore[arg-type]
            self.i += 1
            if self.i < len(self.lines) and self.lines[self.i].startswith("\\"):
                body[-1] = HunkLine(body[-1].kind, text)
                self.i += 1
        self._check_eol(body)
        return Hunk(o_start, o_len, n_start, n_len, tuple(body))

    def _check_eol(self, body: list[HunkLine]) -> None:
        for side in ("-", "+"):
            texts = [ln.text for ln in body if ln.kind in (" ", side)]
            if any(not t.endswith("\n") for t in texts[:-1]):
                raise self.fail("'\\ No newline at end of file' before the last line")


def parse_diff(diff: str) -> list[FilePatch]:
    """Parse a unified diff (git or plain ``---``/``+++``); MalformedEdit on garbage."""
    return _Parser(diff).run()
