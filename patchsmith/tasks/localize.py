"""Spectrum-based fault localization: per-test coverage (Ochiai) plus traceback evidence.

Coverage comes from pytest-cov with ``--cov-context=test``: each line carries the contexts
that ran it, named ``<nodeid>|setup``, ``<nodeid>|run`` or ``<nodeid>|teardown``. The
phases are merged into the node id; the empty context (import time, no test) is dropped.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from coverage import CoverageData

from patchsmith.domain import SuspiciousLine
from patchsmith.tasks.testrun import report_file

Line = tuple[str, int]

TRACEBACK_WEIGHT = 0.5
"""Boost for the innermost in-scope traceback frame; the frame k steps out gets w/(1+k)."""

_FILE_LINE = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+)')
_PYTEST_LINE = re.compile(
    r"^[ \t]*(?:E[ \t]+)?(?P<path>[^\s:\"'][^:\"'\n]*?\.py):(?P<line>\d+):", re.M
)


def _relative(path: str, root: Path) -> str | None:
    """``path`` relative to ``root`` (posix), or None when it lies outside."""
    p = Path(path)
    p = p if p.is_absolute() else root / p
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def coverage_by_test(data_file: Path, root: Path) -> dict[str, set[Line]]:
    """Lines (path relative to root, line) that each test ran; {} when there is no data."""
    out = data_file.parent
    names = [data_file.name, *sorted(p.name for p in out.glob(data_file.name + ".*"))]
    result: dict[str, set[Line]] = defaultdict(set)
    for name in names:
        f = report_file(out, name)  # only plain files in a real directory (see testrun)
        if f is None:
            continue
        data = CoverageData(basename=str(f))
        data.read()
        for measured in data.measured_files():
            rel = _relative(measured, root)
            if rel is None:
                continue
            for lineno, contexts in (data.contexts_by_lineno(measured) or {}).items():
                if lineno < 1:
                    continue
                for ctx in contexts:
                    nodeid = ctx.rpartition("|")[0] if "|" in ctx else ctx
                    if nodeid:
                        result[nodeid].add((rel, lineno))
    return dict(result)


def ochiai(cov: Mapping[str, set[Line]], failing: set[str], passing: set[str]) -> dict[Line, float]:
    """Ochiai score ef / sqrt(F * (ef + ep)) for every line run by at least one failing test."""
    ef: dict[Line, int] = defaultdict(int)
    ep: dict[Line, int] = defaultdict(int)
    for test, lines in cov.items():
        counts = ef if test in failing else ep if test in passing else None
        if counts is None:
            continue
        for line in lines:
            counts[line] += 1
    total_failing = len(failing)
    return {line: n / math.sqrt(total_failing * (n + ep.get(line, 0))) for line, n in ef.items()}


def traceback_frames(log: str, root: Path) -> list[Line]:
    """Frames of the tracebacks in ``log`` that lie inside ``root``, innermost last.

    Understands Python's ``File "path", line N`` and pytest's ``path:N: ...`` lines (long,
    short and native styles), in the order they appear.
    """
    found: list[tuple[int, str, int]] = []
    for pattern in (_FILE_LINE, _PYTEST_LINE):
        for m in pattern.finditer(log):
            found.append((m.start("path"), m.group("path"), int(m.group("line"))))
    frames: list[Line] = []
    for _, path, line in sorted(found):
        rel = _relative(path, root)
        if rel is not None and line >= 1:
            frames.append((rel, line))
    return frames


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches_any(path: str, globs: Iterable[str]) -> bool:
    """True when ``path`` matches a glob; ``**/`` also matches the top level."""
    return any(_glob_regex(g).match(path) for g in globs)


def rank(
    cov_scores: Mapping[Line, float],
    frames: Sequence[Sequence[Line]],
    scope: list[str],
    exclude: list[str],
    limit: int = 50,
) -> list[SuspiciousLine]:
    """Most suspicious lines first: Ochiai plus a boost for failing-traceback frames.

    ``frames`` holds one list per failing test's traceback, innermost last. Frames outside
    scope or inside exclude (tests, by default) are dropped before distances are counted,
    so the innermost frame in the code under repair gets the full boost.
    """

    def in_scope(path: str) -> bool:
        return matches_any(path, scope) and not matches_any(path, exclude)

    boost: dict[Line, float] = {}
    for tb in frames:
        kept = [f for f in tb if in_scope(f[0])]
        for distance, frame in enumerate(reversed(kept)):
            boost[frame] = max(boost.get(frame, 0.0), TRACEBACK_WEIGHT / (1 + distance))
    lines = {line for line, s in cov_scores.items() if s > 0 and in_scope(line[0])} | set(boost)
    ranked = []
    for line in lines:
        sources = []
        if cov_scores.get(line, 0.0) > 0:
            sources.append("ochiai")
        if line in boost:
            sources.append("traceback")
        score = cov_scores.get(line, 0.0) + boost.get(line, 0.0)
        ranked.append(SuspiciousLine(path=line[0], line=line[1], score=score, sources=sources))
    ranked.sort(key=lambda s: (-s.score, s.path, s.line))
    return ranked[:limit]
