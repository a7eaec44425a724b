"""Tier-0 mutation search on real small buggy functions."""

from __future__ import annotations

import ast
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from patchsmith.domain import Intent, Plan, SuspiciousLine, TestReport
from patchsmith.tasks.edits.diff import apply_diff
from patchsmith.tasks.search.mutation import STAGES, MutationSearch, mutants_for
from patchsmith.tasks.search.operators import OPERATORS, PRIORITY

BUGS: dict[str, tuple[str, int, str, Callable[[dict[str, Any]], bool]]] = {
    "range": (
        "def total(xs):\n    s = 0\n    for i in range(len(xs) - 1):\n        s += xs[i]\n"
        "    return s\n",
        3,
        "range",
        lambda ns: ns["total"]([1, 2, 3]) == 6,
    ),
    "boundary": (
        "def clamp(x, hi):\n    if x < hi:\n        return x\n    return hi\n\n\n"
        "def is_adult(age):\n    return age > 18\n",
        8,
        "comparison",
        lambda ns: ns["is_adult"](18) and not ns["is_adult"](17),
    ),
    "boolean": (
        "def either(a, b):\n    # true when one of them is set\n    return a and b\n",
        3,
        "boolean",
        lambda ns: ns["either"](True, False) and not ns["either"](False, False),
    ),
    "args": (
        "def ratio(a, b):\n    return a / b\n\n\ndef half(x):\n    return ratio(2, x)\n",
        6,
        "swap_args",
        lambda ns: ns["half"](10) == 5,
    ),
}


def _plan(lines: list[tuple[str, int, float]]) -> Plan:
    return Plan(
        instance_id="i",
        intent=Intent.bugfix,
        fail_to_pass=["t"],
        pass_to_pass=[],
        suspicious=[SuspiciousLine(path=p, line=n, score=s) for p, n, s in lines],
        baseline=TestReport(),
        tier="search",
    )


def _fixes(root: Path, diff: str, path: str, check: Callable[[dict[str, Any]], bool]) -> bool:
    work = root.parent / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(root, work)
    assert apply_diff(work, diff)
    code = (work / path).read_text()
    ast.parse(code)
    namespace: dict[str, Any] = {}
    exec(compile(code, path, "exec"), namespace)
    try:
        return bool(check(namespace))
    except (ArithmeticError, LookupError, TypeError, ValueError, NameError):
        # a mutant that crashes simply does not fix the bug
        return False


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_the_fixing_mutant_is_generated_and_its_diff_applies(tmp_path: Path, bug: str) -> None:
    source, line, operator, check = BUGS[bug]
    root = tmp_path / "repo"
    root.mkdir()
    (root / "buggy.py").write_text(source)
    candidates = MutationSearch(max_order=1).propose(
        root, _plan([("buggy.py", line, 1.0)]), set(), n=500
    )
    assert candidates
    fixing = [c for c in candidates if _fixes(root, c.diff, "buggy.py", check)]
    assert fixing, f"no candidate fixes {bug}"
    assert any(f"({operator})" in c.description for c in fixing)
    assert all(c.generator == "mutation" and c.files == ["buggy.py"] for c in candidates)
    assert (root / "buggy.py").read_text() == source  # the pristine copy is never written


SAMPLE = '''"""Module doc."""
import math


def f(xs, lo, hi, flag=False):
    """Docstring with → arrows."""
    total = 0  # comment stays
    for i in range(lo, hi):
        if xs[i] >= 0 and not flag or i in xs[:hi]:
            total += xs[i - 1] * 2
        elif xs[i] is None:
            continue
        else:
            break
    while total > 10:
        total -= max(total // 2, -lo)
    assert total != 3, "never three"
    y = total if flag else -total
    name = "é" + str(xs).strip()
    if not name:
        return False
    return [x for x in xs if x], math.floor(y), True
'''


def test_every_mutant_parses_changes_the_code_and_is_unique() -> None:
    lines = {n: 1.0 - n / 100 for n in range(7, 24)}
    mutants = mutants_for("m.py", SAMPLE, lines)
    assert len(mutants) > 60
    results = set()
    for m in mutants:
        mutated = m.apply(SAMPLE)
        assert mutated != SAMPLE
        ast.parse(mutated)
        results.add(mutated)
        assert m.description.startswith(f"line {m.line}: ")
        # the edit only touches its own span: everything else is byte-identical
        assert mutated.startswith(SAMPLE[: m.start]) and mutated.endswith(SAMPLE[m.end :])
    assert len(results) == len(mutants)
    used = {m.operator for m in mutants}
    assert used <= set(OPERATORS)
    expected = {
        "comparison",
        "range",
        "slice",
        "index",
        "constant",
        "boolean",
        "negate",
        "arithmetic",
        "return",
        "call",
        "drop_condition",
        "swap_args",
        "swap_operands",
        "unary_minus",
        "name",
        "bool_constant",
        "break_continue",
        "condition",
    }
    assert expected == used


def test_mutants_are_ordered_by_score_times_prior_then_operator_priority() -> None:
    mutants = mutants_for("m.py", SAMPLE, {9: 0.2, 15: 0.9})
    keys = [(-m.score * m.weight, PRIORITY[m.operator]) for m in mutants]
    assert keys == sorted(keys)
    assert {m.line for m in mutants} == {9, 15}
    assert mutants[0].line == 15
    assert mutants[0].description == "line 15: `>` → `>=`"  # the boundary fix comes first


def test_non_ascii_columns_are_converted_from_bytes() -> None:
    source = 'def g(a, b):\n    s = "ééé→→"; return a < b and s\n'
    mutants = mutants_for("u.py", source, {2: 1.0})
    swap = [m for m in mutants if m.operator == "comparison" and m.replacement == "<="]
    assert len(swap) == 1
    assert source[swap[0].start : swap[0].end] == "<"
    assert swap[0].apply(source) == 'def g(a, b):\n    s = "ééé→→"; return a <= b and s\n'
    assert all(m.apply(source).count("ééé→→") == 1 for m in mutants)


def test_expressions_inside_f_strings_are_mutated_where_their_positions_hold() -> None:
    source = 'def show(a, b):\n    return f"{a - b}:{b}"\n'
    mutants = mutants_for("f.py", source, {2: 1.0}, wide=True)
    texts = {m.apply(source) for m in mutants}
    assert 'def show(a, b):\n    return f"{a + b}:{b}"\n' in texts
    assert 'def show(a, b):\n    return f"{b - a}:{b}"\n' in texts
    assert 'def show(a, b):\n    return f"{a - b}:{a}"\n' in texts
    for text in texts:
        ast.parse(text)  # every edit lands on the expression it was made for
    # An f-string nested in an f-string follows its own quoting: left alone.
    nested = "def show(a):\n    return f\"{f'{a + 1}'}\"\n"
    assert not [m for m in mutants_for("f.py", nested, {2: 1.0}, wide=True)
                if m.operator == "arithmetic"]  # fmt: skip


def test_unparseable_source_gives_no_mutants() -> None:
    assert mutants_for("bad.py", "def (:\n", {1: 1.0}) == []


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("def f(x):\n    return x < 1\n")
    (root / "pkg" / "b.py").write_text("def g(y):\n    return y + 2\n")
    return root


def test_tried_candidates_are_skipped_and_pairs_come_after_singles(repo: Path) -> None:
    plan = _plan([("pkg/a.py", 2, 0.9), ("pkg/b.py", 2, 0.5), ("missing.py", 1, 1.0)])
    search = MutationSearch()
    everything = search.propose(repo, plan, set(), n=10_000)
    singles = [c for c in everything if not c.parent_ids]
    pairs = [c for c in everything if c.parent_ids]
    assert singles and pairs
    assert everything == singles + pairs  # every single before any pair
    census = search.census(repo, plan)
    assert census.singles == len(singles) and 0 < len(pairs) <= census.pairs
    top = census.stages[0][2]
    assert singles[0].score == 0.9  # the most suspicious line first
    assert {c.score for c in singles[:top]} == {0.9, 0.5}  # then the top lines' others
    assert [name for name, _, _ in census.stages] == list(STAGES)
    assert sum(count for _, _, count in census.stages) == len(singles)
    assert len(singles) > top  # the widened stages add the less likely variants
    single_ids = {c.candidate_id for c in singles}
    assert all(set(p.parent_ids) <= single_ids for p in pairs)
    assert any(p.files == ["pkg/a.py", "pkg/b.py"] for p in pairs)

    tried: set[str] = set()
    rounds = []
    while batch := search.propose(repo, plan, tried, n=7):
        rounds.append(batch)
        tried |= {c.candidate_id for c in batch}
    assert [c for batch in rounds for c in batch] == everything
    assert search.propose(repo, plan, tried, n=7) == []


def test_pairs_in_one_file_apply_both_edits(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "c.py").write_text(
        "def h(n):\n    for i in range(n):\n        pass\n    return n > 0\n"
    )
    plan = _plan([("c.py", 2, 1.0), ("c.py", 4, 1.0)])
    out = MutationSearch(max_order=2).propose(root, plan, set(), n=2000)
    pairs = [c for c in out if c.parent_ids]
    both = [c for c in pairs if "range(n + 1)" in c.diff and "n >= 0" in c.diff]
    assert len(both) == 1
    work = tmp_path / "work"
    shutil.copytree(root, work)
    apply_diff(work, both[0].diff)
    assert (work / "c.py").read_text() == (
        "def h(n):\n    for i in range(n + 1):\n        pass\n    return n >= 0\n"
    )
    assert not [
        c for c in MutationSearch(max_order=1).propose(root, plan, set(), 2000) if c.parent_ids
    ]


def test_search_is_deterministic(repo: Path) -> None:
    plan = _plan([("pkg/a.py", 2, 0.9), ("pkg/b.py", 2, 0.9)])
    first = MutationSearch().propose(repo, plan, set(), n=50, tier="t0")
    again = MutationSearch().propose(repo, plan, set(), n=50, tier="t0")
    assert first == again
    assert all(c.tier == "t0" for c in first)


def test_performance_sanity_on_a_500_line_file(tmp_path: Path) -> None:
    chunk = (
        "def fn_{i}(xs, n):\n"
        "    total = 0\n"
        "    for k in range(n):\n"
        "        if xs[k] < n and k > 0:\n"
        "            total += xs[k - 1] * 2\n"
        "    return max(total, n)\n"
        "\n"
    )
    source = "".join(chunk.format(i=i) for i in range(72))[:]
    assert len(source.splitlines()) >= 500
    lines = {7 * i + 4: 1.0 - i / 100 for i in range(0, 72, 6)}
    assert len(lines) == 12
    start = time.perf_counter()
    mutants = mutants_for("big.py", source, lines)
    elapsed = time.perf_counter() - start
    print(f"500-line file, 12 lines: {len(mutants)} mutants in {elapsed * 1000:.0f} ms")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "big.py").write_text(source)
    plan = _plan([("big.py", n, s) for n, s in lines.items()])
    start = time.perf_counter()
    batch = MutationSearch().propose(root, plan, set(), n=20)
    print(f"propose(n=20): {(time.perf_counter() - start) * 1000:.0f} ms")
    assert len(batch) == 20 and len(mutants) > 100


def test_elif_conditions_are_mutated() -> None:
    # Regression: an elif's statement text starts with `elif` and was never re-parsed OK,
    # so every mutant of an elif condition used to be dropped.
    source = (
        "def wrap(current, word, room):\n"
        "    if not current:\n"
        "        return 0\n"
        "    elif len(current) + 1 + len(word) < room:\n"
        "        return 1\n"
        "    return 2\n"
    )
    found = mutants_for("m.py", source, {4: 1.0})
    fixed = [m for m in found if "<=" in m.apply(source).splitlines()[3]]
    assert fixed, [m.description for m in found]
    assert all(m.line == 4 for m in found)
