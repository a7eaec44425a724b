"""Tier 0: a deterministic search over mutants of the suspicious lines, widening (no model).

:func:`mutants_for` lists the single-edit mutants of one file that touch given lines, best
first. :class:`MutationSearch` turns them into candidates in widening stages, each tried
only after the previous one is used up, so no budget is left unused while something
untried remains:

1. ``top lines``: the most suspicious lines (likely operators only);
2. ``functions``: every line of the functions holding a suspicious line (every operator);
3. ``executed lines``: every in-scope line the failing tests ran;
4. ``files``: every line of those files;
5. ``pairs``: two mutants of the top lines at once (``max_order=2``), bounded.

Within a stage, mutants are ordered by suspiciousness x the operator's prior
(``operators.PRIOR``, or a table refit by ``patchsmith tune-search``). A mutant is a span
edit on the original text, so diffs stay minimal. What was already tried comes in as
``tried``; the stream is deterministic, so a resumed run continues where it stopped.
:meth:`MutationSearch.census` says what the scope holds and how far the search got, for
honest give-up reasons.
"""

from __future__ import annotations

import ast
import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from patchsmith.domain import Candidate, Plan
from patchsmith.errors import MalformedEdit
from patchsmith.tasks.edits.diff import make_diff
from patchsmith.tasks.edits.parse import resolve_inside
from patchsmith.tasks.search.operators import (
    PRIOR,
    PRIORITY,
    VARIANT_DECAY,
    describe,
    raw_mutations,
)
from patchsmith.tasks.search.source import SourceText, apply_edits

GENERATOR = "mutation"
STAGES = ("top lines", "functions", "executed lines", "files")
FUNCTION_SHARE, EXECUTED_SCORE, FILE_SCORE = 0.5, 0.05, 0.01
"""Scores of lines a widened stage adds: half the function's best suspicious line, and
flat floors for executed lines and the rest of a file (suspicious lines keep theirs)."""
MAX_WIDE_LINES = 3000
"""Files longer than this are not mutated whole (their executed lines still are)."""


@dataclass(frozen=True)
class Mutant:
    """One edit: replace ``source[start:end]`` (character offsets) with ``replacement``."""

    path: str
    line: int
    operator: str
    description: str
    start: int
    end: int
    replacement: str
    score: float
    variant: int = 0
    weight: float = 1.0

    def apply(self, source: str) -> str:
        """The mutated source."""
        return source[: self.start] + self.replacement + source[self.end :]

    def sort_key(self) -> tuple[float, int, str, int, int, int]:
        """Best first: suspiciousness x prior, operator priority, then position."""
        return (
            -self.score * self.weight,
            PRIORITY[self.operator],
            self.path,
            self.start,
            self.end,
            self.variant,
        )

    def overlaps(self, other: Mutant) -> bool:
        """Whether both edit the same file at overlapping spans."""
        return self.path == other.path and self.start < other.end and other.start < self.end


def _mutants(
    path: str,
    src: SourceText,
    lines: Mapping[int, float],
    *,
    wide: bool = False,
    prior: Mapping[str, float] = PRIOR,
    seen: set[str] | None = None,
) -> list[Mutant]:
    """Valid mutants whose edit spans one of ``lines``, best first, none in ``seen`` (the
    mutated texts of earlier stages; updated)."""
    ordered = sorted(lines)
    found: list[Mutant] = []
    for raw in raw_mutations(src, ordered, wide):
        first = src.line_of(raw.start)
        last = src.line_of(max(raw.end - 1, raw.start))
        inside = ordered[bisect.bisect_left(ordered, first) : bisect.bisect_right(ordered, last)]
        if not inside:
            continue
        line = max(inside, key=lambda n: (lines[n], -n))
        found.append(
            Mutant(
                path=path,
                line=line,
                operator=raw.operator,
                description=describe(src, raw, line),
                start=raw.start,
                end=raw.end,
                replacement=raw.replacement,
                score=lines[line],
                variant=raw.variant,
                weight=prior.get(raw.operator, min(prior.values(), default=1.0))
                * VARIANT_DECAY**raw.variant,
            )
        )
    found.sort(key=Mutant.sort_key)
    if seen is None:
        seen = set()
    seen.add(src.source)
    result = []
    for mutant in found:
        mutated = mutant.apply(src.source)
        if mutated in seen or not src.parses_with([(mutant.start, mutant.end, mutant.replacement)]):
            continue
        seen.add(mutated)
        result.append(mutant)
    return result


def mutants_for(
    path: str, source: str, lines: Mapping[int, float], *, wide: bool = False
) -> list[Mutant]:
    """Valid, distinct mutants of ``source`` whose edit spans a line in ``lines``.

    ``lines`` maps line numbers to suspiciousness; a mutant's score is the highest
    suspiciousness among the lines its edit spans. ``wide``: every variant (the widened
    stages). Best first; [] if the source does not parse.
    """
    try:
        src = SourceText(source)
    except (SyntaxError, ValueError):
        return []
    return _mutants(path, src, lines, wide=wide)


@dataclass(frozen=True)
class _Single:
    mutant: Mutant
    candidate: Candidate


@dataclass
class Census:
    """What the search scope holds and how far the stream got (for give-up reasons)."""

    stages: list[tuple[str, int, int]] = field(default_factory=list)  # name, lines, singles
    files: list[str] = field(default_factory=list)
    operators: set[str] = field(default_factory=set)
    singles: int = 0
    pairs: int = 0
    pair_lines: int = 0
    reached: int = 0
    """Candidates of the stream up to the last one proposed (tried or skipped as tried)."""
    stage: str = ""
    """The stage of the last candidate proposed."""
    capped: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.singles + self.pairs

    def _where(self) -> str:
        lines = self.stages[-1][1] if self.stages else 0
        names = ", ".join(self.files[:3]) + (
            f" and {len(self.files) - 3} more" if len(self.files) > 3 else ""
        )
        return f"{lines} lines of {names or 'no file'}"

    def exhausted(self) -> str:
        """``exhausted 412 single mutations over 61 lines of main.py (…) and 300 pairs…``."""
        text = (
            f"exhausted {self.singles} single mutations over {self._where()} "
            f"({len(self.operators)} operators: {', '.join(sorted(self.operators))})"
        )
        if self.pairs:
            text += f" and {self.pairs} pairs on its top {self.pair_lines} lines"
        if self.capped:
            text += f"; not mutated whole (over {MAX_WIDE_LINES} lines): {', '.join(self.capped)}"
        return text

    def progress(self) -> str:
        """``tried 140 of 812 candidates (17%): up to stage 'functions' …``."""
        share = self.reached / self.total if self.total else 0.0
        return (
            f"search tried {self.reached} of {self.total} candidates ({share:.0%}) in its "
            f"scope ({self.singles} single mutations over {self._where()}, {self.pairs} "
            f"pairs), up to stage '{self.stage or STAGES[0]}'"
        )


class MutationSearch:
    """The tier-0 generator: single mutants in widening stages, then pairs of them."""

    name = GENERATOR

    def __init__(
        self,
        max_order: int = 2,
        top_lines: int = 12,
        pair_pool: int = 40,
        max_pairs: int = 120,
        prior: Mapping[str, float] | None = None,
        widen: bool = True,
    ) -> None:
        if max_order not in (1, 2):
            raise ValueError("max_order must be 1 or 2")
        self.max_order = max_order
        self.top_lines = top_lines
        self.pair_pool = pair_pool
        self.max_pairs = max_pairs
        self.widen = widen
        self.prior: Mapping[str, float] = prior or PRIOR
        self._key: tuple[str, int] | None = None
        self._made: list[tuple[str, Candidate]] = []
        self._rest: Iterator[tuple[str, Candidate]] = iter(())
        self._census = Census()
        self._position = 0

    def propose(
        self, root: Path, plan: Plan, tried: set[str], n: int, tier: str = "search"
    ) -> list[Candidate]:
        """The next ``n`` candidates whose ids are not in ``tried``; [] when exhausted."""
        out: list[Candidate] = []
        if n <= 0:
            return out
        self._open(root, plan, tier)
        i = 0
        while len(out) < n:
            if i == len(self._made):
                nxt = next(self._rest, None)
                if nxt is None:
                    break
                self._made.append(nxt)
            stage, candidate = self._made[i]
            i += 1
            if candidate.candidate_id not in tried:
                out.append(candidate)
                self._position = max(self._position, i)
                self._census.stage = stage
        if not out:
            self._position = len(self._made)
        return out

    def census(self, root: Path, plan: Plan, tier: str = "search") -> Census:
        """The scope's size, and how far the proposals got."""
        self._open(root, plan, tier)
        self._census.reached = self._position
        return self._census

    # ------------------------------------------------------------------ internals

    def _open(self, root: Path, plan: Plan, tier: str) -> None:
        key = (str(root), id(plan))
        if self._key == key:
            return
        self._key, self._made, self._position = key, [], 0
        self._census = Census()
        self._rest = self._stream(root, plan, tier, self._census)

    def _top(self, plan: Plan) -> dict[tuple[str, int], float]:
        best: dict[tuple[str, int], float] = {}
        for s in plan.suspicious:
            key = (s.path, s.line)
            best[key] = max(best.get(key, s.score), s.score)
        return best

    def _stages(
        self, root: Path, plan: Plan, files: dict[str, SourceText], census: Census
    ) -> list[tuple[str, dict[str, dict[int, float]]]]:
        """Each stage's lines per file with their scores (a stage holds the ones before)."""
        best = self._top(plan)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))
        for path in dict.fromkeys([p for (p, _), _ in ranked] + sorted(plan.executed)):
            src = _load(root, path)
            if src is not None:
                files[path] = src
        top: dict[str, dict[int, float]] = {}
        for (path, line), score in ranked[: self.top_lines]:
            if path in files:
                top.setdefault(path, {})[line] = score
        functions = {p: dict(ls) for p, ls in top.items()}
        for (path, line), score in ranked:
            if path not in files:
                continue
            for first, last in _functions_at(files[path].tree, line):
                got = functions.setdefault(path, {})
                for n in range(first, last + 1):
                    got[n] = max(got.get(n, 0.0), best.get((path, n), score * FUNCTION_SHARE))
        executed = {p: dict(ls) for p, ls in functions.items()}
        for path, lines in plan.executed.items():
            if path in files:
                got = executed.setdefault(path, {})
                for n in lines:
                    got.setdefault(n, best.get((path, n), EXECUTED_SCORE))
        whole = {p: dict(ls) for p, ls in executed.items()}
        for path, src in files.items():
            count = len(src.source.splitlines())
            if count > MAX_WIDE_LINES:
                census.capped.append(path)
                continue
            got = whole.setdefault(path, {})
            for n in range(1, count + 1):
                got.setdefault(n, FILE_SCORE)
        stages = list(zip(STAGES, (top, functions, executed, whole), strict=True))
        return stages if self.widen else stages[:1]

    def _stream(
        self, root: Path, plan: Plan, tier: str, census: Census
    ) -> Iterator[tuple[str, Candidate]]:
        files: dict[str, SourceText] = {}
        stages = self._stages(root, plan, files, census)
        census.files = sorted(p for p in stages[-1][1] if stages[-1][1][p])
        seen: dict[str, set[str]] = {}
        singles: list[_Single] = []
        per_stage: list[list[Mutant]] = []
        for i, (name, lines) in enumerate(stages):
            mutants = sorted(
                (
                    m
                    for path in sorted(lines)
                    for m in _mutants(
                        path, files[path], lines[path], wide=i > 0, prior=self.prior,
                        seen=seen.setdefault(path, set()),
                    )
                ),
                key=Mutant.sort_key,
            )  # fmt: skip
            per_stage.append(mutants)
            census.singles += len(mutants)
            census.operators |= {m.operator for m in mutants}
            census.stages.append((name, sum(map(len, lines.values())), len(mutants)))
        pool = per_stage[0][: self.pair_pool] if self.max_order > 1 else []  # best of top lines
        census.pair_lines = len({(m.path, m.line) for m in pool})
        census.pairs = len(self._pair_order(pool))
        for (name, _), mutants in zip(stages, per_stage, strict=True):
            for mutant in mutants:
                src = files[mutant.path].source
                diff = make_diff({mutant.path: (src, mutant.apply(src))})
                single = _Single(mutant, _candidate(diff, tier, [mutant], mutant.score, []))
                if mutant in pool:
                    singles.append(single)
                yield name, single.candidate
        for candidate in self._pairs(files, singles, tier):
            yield "pairs", candidate

    def _pair_order(self, pool: list[Mutant]) -> list[tuple[int, int]]:
        order = sorted(
            (
                (-(a.score * a.weight + b.score * b.weight), i + j, i, j)
                for i, a in enumerate(pool)
                for j, b in enumerate(pool)
                if i < j and not a.overlaps(b)
            ),
        )
        return [(i, j) for _, _, i, j in order[: self.max_pairs]]

    def _pairs(
        self,
        files: dict[str, SourceText],
        pool: list[_Single],
        tier: str,
    ) -> Iterator[Candidate]:
        seen: set[str] = {s.candidate.diff for s in pool}
        for i, j in self._pair_order([s.mutant for s in pool]):
            a, b = pool[i].mutant, pool[j].mutant
            changes: dict[str, tuple[str | None, str | None]] = {}
            for path in dict.fromkeys((a.path, b.path)):
                src = files[path]
                edits = [(m.start, m.end, m.replacement) for m in (a, b) if m.path == path]
                if len(edits) > 1 and not src.parses_with(edits):
                    break
                changes[path] = (src.source, apply_edits(src.source, edits))
            else:
                diff = make_diff(changes)
                if diff and diff not in seen:
                    seen.add(diff)
                    parents = [pool[i].candidate.candidate_id, pool[j].candidate.candidate_id]
                    score = (a.score + b.score) / 2
                    yield _candidate(diff, tier, [a, b], score, parents)


def _functions_at(tree: ast.Module, line: int) -> list[tuple[int, int]]:
    """(first, last) lines of the innermost function holding ``line`` ([] at module level)."""
    best: tuple[int, int] | None = None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            last = node.end_lineno or node.lineno
            if first <= line <= last and (best is None or first >= best[0]):
                best = (first, last)
    return [best] if best else []


def _candidate(
    diff: str, tier: str, mutants: list[Mutant], score: float, parents: list[str]
) -> Candidate:
    return Candidate(
        candidate_id=Candidate.make_id(diff),
        generator=GENERATOR,
        tier=tier,
        diff=diff,
        description="; ".join(f"{m.path} {m.description} ({m.operator})" for m in mutants),
        score=score,
        files=sorted({m.path for m in mutants}),
        parent_ids=parents,
        operators=[m.operator for m in mutants],
    )


def _load(root: Path, path: str) -> SourceText | None:
    """The parsed file, or None when it is not a readable, parseable Python file."""
    if not path.endswith(".py"):
        return None
    try:
        target = resolve_inside(root, path)
        with open(target, encoding="utf-8", newline="") as fh:
            text = fh.read()
        return SourceText(text, ast.parse(text))
    except (MalformedEdit, OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
