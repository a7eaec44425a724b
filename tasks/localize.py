"""Spectrum-based fault localization: per-test coverage (Ochiai) plus traceback evidence.

Coverage comes from pytest-cov with ``--cov-context=test``: each line carries the contexts
that ran it, named ``<nodeid>|setup``, ``<nodeid>|run`` or ``<nodeid>|teardown``. The
phases are merged into the node id; the empty context (import time, no test) is dropped.
The data file belongs to the tested code: it is read read-only, and a corrupt or tampered
one raises :class:`CoverageError` (the plan notes it and falls back on tracebacks).
"""

from __future__ import annotations

import ast
import json
import math
import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from coverage.numbits import numbits_to_nums

from patchsmith.domain import Instance, SuspiciousLine
from patchsmith.tasks.testing.run import check_report, split_command

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


class CoverageError(ValueError):
    """The coverage data is there but cannot be trusted or read (corrupt, tampered with)."""


MAX_NUMBITS = 64 * 1024
"""Largest line bitmap read per (file, test): 512k lines; a bigger one is tampered with."""
MAX_COVERED = 5_000_000
"""Covered (test, line) pairs read at most, so crafted data cannot exhaust memory."""
QUERY_BUDGET_S = 30.0
"""A query that runs longer (a crafted view, say) is aborted."""

_QUERY = (
    "SELECT file.path, context.context, line_bits.numbits FROM line_bits"
    " JOIN file ON file.id = line_bits.file_id"
    " JOIN context ON context.id = line_bits.context_id"
)
_ARCS = (
    "SELECT file.path, context.context, arc.fromno, arc.tono FROM arc"
    " JOIN file ON file.id = arc.file_id JOIN context ON context.id = arc.context_id"
)


def _read_only(path: Path) -> sqlite3.Connection:
    """Open a coverage file read-only (the tested code owns it): no journal, no writes."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    deadline = time.monotonic() + QUERY_BUDGET_S
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    conn.execute("PRAGMA trusted_schema = OFF")
    return conn


def _read_coverage(path: Path, root: Path, result: dict[str, set[Line]]) -> None:
    conn = _read_only(path)
    try:
        tables = {
            name
            for name, kind in conn.execute("SELECT name, type FROM sqlite_master")
            if kind == "table"
        }
        if not {"file", "context", "line_bits"} <= tables:
            raise CoverageError(f"{path.name}: not coverage.py data (tables: {sorted(tables)})")
        relative: dict[str, str | None] = {}
        count = 0

        def add(measured: object, ctx: object, lines: Iterable[int]) -> None:
            nonlocal count
            if not isinstance(measured, str) or not isinstance(ctx, str):
                raise CoverageError(f"{path.name}: malformed row")
            if measured not in relative:
                relative[measured] = _relative(measured, root)
            rel = relative[measured]
            nodeid = ctx.rpartition("|")[0] if "|" in ctx else ctx
            if rel is None or not nodeid:
                return
            got = result.setdefault(nodeid, set())
            for lineno in lines:
                if lineno >= 1:
                    got.add((rel, lineno))
                    count += 1
            if count > MAX_COVERED:
                raise CoverageError(f"{path.name}: more than {MAX_COVERED} covered lines")

        for measured, ctx, numbits in conn.execute(_QUERY):
            if not isinstance(numbits, bytes) or len(numbits) > MAX_NUMBITS:
                raise CoverageError(f"{path.name}: malformed line data")
            add(measured, ctx, numbits_to_nums(numbits))
        if "arc" in tables:
            for measured, ctx, fromno, tono in conn.execute(_ARCS):
                add(measured, ctx, [n for n in (fromno, tono) if isinstance(n, int)])
    except sqlite3.Error as exc:
        raise CoverageError(f"{path.name}: {exc}") from exc
    finally:
        conn.close()


def coverage_by_test(data_file: Path, root: Path) -> dict[str, set[Line]]:
    """Lines (path relative to root, line) that each test ran; {} when there is no data.

    The file (and coverage.py's parallel ``<name>.*`` files) must pass the same checks as
    any report the tests wrote (a plain file, not a link, not huge; see ``testing/run.py``) and is
    opened read-only. Raises CoverageError when it is there but unreadable or tampered with.
    """
    out = data_file.parent
    names = [data_file.name, *sorted(p.name for p in out.glob(data_file.name + ".*"))]
    result: dict[str, set[Line]] = {}
    for name in names:
        f, problem = check_report(out, name)
        if problem:
            raise CoverageError(f"{name}: {problem}")
        if f is not None:
            _read_coverage(f, root, result)
    return {k: v for k, v in result.items() if v}


LINES_GLOB = "lines.*.json"
"""The files the coverage hook's line tracer writes, one per process (see ``coverage_hook``)."""


def lines_run(out: Path, root: Path) -> set[Line]:
    """Lines (path relative to root, line) that the coverage hook's tracer saw, over every
    process of the run; empty when there are none.

    The files belong to the tested code, like coverage data: each must pass the same checks
    as any report and hold ``{"/abs/path": [line, ...]}``; anything else raises
    CoverageError.
    """
    result: set[Line] = set()
    relative: dict[str, str | None] = {}
    for name in sorted(p.name for p in out.glob(LINES_GLOB)):
        f, problem = check_report(out, name)
        if problem:
            raise CoverageError(f"{name}: {problem}")
        if f is None:
            continue
        try:
            data = json.loads(f.read_bytes())
        except (OSError, ValueError) as exc:
            raise CoverageError(f"{name}: {exc}") from exc
        if not isinstance(data, dict):
            raise CoverageError(f"{name}: not a mapping of files to lines")
        for path, numbers in data.items():
            if not isinstance(numbers, list) or not all(type(n) is int for n in numbers):
                raise CoverageError(f"{name}: malformed lines of {path[:200]!r}")
            if path not in relative:
                relative[path] = _relative(path, root)
            rel = relative[path]
            if rel is not None:
                result.update((rel, n) for n in numbers if n >= 1)
            if len(result) > MAX_COVERED:
                raise CoverageError(f"{name}: more than {MAX_COVERED} covered lines")
    return result


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


def command_files(test_cmd: str) -> list[str]:
    """Python files the test command names (``python test.py``, ``pytest t/test_x.py``):
    they are the tests, so never the code under repair, whatever the exclude globs say."""
    _, argv = split_command(test_cmd)
    files = []
    for word in argv:
        path = word.split("::", 1)[0]
        if path.endswith(".py") and not path.startswith("-"):
            files.append(re.sub(r"^(\./)+", "", path))
    return files


def editable_excludes(instance: Instance) -> list[str]:
    """The instance's exclude globs plus the files its test command runs."""
    return [*instance.exclude, *command_files(instance.test_cmd)]


def editable(instance: Instance, path: str) -> bool:
    """True when a patch may change ``path``: in scope, not excluded, not a test the
    command names."""
    return matches_any(path, instance.scope) and not matches_any(path, editable_excludes(instance))


def rank(
    cov_scores: Mapping[Line, float],
    frames: Sequence[Sequence[Line]],
    scope: list[str],
    exclude: list[str],
    limit: int = 50,
    *,
    cov_source: str = "ochiai",
    extra: Mapping[str, Mapping[Line, float]] | None = None,
) -> list[SuspiciousLine]:
    """Most suspicious lines first: coverage scores plus boosts from other evidence.

    ``cov_scores`` are Ochiai scores (or, ``cov_source="executed"``, a flat weight for the
    lines a failing command ran). ``frames`` holds one list per failing test's traceback,
    innermost last. Frames outside scope or inside exclude (tests, by default) are dropped
    before distances are counted, so the innermost frame in the code under repair gets the
    full boost. ``extra`` adds named boosts (``callee``, ``hint``: see :func:`boosts`).
    """

    def in_scope(path: str) -> bool:
        return matches_any(path, scope) and not matches_any(path, exclude)

    boost: dict[Line, float] = {}
    for tb in frames:
        kept = [f for f in tb if in_scope(f[0])]
        for distance, frame in enumerate(reversed(kept)):
            boost[frame] = max(boost.get(frame, 0.0), TRACEBACK_WEIGHT / (1 + distance))
    named = {"traceback": boost, **{k: dict(v) for k, v in (extra or {}).items()}}
    lines = {line for line, s in cov_scores.items() if s > 0 and in_scope(line[0])}
    lines |= {line for scores in named.values() for line in scores if in_scope(line[0])}
    ranked = []
    for line in lines:
        score = cov_scores.get(line, 0.0)
        sources = [cov_source] if score > 0 else []
        for name, scores in named.items():
            if line in scores:
                sources.append(name)
                score += scores[line]
        ranked.append(SuspiciousLine(path=line[0], line=line[1], score=score, sources=sources))
    ranked.sort(key=lambda s: (-s.score, s.path, s.line))
    return ranked[:limit]


CALLEE_WEIGHT, CALLEE_OF_CALLEE_WEIGHT, HINT_WEIGHT = 0.3, 0.15, 0.2
"""Boosts for lines of a function the failing assertion calls (and of those it calls),
and of a function the instruction names."""
EXECUTED_WEIGHT = 0.1
"""Score of a line the failing command ran, when there are no per-test outcomes."""
MAX_SCAN_FILES = 200
"""In-scope files parsed at most for function spans (largest repositories: the rest are
reached through coverage and tracebacks only)."""
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


def _tree_of(root: Path, path: str) -> ast.Module | None:
    try:
        target = root / path
        if target.is_symlink() or not target.is_file() or target.stat().st_size > 2_000_000:
            return None
        return ast.parse(target.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None


def _called(node: ast.AST) -> set[str]:
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute):
                names.add(func.attr)
    return names


def _innermost_statement(tree: ast.Module, line: int) -> ast.stmt | None:
    best: ast.stmt | None = None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.stmt)
            and not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.lineno <= line <= (node.end_lineno or node.lineno)
            and (best is None or node.lineno >= best.lineno)
        ):
            best = node
    return best


def assertion_callees(
    frames: Sequence[Line], root: Path, in_scope: Callable[[str], bool]
) -> set[str]:
    """Names of the functions called by the failing statement of a test (its innermost
    traceback frame outside the code under repair, e.g. ``assert median(xs) == 2``)."""
    for path, line in reversed(frames):
        if in_scope(path):
            continue
        tree = _tree_of(root, path)
        stmt = _innermost_statement(tree, line) if tree is not None else None
        if stmt is not None:
            return _called(stmt)
    return set()


def function_spans(
    root: Path, paths: Iterable[str]
) -> dict[str, list[tuple[str, int, int, set[str]]]]:
    """Function name -> [(path, first line, last line, names it calls)] in ``paths``."""
    spans: dict[str, list[tuple[str, int, int, set[str]]]] = defaultdict(list)
    for path in sorted(set(paths))[:MAX_SCAN_FILES]:
        tree = _tree_of(root, path)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                last = node.end_lineno or node.lineno
                spans[node.name].append((path, first, last, _called(node)))
    return spans


def hint_names(instruction: str) -> set[str]:
    """Identifiers an instruction mentions (``page_count()``, ``Money.allocate``)."""
    return set(_IDENT.findall(instruction))


def boosts(
    spans: Mapping[str, list[tuple[str, int, int, set[str]]]],
    callees: set[str],
    hints: set[str],
    executed: Mapping[str, set[int]],
) -> dict[str, dict[Line, float]]:
    """``callee`` and ``hint`` boosts for the lines of the functions those names define.

    Where the failing run's lines are known (``executed``), only those get a boost.
    """

    def lines_of(names: Iterable[str], weight: float, out: dict[Line, float]) -> set[str]:
        reached: set[str] = set()
        for name in names:
            for path, first, last, calls in spans.get(name, ()):
                ran = executed.get(path)
                for n in range(first, last + 1):
                    if ran is None or n in ran:
                        out[(path, n)] = max(out.get((path, n), 0.0), weight)
                reached |= calls
        return reached

    callee: dict[Line, float] = {}
    inner = lines_of(callees, CALLEE_WEIGHT, callee)
    second: dict[Line, float] = {}
    lines_of(inner - callees, CALLEE_OF_CALLEE_WEIGHT, second)
    for line, weight in second.items():
        callee.setdefault(line, weight)
    hint: dict[Line, float] = {}
    lines_of(hints & set(spans), HINT_WEIGHT, hint)
    return {k: v for k, v in (("callee", callee), ("hint", hint)) if v}
