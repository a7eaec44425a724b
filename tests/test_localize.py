"""Fault localization: globs, Ochiai, traceback frames, ranking, reading coverage data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from coverage import CoverageData

from patchsmith.tasks.localize import (
    CoverageError,
    coverage_by_test,
    lines_run,
    matches_any,
    ochiai,
    rank,
    traceback_frames,
)

EXCLUDE = ["tests/**", "test_*.py", "**/test_*.py", "**/conftest.py"]


@pytest.mark.parametrize(
    ("path", "globs", "expected"),
    [
        ("calc.py", ["**/*.py"], True),
        ("pkg/sub/calc.py", ["**/*.py"], True),
        ("calc.pyc", ["**/*.py"], False),
        ("conftest.py", ["**/conftest.py"], True),
        ("tests/unit/test_x.py", ["tests/**"], True),
        ("test_x.py", ["test_*.py"], True),
        ("pkg/test_x.py", ["test_*.py"], False),
        ("pkg/test_x.py", ["**/test_*.py"], True),
        ("pkg/m1.py", ["pkg/m[0-9].py"], True),
        ("pkg/ma.py", ["pkg/m[!a].py"], False),
        ("pkg/a.py", ["src/**"], False),
    ],
)
def test_matches_any(path: str, globs: list[str], expected: bool) -> None:
    assert matches_any(path, globs) is expected


def test_ochiai_by_hand() -> None:
    cov = {
        "f1": {("a.py", 1), ("a.py", 2)},
        "f2": {("a.py", 1), ("a.py", 3)},
        "p1": {("a.py", 1), ("a.py", 3)},
        "flaky": {("a.py", 9)},
    }
    scores = ochiai(cov, failing={"f1", "f2"}, passing={"p1"})
    assert scores[("a.py", 1)] == pytest.approx(2 / math.sqrt(2 * 3))
    assert scores[("a.py", 2)] == pytest.approx(1 / math.sqrt(2 * 1))
    assert scores[("a.py", 3)] == pytest.approx(1 / math.sqrt(2 * 2))
    assert ("a.py", 9) not in scores  # run by a test in neither set


def test_traceback_frames_python_and_pytest_styles(tmp_path: Path) -> None:
    log = f"""
Traceback (most recent call last):
  File "/usr/lib/python3.11/runpy.py", line 198, in _run_module_as_main
  File "{tmp_path}/check.py", line 4, in <module>
    main()
  File "{tmp_path}/pkg/calc.py", line 12, in main
    raise ValueError
ValueError
________________________________ test_x ________________________________

    def test_x():
>       f()

tests/test_calc.py:7:
_ _ _ _ _ _ _ _
pkg/calc.py:3: in f
    return 1 / 0
E   ZeroDivisionError: division by zero
E     File "{tmp_path}/pkg/bad.py", line 2
"""
    assert traceback_frames(log, tmp_path) == [
        ("check.py", 4),
        ("pkg/calc.py", 12),
        ("tests/test_calc.py", 7),
        ("pkg/calc.py", 3),
        ("pkg/bad.py", 2),
    ]


def test_rank_combines_ochiai_and_tracebacks() -> None:
    scores = {("calc.py", 5): 0.9, ("calc.py", 2): 0.5, ("tests/test_calc.py", 3): 1.0}
    frames = [
        [("tests/test_calc.py", 3), ("calc.py", 2), ("calc.py", 8)],
        [("calc.py", 8)],
    ]
    ranked = rank(scores, frames, scope=["**/*.py"], exclude=EXCLUDE)
    got = [(s.path, s.line, s.sources) for s in ranked]
    assert got == [
        ("calc.py", 5, ["ochiai"]),  # 0.9
        ("calc.py", 2, ["ochiai", "traceback"]),  # 0.5 + 0.25 (one frame from the failure)
        ("calc.py", 8, ["traceback"]),  # 0.5: innermost frame, best of both tracebacks
    ]
    assert ranked[1].score == pytest.approx(0.75)
    assert ranked[2].score == pytest.approx(0.5)


def test_rank_scope_ties_and_limit() -> None:
    scores = {("b.py", 1): 0.5, ("a.py", 2): 0.5, ("a.py", 1): 0.5, ("vendor/x.py", 1): 1.0}
    ranked = rank(scores, [], scope=["*.py"], exclude=[], limit=2)
    assert [(s.path, s.line) for s in ranked] == [("a.py", 1), ("a.py", 2)]


def _write_coverage(path: Path, root: Path) -> None:
    data = CoverageData(basename=str(path))
    data.set_context("tests/test_m.py::test_a|setup")
    data.add_lines({str(root / "m.py"): [1, 2]})
    data.set_context("tests/test_m.py::test_a|run")
    data.add_lines({str(root / "m.py"): [3], str(root / "tests" / "test_m.py"): [5]})
    data.set_context("tests/test_m.py::TestK::test_b[x|y]|run")
    data.add_lines({str(root / "m.py"): [3, 4], "/elsewhere/lib.py": [10]})
    data.set_context("")
    data.add_lines({str(root / "m.py"): [7]})
    data.write()


def test_coverage_by_test_merges_phases_and_relativizes(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    _write_coverage(root / "cov.sqlite", root)
    assert coverage_by_test(root / "cov.sqlite", root) == {
        "tests/test_m.py::test_a": {("m.py", 1), ("m.py", 2), ("m.py", 3), ("tests/test_m.py", 5)},
        "tests/test_m.py::TestK::test_b[x|y]": {("m.py", 3), ("m.py", 4)},
    }
    assert coverage_by_test(root / "absent.sqlite", root) == {}


def test_coverage_is_read_read_only(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    _write_coverage(root / "cov.sqlite", root)
    (root / "cov.sqlite").chmod(0o444)
    before = sorted(p.name for p in root.iterdir())
    assert coverage_by_test(root / "cov.sqlite", root)
    assert sorted(p.name for p in root.iterdir()) == before  # no journal, nothing written


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda f: f.write_bytes(b"SQLite format 3\0" + b"garbage" * 100), id="garbage"
        ),
        # a link to valid coverage data elsewhere: only the no-symlink check refuses it
        pytest.param(lambda f: f.symlink_to(f.parent.parent / "real.sqlite"), id="symlink"),
        pytest.param(lambda f: f.mkdir(), id="directory"),
    ],
)
def test_tampered_coverage_raises_coverage_error(tmp_path: Path, tamper: object) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    _write_coverage(tmp_path / "real.sqlite", root)
    tamper(root / "cov.sqlite")  # type: ignore[operator]
    with pytest.raises(CoverageError):
        coverage_by_test(root / "cov.sqlite", root)


def test_coverage_of_another_schema_raises(tmp_path: Path) -> None:
    import sqlite3

    root = tmp_path / "ws"
    root.mkdir()
    with sqlite3.connect(root / "cov.sqlite") as conn:
        conn.execute("CREATE VIEW line_bits AS SELECT 1")
    with pytest.raises(CoverageError, match=r"not coverage\.py data"):
        coverage_by_test(root / "cov.sqlite", root)


def _write_lines(out: Path, name: str, data: object) -> None:
    (out / name).write_text(json.dumps(data))


def test_lines_run_unions_processes_and_drops_what_lies_outside(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    out = root / ".patchsmith"
    out.mkdir(parents=True)
    _write_lines(out, "lines.7.json", {str(root / "m.py"): [1, 2], "/usr/lib/x.py": [3]})
    _write_lines(out, "lines.8.json", {str(root / "pkg/n.py"): [5], str(root / "m.py"): [2, 4]})
    assert lines_run(out, root) == {("m.py", 1), ("m.py", 2), ("m.py", 4), ("pkg/n.py", 5)}
    assert lines_run(tmp_path, root) == set()  # no files: no lines, no error


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda f: f.write_text("{not json"), id="garbage"),
        pytest.param(lambda f: f.write_text('{"/ws/m.py": ["1"]}'), id="not-lines"),
        pytest.param(lambda f: f.write_text("[1, 2]"), id="not-a-mapping"),
        pytest.param(lambda f: f.symlink_to(f.parent.parent / "real.json"), id="symlink"),
    ],
)
def test_tampered_lines_raise_coverage_error(tmp_path: Path, tamper: object) -> None:
    root = tmp_path / "ws"
    out = root / ".patchsmith"
    out.mkdir(parents=True)
    _write_lines(root, "real.json", {str(root / "m.py"): [1]})
    tamper(out / "lines.9.json")  # type: ignore[operator]
    with pytest.raises(CoverageError):
        lines_run(out, root)
