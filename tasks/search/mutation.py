"""Tier 0: a deterministic search over mutants of the suspicious lines (no model).

:func:`mutants_for` lists the single-edit mutants of one file that touch suspicious
lines, best first. :class:`MutationSearch` turns them into candidates: first every
single mutant, then (``max_order=2``) pairs of mutants at different places. It keeps
no state between rounds: what was already tried comes in as ``tried``, so a call is
a pure function of its inputs and can run as a cached Prefect task.
"""

from __future__ import annotations

import ast
import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from patchsmith.domain import Candidate, Plan
from patchsmith.errors import MalformedEdit
from patchsmith.tasks.edits.diff import make_diff
from patchsmith.tasks.edits.parse import resolve_inside
from patchsmith.tasks.search.operators import PRIORITY, describe, raw_mutations
from patchsmith.tasks.search.source import SourceText, apply_edits

GENERATOR = "mutation"


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

    def apply(self, source: str) -> str:
        """The mutated source."""
        return source[: self.start] + self.replacement + source[self.end :]

    def sort_key(self) -> tuple[float, int, str, int, int, int]:
        """Best first: suspiciousness, operator priority, then position."""
        return (
            -self.score,
            PRIORITY[self.operator],
            self.path,
            self.start,
            self.end,
            self.variant,
        )

    def overlaps(self, other: Mutant) -> bool:
        """Whether both edit the same file at overlapping spans."""
        return self.path == other.path and self.start < other.end and other.start < self.end


def _mutants(path: str, src: SourceText, lines: Mapping[int, float]) -> list[Mutant]:
    ordered = sorted(lines)
    found: list[Mutant] = []
    for raw in raw_mutations(src, ordered):
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
            )
        )
    found.sort(key=Mutant.sort_key)
    seen: set[str] = {src.source}
    result = []
    for mutant in found:
        mutated = mutant.apply(src.source)
        if mutated in seen or not src.parses_with([(mutant.start, mutant.end, mutant.replacement)]):
            continue
        seen.add(mutated)
        result.append(mutant)
    return result


def mutants_for(path: str, source: str, lines: Mapping[int, float]) -> list[Mutant]:
    """Valid, distinct mutants of ``source`` whose edit spans a line in ``lines``.

    ``lines`` maps line numbers to suspiciousness; a mutant's score is the highest
    suspiciousness among the lines its edit spans. Best first; [] if the source does
    not parse.
    """
    try:
        src = SourceText(source)
    except (SyntaxError, ValueError):
        return []
    return _mutants(path, src, lines)


@dataclass(frozen=True)
class _Single:
    mutant: Mutant
    candidate: Candidate


class MutationSearch:
    """The tier-0 generator: single mutants best first, then pairs of them."""

    name = GENERATOR

    def __init__(self, max_order: int = 2, top_lines: int = 12, pair_pool: int = 40) -> None:
        if max_order not in (1, 2):
            raise ValueError("max_order must be 1 or 2")
        self.max_order = max_order
        self.top_lines = top_lines
        self.pair_pool = pair_pool

    def propose(
        self, root: Path, plan: Plan, tried: set[str], n: int, tier: str = "search"
    ) -> list[Candidate]:
        """The next ``n`` candidates whose ids are not in ``tried``; [] when exhausted."""
        out: list[Candidate] = []
        if n <= 0:
            return out
        for candidate in self._stream(root, plan, tier):
            if candidate.candidate_id not in tried:
                out.append(candidate)
                if len(out) == n:
                    break
        return out

    # ------------------------------------------------------------------ internals

    def _sources(self, root: Path, plan: Plan) -> dict[str, tuple[SourceText, dict[int, float]]]:
        best: dict[tuple[str, int], float] = {}
        for s in plan.suspicious:
            key = (s.path, s.line)
            best[key] = max(best.get(key, s.score), s.score)
        top = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[: self.top_lines]
        files: dict[str, tuple[SourceText, dict[int, float]]] = {}
        for (path, line), score in top:
            if path not in files:
                src = _load(root, path)
                if src is None:
                    continue
                files[path] = (src, {})
            files[path][1][line] = score
        return files

    def _stream(self, root: Path, plan: Plan, tier: str) -> Iterator[Candidate]:
        files = self._sources(root, plan)
        mutants = sorted(
            (m for path, (src, lines) in files.items() for m in _mutants(path, src, lines)),
            key=Mutant.sort_key,
        )
        singles: list[_Single] = []
        for mutant in mutants:
            src = files[mutant.path][0].source
            diff = make_diff({mutant.path: (src, mutant.apply(src))})
            single = _Single(mutant, _candidate(diff, tier, [mutant], mutant.score, []))
            singles.append(single)
            yield single.candidate
        if self.max_order < 2:
            return
        yield from self._pairs(files, singles[: self.pair_pool], tier)

    def _pairs(
        self,
        files: dict[str, tuple[SourceText, dict[int, float]]],
        pool: list[_Single],
        tier: str,
    ) -> Iterator[Candidate]:
        order = sorted(
            (
                (-(a.mutant.score + b.mutant.score), i + j, i, j)
                for i, a in enumerate(pool)
                for j, b in enumerate(pool)
                if i < j and not a.mutant.overlaps(b.mutant)
            ),
        )
        seen: set[str] = {s.candidate.diff for s in pool}
        for _, _, i, j in order:
            a, b = pool[i].mutant, pool[j].mutant
            changes: dict[str, tuple[str | None, str | None]] = {}
            for path in dict.fromkeys((a.path, b.path)):
                src = files[path][0]
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
