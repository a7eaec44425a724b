"""SEARCH/REPLACE blocks, the edit format models write::

    path/to/file.py
    ```python
    <<<<<<< SEARCH
    old lines
    =======
    new lines
    >>>>>>> REPLACE
    ```

The file path sits on the line before the block (fences in between are tolerated);
a block right after another one may leave it out and reuse the previous path.
:func:`apply_blocks` computes the new file contents without writing them; feed its
result to :func:`patchsmith.tasks.edits.diff.make_diff` to get the normalized diff.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from patchsmith.errors import ApplyError, MalformedEdit
from patchsmith.tasks.edits.diff import make_diff, read_text
from patchsmith.tasks.edits.parse import check_relpath, resolve_inside, split_lines

_SEARCH = re.compile(r"^\s*<{5,9} ?SEARCH\b.*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9} ?REPLACE\b.*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True)
class EditBlock:
    """One SEARCH/REPLACE block; ``search``/``replace`` keep their line endings."""

    path: str
    search: str
    replace: str


def _clean_path(line: str) -> str | None:
    """The file path named on ``line``, or None when the line is not a bare path."""
    text = line.strip().rstrip(":").strip("`*'\"")
    text = text.removeprefix("# ").removeprefix("File: ").removeprefix("file: ").strip()
    if not text or any(ch.isspace() for ch in text) or len(text) > 300:
        return None
    return text


def _block_path(lines: list[str], at: int, previous: str | None) -> str:
    j = at - 1
    while j >= 0 and (not lines[j].strip() or _FENCE.match(lines[j])):
        j -= 1
    if j >= 0 and _REPLACE.match(lines[j]) and previous is not None:
        return previous
    path = _clean_path(lines[j]) if j >= 0 else None
    if path is None:
        raise MalformedEdit(f"line {at + 1}: SEARCH block has no file path on the line before it")
    return check_relpath(path)


def parse_blocks(text: str) -> list[EditBlock]:
    """Every SEARCH/REPLACE block in ``text``; MalformedEdit says what is wrong."""
    lines = split_lines(text)
    blocks: list[EditBlock] = []
    i = 0
    while i < len(lines):
        if _REPLACE.match(lines[i]):
            raise MalformedEdit(f"line {i + 1}: REPLACE marker without a SEARCH block")
        if not _SEARCH.match(lines[i]):
            i += 1
            continue
        start = i
        path = _block_path(lines, i, blocks[-1].path if blocks else None)
        parts: list[list[str]] = [[], []]
        part = 0
        i += 1
        while True:
            if i >= len(lines):
                raise MalformedEdit(f"line {start + 1}: unterminated SEARCH/REPLACE block")
            line = lines[i]
            if _SEARCH.match(line):
                raise MalformedEdit(f"line {i + 1}: SEARCH marker inside another block")
            if part == 0 and _DIVIDER.match(line):
                part = 1
            elif _REPLACE.match(line):
                if part == 0:
                    raise MalformedEdit(f"line {start + 1}: block has no '=======' divider")
                break
            else:
                parts[part].append(line if line.endswith("\n") else line + "\n")
            i += 1
        blocks.append(EditBlock(path, "".join(parts[0]), "".join(parts[1])))
        i += 1
    if not blocks:
        raise MalformedEdit("no SEARCH/REPLACE blocks found")
    return blocks


# ------------------------------------------------------------------------ apply


def _norm(line: str) -> str:
    return " ".join(line.split())


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _matches(file_lines: list[str], want: list[str], fuzzy: bool) -> list[int]:
    n = len(want)
    if not fuzzy:
        wanted = [w.rstrip("\r\n") for w in want]
        got = [f.rstrip("\r\n") for f in file_lines]
    else:
        wanted = [_norm(w) for w in want]
        got = [_norm(f) for f in file_lines]
    return [i for i in range(len(got) - n + 1) if got[i : i + n] == wanted]


def _reindent(search: list[str], found: list[str], replace: list[str]) -> list[str]:
    """Shift ``replace`` by the indentation the file has and the SEARCH text lacked."""
    pairs = [(s, f) for s, f in zip(search, found, strict=True) if s.strip()]
    if not pairs:
        return replace
    s_ind, f_ind = _indent(pairs[0][0]), _indent(pairs[0][1])
    out = []
    for line in replace:
        if line.strip() and line.startswith(s_ind):
            line = f_ind + line[len(s_ind) :]
        out.append(line)
    return out


def _apply_one(text: str, block: EditBlock, number: int) -> str:
    lines = split_lines(text)
    want = split_lines(block.search)
    replace = split_lines(block.replace)
    hits = _matches(lines, want, fuzzy=False)
    if not hits:
        hits = _matches(lines, want, fuzzy=True)
        if len(hits) == 1:
            replace = _reindent(want, lines[hits[0] : hits[0] + len(want)], replace)
    if not hits:
        first = next((w.strip() for w in want if w.strip()), "")
        raise ApplyError(
            f"block {number} ({block.path}): SEARCH text not found (starts {first[:60]!r})"
        )
    if len(hits) > 1:
        raise ApplyError(
            f"block {number} ({block.path}): SEARCH text matches {len(hits)} places; "
            "include more surrounding lines"
        )
    at, end = hits[0], hits[0] + len(want)
    if lines[at:end] and lines[at].endswith("\r\n"):
        replace = [
            r[:-1] + "\r\n" if r.endswith("\n") and not r.endswith("\r\n") else r for r in replace
        ]
    if end == len(lines) and lines and not lines[-1].endswith("\n") and replace:
        replace[-1] = replace[-1].rstrip("\r\n")
    return "".join(lines[:at] + replace + lines[end:])


LISTED = re.compile(r"^(?:- )?(\S+?):(\d+) \(score -?[\d.]+\) ?(.*?)(\r?\n)?$")
"""A line as the LLM context lists suspicious ones (``- path:12 (score 0.93) code``,
``tasks/llm/context.py``): small models copy them into SEARCH as if they were the file."""


def _unlisted(root: Path, block: EditBlock) -> EditBlock:
    """A SEARCH made only of listed lines, as the code they quote (and, when the block's
    own path is not a file, the one path they name)."""
    lines = [line for line in block.search.splitlines(keepends=True) if line.strip()]
    hits = [LISTED.match(line) for line in lines]
    if not lines or not all(hits):
        return block
    matches = [m for m in hits if m is not None]
    search = "".join(m.group(3) + (m.group(4) or "\n") for m in matches)
    replace = "".join(
        (m.group(3) + (m.group(4) or "\n")) if (m := LISTED.match(line)) else line
        for line in block.replace.splitlines(keepends=True)
    )  # the model may prefix its new lines the same way
    paths = {m.group(1) for m in matches}
    path = block.path
    if len(paths) == 1 and not resolve_inside(root, check_relpath(path)).exists():
        path = paths.pop()
    return EditBlock(path, search, replace)


def _retarget(root: Path, block: EditBlock, number: int, likely: Sequence[str]) -> str:
    """The path a block names, or, when that file does not exist and its SEARCH text is
    found in exactly one of the ``likely`` files, that file (small models copy the
    prompt's example path, or drop a directory)."""
    path = check_relpath(block.path)
    if not likely or not block.search.strip() or resolve_inside(root, path).exists():
        return path
    found = []
    for other in dict.fromkeys(likely):
        text = read_text(resolve_inside(root, check_relpath(other)), other)
        if text is None:
            continue
        try:
            _apply_one(text, block, number)
        except ApplyError:
            continue
        found.append(other)
    return found[0] if len(found) == 1 else path


def apply_blocks(
    root: Path, blocks: Sequence[EditBlock], likely: Sequence[str] = ()
) -> dict[str, tuple[str | None, str]]:
    """Apply ``blocks`` in memory: ``{path: (old, new)}``; ``old`` is None for new files.

    Exact line matching first, then whitespace-insensitive matching that keeps the
    file's indentation. No match or several matches raise ApplyError. An empty SEARCH
    creates a missing file (or fills an empty one). A block naming a file that does not
    exist goes to the one ``likely`` file its SEARCH text matches, if exactly one does.
    Nothing is written.
    """
    originals: dict[str, str | None] = {}
    current: dict[str, str] = {}
    for number, listed in enumerate(blocks, 1):
        block = _unlisted(root, listed)
        path = _retarget(root, block, number, likely)
        if path not in originals:
            originals[path] = read_text(resolve_inside(root, path), path)
            current[path] = originals[path] or ""
        text = current[path]
        if not block.search.strip():
            if text.strip():
                raise ApplyError(
                    f"block {number} ({path}): empty SEARCH on a non-empty file; "
                    "quote the lines to replace"
                )
            current[path] = block.replace
            continue
        if originals[path] is None and not text:
            raise ApplyError(f"block {number} ({path}): no such file")
        current[path] = _apply_one(text, block, number)
    return {path: (originals[path], current[path]) for path in originals}


def blocks_to_diff(root: Path, text: str, likely: Sequence[str] = ()) -> str:
    """Parse SEARCH/REPLACE ``text`` and return the normalized unified diff.

    Raises MalformedEdit / ApplyError (both EditError) like the functions it chains.
    """
    changes = apply_blocks(root, parse_blocks(text), likely)
    diff = make_diff(dict(changes))
    if not diff:
        raise MalformedEdit("the edit changes nothing")
    return diff
