"""Test runs: pytest argv, JUnit parsing, sandboxed runs and staged runs on tiny projects."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from helpers import BrokenSandbox, RecordingSandbox

from patchsmith.domain import SandboxConfig
from patchsmith.domain import TestOutcome as Outcome
from patchsmith.errors import SandboxStartError
from patchsmith.infra.sandbox import get_sandbox
from patchsmith.tasks.testing.junit import failure_texts, parse_junit
from patchsmith.tasks.testing.run import (
    command_env,
    is_pytest,
    pytest_argv,
    run_tests,
    split_command,
    staged_run,
    target_outcome,
)

pytestmark = pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning")

CONFIG = SandboxConfig(timeout_s=60)
CMD = "python -m pytest -q"


def write(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


PROJECT = {
    "mod.py": "def double(x):\n    return x + x\n\n\ndef half(x):\n    return x / 3\n",
    "tests/test_mod.py": (
        "import pytest\n"
        "from mod import double, half\n\n\n"
        "class TestDouble:\n"
        "    @pytest.mark.parametrize('x', [1, 2.5])\n"
        "    def test_double(self, x):\n"
        "        assert double(x) == 2 * x\n\n\n"
        "def test_half():\n"
        "    assert half(4) == 2\n\n\n"
        "def test_skip():\n"
        "    pytest.skip('not today')\n"
    ),
    "tests/test_broken.py": "from mod import missing\n\n\ndef test_never():\n    pass\n",
}


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("pytest", True),
        ("python -m pytest -q tests", True),
        ("/venv/bin/python3.11 -m pytest", True),
        ("FOO=1 py.test -x", True),
        ("python -m unittest", False),
        ("make test", False),
        ("pytest && echo ok", False),
        ("python -m", False),
    ],
)
def test_is_pytest(cmd: str, expected: bool) -> None:
    assert is_pytest(cmd) is expected


def test_pytest_argv_replaces_paths_with_selection() -> None:
    argv = pytest_argv(
        "python -m pytest -q -k 'not slow' tests/test_x.py --tb short",
        report_dir="/ws/.patchsmith",
        select=["tests/test_y.py::test_a"],
        deselect=["tests/test_y.py::test_b"],
        stop_first=True,
    )
    assert argv[:3] == ["python", "-m", "pytest"]
    assert "tests/test_x.py" not in argv
    assert argv[-1] == "tests/test_y.py::test_a"
    assert argv[argv.index("-k") : argv.index("-k") + 2] == ["-k", "not slow"]
    assert argv[argv.index("--tb") : argv.index("--tb") + 2] == ["--tb", "short"]
    assert "--junitxml=/ws/.patchsmith/junit.xml" in argv
    assert "junit_family=xunit1" in argv
    assert "-x" in argv
    assert argv[argv.index("--deselect") + 1] == "tests/test_y.py::test_b"
    assert not any(a.startswith("--cov") for a in argv)


def test_pytest_argv_keeps_paths_without_selection_and_adds_coverage() -> None:
    argv = pytest_argv("pytest tests/unit", report_dir="/r", coverage=True)
    assert argv[0] == "pytest" and argv[-1] == "tests/unit"
    assert {"--cov=.", "--cov-context=test", "--cov-report="} <= set(argv)
    assert command_env("A=1 pytest", report_dir="/r", coverage=True) == {
        "A": "1",
        "COVERAGE_FILE": "/r/coverage.sqlite",
    }
    assert split_command("A=1 B='x y' make test") == ({"A": "1", "B": "x y"}, ["make", "test"])
    with pytest.raises(ValueError, match="not a pytest command"):
        pytest_argv("make test", report_dir="/r")


def test_parse_junit_builds_node_ids() -> None:
    xml = (
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_a.TestC.Inner" name="test_y[a.b-1]" '
        'file="tests/test_a.py" />'
        '<testcase classname="test_a.TestC" name="test_z" file="tests/test_a.py">'
        '<failure message="boom">tb text</failure></testcase>'
        '<testcase classname="tests.test_a" name="test_s" file="tests/test_a.py">'
        '<skipped message="no" /></testcase>'
        '<testcase classname="tests.test_a" name="test_t" file="tests/test_a.py">'
        '<error message="teardown">td</error></testcase>'
        '<testcase classname="" name="tests.test_b" file="tests/test_b.py">'
        '<error message="collection failure">ImportError</error></testcase>'
        "</testsuite></testsuites>"
    )
    assert parse_junit(xml) == {
        "tests/test_a.py::TestC::Inner::test_y[a.b-1]": Outcome.passed,
        "tests/test_a.py::TestC::test_z": Outcome.failed,
        "tests/test_a.py::test_s": Outcome.skipped,
        "tests/test_a.py::test_t": Outcome.error,
        "tests/test_b.py": Outcome.error,
    }
    assert failure_texts(xml)["tests/test_a.py::TestC::test_z"] == "tb text"


@pytest.mark.parametrize("xml", ["", "   ", "<testsuite><testcase", "not xml at all"])
def test_parse_junit_survives_garbage(xml: str) -> None:
    assert parse_junit(xml) == {}


def test_run_tests_per_test_outcomes_and_collection_errors(tmp_path: Path) -> None:
    ws = write(tmp_path, PROJECT)
    report = run_tests(get_sandbox("subprocess"), ws, CMD, CONFIG)
    assert report.outcomes == {
        "tests/test_broken.py": Outcome.error,
        "tests/test_mod.py::TestDouble::test_double[1]": Outcome.passed,
        "tests/test_mod.py::TestDouble::test_double[2.5]": Outcome.passed,
        "tests/test_mod.py::test_half": Outcome.failed,
        "tests/test_mod.py::test_skip": Outcome.skipped,
    }
    assert report.exit_code == 1
    assert report.failing() == ["tests/test_broken.py", "tests/test_mod.py::test_half"]
    assert "ImportError" in report.log_tail
    assert report.duration_s > 0 and not report.timed_out
    assert (ws / ".patchsmith" / "junit.xml").is_file()


def test_run_tests_select_replaces_command_paths(tmp_path: Path) -> None:
    ws = write(tmp_path, PROJECT)
    report = run_tests(
        get_sandbox("subprocess"),
        ws,
        "python -m pytest -q tests/test_broken.py",
        CONFIG,
        select=["tests/test_mod.py::test_half"],
    )
    assert report.outcomes == {"tests/test_mod.py::test_half": Outcome.failed}


def test_run_tests_non_pytest_command(tmp_path: Path) -> None:
    ws = write(tmp_path, {"check.py": "import sys\nsys.exit(int(sys.argv[1]))\n"})
    sandbox = get_sandbox("subprocess")
    ok = run_tests(sandbox, ws, "python check.py 0", CONFIG)
    bad = run_tests(sandbox, ws, "python check.py 3", CONFIG)
    assert ok.outcomes == {"python check.py 0": Outcome.passed}
    assert bad.outcomes == {"python check.py 3": Outcome.failed}
    assert bad.exit_code == 3


def test_run_tests_timeout_is_reported(tmp_path: Path) -> None:
    """A hang outside any test (at collection) can only be cut by the command's limit."""
    ws = write(tmp_path, {"tests/test_slow.py": "import time\n\ntime.sleep(30)\n"})
    report = run_tests(get_sandbox("subprocess"), ws, CMD, SandboxConfig(timeout_s=2))
    assert report.timed_out and report.limit_hit == "timeout"
    assert report.exit_code is None and report.outcomes == {}


def test_run_tests_lets_sandbox_start_errors_propagate(tmp_path: Path) -> None:
    with pytest.raises(SandboxStartError, match="namespace"):
        run_tests(BrokenSandbox(), tmp_path, CMD, CONFIG)


STAGED = {
    "mod.py": "def inc(x):\n    return x + 1\n",
    "tests/test_a.py": "from mod import inc\n\ndef test_target():\n    assert inc(1) == 2\n",
    "tests/test_b.py": (
        "from mod import inc\n\ndef test_other():\n    assert inc(0) == 1\n\n"
        "def test_guard():\n    assert inc(-1) == 0\n"
    ),
}


def test_staged_run_stops_when_a_target_fails(tmp_path: Path) -> None:
    ws = write(tmp_path, {**STAGED, "mod.py": "def inc(x):\n    return x\n"})
    sandbox = RecordingSandbox(get_sandbox("subprocess"))
    report = staged_run(sandbox, ws, CMD, CONFIG, ["tests/test_a.py::test_target"])
    assert report.stopped_early
    assert report.outcomes == {"tests/test_a.py::test_target": Outcome.failed}
    assert len(sandbox.calls) == 1, "the rest must not run after a target failed"


def test_staged_run_merges_both_stages(tmp_path: Path) -> None:
    ws = write(tmp_path, STAGED)
    targets = ["tests/test_a.py::test_target"]
    sandbox = RecordingSandbox(get_sandbox("subprocess"))
    report = staged_run(sandbox, ws, CMD, CONFIG, targets)
    assert not report.stopped_early
    assert report.outcomes == {
        "tests/test_a.py::test_target": Outcome.passed,
        "tests/test_b.py::test_other": Outcome.passed,
        "tests/test_b.py::test_guard": Outcome.passed,
    }
    assert report.exit_code == 0
    # Two sandbox runs: the target alone, then everything but the target; times add up.
    (first, first_result), (rest, rest_result) = sandbox.calls
    assert targets[0] in first and "--deselect" not in first
    assert rest[rest.index("--deselect") + 1] == targets[0]
    assert report.duration_s == pytest.approx(first_result.duration_s + rest_result.duration_s)


def test_staged_run_with_every_test_targeted(tmp_path: Path) -> None:
    ws = write(tmp_path, {k: v for k, v in STAGED.items() if k != "tests/test_b.py"})
    report = staged_run(
        get_sandbox("subprocess"), ws, CMD, CONFIG, ["tests/test_a.py::test_target"]
    )
    assert report.exit_code == 0 and not report.stopped_early
    assert report.passing() == ["tests/test_a.py::test_target"]


def test_staged_run_file_level_target(tmp_path: Path) -> None:
    """A collection error is keyed by its file; once fixed, the file's tests decide."""
    two_tests = (
        "from mod import inc\n\ndef test_t():\n    assert inc(1) == 2\n\n"
        "def test_u():\n    assert inc(2) == 3\n"
    )
    ws = write(tmp_path, {**STAGED, "tests/test_a.py": two_tests})
    report = staged_run(get_sandbox("subprocess"), ws, CMD, CONFIG, ["tests/test_a.py"])
    assert not report.stopped_early
    assert report.outcomes["tests/test_a.py"] == Outcome.passed
    assert report.outcomes["tests/test_a.py::test_u"] == Outcome.passed
    assert len(report.outcomes) == 5

    write(tmp_path, {"mod.py": "def inc(x):\n    return x + (x > 1)\n"})
    broken = staged_run(get_sandbox("subprocess"), ws, CMD, CONFIG, ["tests/test_a.py"])
    assert broken.stopped_early and broken.outcomes["tests/test_a.py"] == Outcome.failed


def test_target_outcome_aggregates_files() -> None:
    outcomes = {"t.py::a": Outcome.passed, "t.py::b": Outcome.skipped, "u.py::c": Outcome.error}
    assert target_outcome(outcomes, "t.py") == Outcome.passed
    assert target_outcome(outcomes, "u.py") == Outcome.error
    assert target_outcome(outcomes, "v.py") is None
    assert target_outcome(outcomes, "t.py::z") is None
