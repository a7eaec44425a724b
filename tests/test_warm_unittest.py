"""Warm screening of ``python -m unittest`` commands: unittest's own loop in a fork per candidate.

The unittest server must report each test under the pytest node id the cold path (the
command run under pytest) gives it, with the same outcomes, stop at the first target that
does not pass, stop a looping test at the per-test limit, survive what a candidate does to
its child, and send to the cold path what it cannot judge (a changed test module).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import HOSTILE_CANDIDATES, check_survives_hostile, escape_attempt, needs_bwrap

from patchsmith.config import load_campaign
from patchsmith.domain import SandboxConfig, TestOutcome
from patchsmith.infra.sandbox import get_sandbox
from patchsmith.infra.workspace import WorkspaceManager
from patchsmith.tasks.edits.diff import make_diff
from patchsmith.tasks.repair import pristine_tree
from patchsmith.tasks.testing.run import (
    pytest_equivalent,
    run_tests,
    staged_run,
    unittest_argv,
)
from patchsmith.tasks.testing.warm import WarmRunner

pytestmark = pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning")

CMD = "python -m unittest discover -s tests"
CALC = "def clamp(x, lo, hi):\n    return max(lo, min(x, hi - 1))\n"
FIXED = CALC.replace("hi - 1", "hi")
TESTS = """import unittest

from calc import clamp


class Clamp(unittest.TestCase):
    def test_inside(self):
        self.assertEqual(clamp(5, 0, 10), 5)

    def test_below(self):
        self.assertEqual(clamp(-3, 0, 10), 0)

    def test_above(self):
        self.assertEqual(clamp(99, 0, 10), 10)

    def test_edge(self):
        for x in (10, 0):
            with self.subTest(x=x):
                self.assertEqual(clamp(x, 0, 10), x)

    @unittest.skip("not yet")
    def test_skipped(self):
        self.fail()

    @unittest.expectedFailure
    def test_expected(self):
        self.assertEqual(clamp(1, 2, 3), 1)


class Broken(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if clamp(11, 0, 10) == 7:
            raise RuntimeError("fixture")

    def test_fixture(self):
        pass


class Setup(unittest.TestCase):
    def setUp(self):
        if clamp(12, 0, 10) == 8:
            raise ValueError("in setUp")

    def test_setup(self):
        pass
"""
ABOVE, EDGE = "tests/test_calc.py::Clamp::test_above", "tests/test_calc.py::Clamp::test_edge"
GUARD = "tests/test_calc.py::Clamp::test_inside"
CONFIG = SandboxConfig(timeout_s=30, test_timeout_s=2)


def _calc(code: str) -> str:
    """The fixed calc.py with ``code`` run first thing in clamp."""
    return FIXED.replace("):\n", "):\n" + "".join(f"    {ln}\n" for ln in code.splitlines()), 1)


@pytest.fixture
def runner(tmp_path: Path, home: Path):  # type: ignore[no-untyped-def]
    project = tmp_path / "calc"
    (project / "tests").mkdir(parents=True)
    (project / "calc.py").write_text(CALC)
    (project / "tests" / "test_calc.py").write_text(TESTS)
    campaign = tmp_path / "campaign.yaml"
    instance = {"id": "calc-clamp", "repo": "calc", "test_cmd": CMD}
    campaign.write_text(yaml.safe_dump({"name": "unittests", "instances": [instance]}))
    workspaces = WorkspaceManager(home / "workspaces")
    pristine = pristine_tree(workspaces, load_campaign(campaign).instances[0])
    warm = WarmRunner(get_sandbox("auto"), workspaces, pristine, CMD, CONFIG, lifetime_s=300,
                      targets=[ABOVE, EDGE], guards=[GUARD])  # fmt: skip
    yield warm
    warm.close()


def test_a_unittest_command_is_recognised_only_in_its_plain_form() -> None:
    assert unittest_argv("python -m unittest discover -s t") == ["python", "discover", "-s", "t"]
    assert unittest_argv("A=1 python3.11 -m unittest") == ["python3.11"]
    for other in ("python -m pytest", "python -m unittest x && rm y", "sh -m unittest",
                  "python test.py"):  # fmt: skip
        assert unittest_argv(other) is None, other


def test_warm_and_once_give_pytests_outcomes_under_its_node_ids(
    runner: WarmRunner, home: Path
) -> None:
    """The warm server, its once mode (the cold path of such a command) and pytest (the
    baseline's runner) agree on every test, fixtures and subtests included."""
    cold_sandbox = get_sandbox("auto")
    workspaces = WorkspaceManager(home / "cold")
    variants = (
        FIXED,
        CALC,  # both targets fail
        FIXED.replace("return", "if x == 11:\n        return 7\n    return"),  # setUpClass
        FIXED.replace("return", "if x == 12:\n        return 8\n    return"),  # setUp
        FIXED.replace("return", "if x == 1:\n        return 1\n    return"),  # xfail passes
    )
    for text in variants:
        warm = runner.run({"calc.py": text}, [], CONFIG)  # no targets: every test runs
        assert warm is not None and warm.runner == "warm", runner.broken
        with workspaces.attempt(runner.pristine) as ws:
            (ws / "calc.py").write_text(text)
            once = run_tests(cold_sandbox, ws, CMD, CONFIG)
            under_pytest = pytest_equivalent(CMD, ws)
            assert under_pytest is not None
            cold = run_tests(cold_sandbox, ws, under_pytest, CONFIG)
        assert cold.outcomes and warm.outcomes == cold.outcomes, (text, warm.log_tail)
        assert once.outcomes == cold.outcomes, (text, once.log_tail)
        assert "patchsmith unittest runner" in once.log_tail  # not pytest's
    assert runner.starts == 1
    assert warm.outcomes[ABOVE] == TestOutcome.passed
    assert warm.outcomes["tests/test_calc.py::Clamp::test_expected"] == TestOutcome.failed


def test_targets_run_first_and_the_first_failing_one_stops_the_run(runner: WarmRunner) -> None:
    report = runner.run({"calc.py": CALC}, [ABOVE, EDGE], CONFIG)
    assert report is not None and report.stopped_early
    assert report.outcomes == {ABOVE: TestOutcome.failed}
    assert "AssertionError: 9 != 10" in report.log_tail
    fixed = runner.run({"calc.py": FIXED}, [ABOVE, EDGE], CONFIG)
    assert fixed is not None and not fixed.stopped_early
    assert fixed.outcomes[EDGE] == TestOutcome.passed and fixed.outcomes[GUARD] == "passed"
    assert len(fixed.outcomes) == 8


def test_a_failed_subtest_fails_its_test(runner: WarmRunner) -> None:
    text = FIXED.replace("return", "if x == 0 and hi == 10:\n        return 1\n    return")
    report = runner.run({"calc.py": text}, [EDGE], CONFIG)
    assert report is not None and report.outcomes == {EDGE: TestOutcome.failed}


def test_a_looping_test_is_stopped_at_the_per_test_limit(runner: WarmRunner) -> None:
    limits = CONFIG.model_copy(update={"test_timeout_s": 1})
    report = runner.run({"calc.py": _calc("while True:\n    pass")}, [ABOVE], limits)
    assert report is not None and report.outcomes == {ABOVE: TestOutcome.timeout}
    again = runner.run({"calc.py": FIXED}, [ABOVE], CONFIG)
    assert again is not None and again.outcomes[ABOVE] == TestOutcome.passed
    assert runner.starts == 1


# In a unittest case, an exception the candidate raises (SystemExit 3 included) is a
# failure, as pytest reports a unittest case's error in its call phase.
UNITTEST_HOSTILE = {
    **HOSTILE_CANDIDATES,
    "modules": (HOSTILE_CANDIDATES["modules"][0], TestOutcome.failed),
}


@needs_bwrap
@pytest.mark.parametrize("name", sorted(UNITTEST_HOSTILE))
def test_the_session_survives_a_hostile_candidate(runner: WarmRunner, name: str) -> None:
    code, expected = UNITTEST_HOSTILE[name]
    check_survives_hostile(
        runner, {"calc.py": _calc(code)}, {"calc.py": FIXED}, ABOVE, CONFIG, expected
    )


@needs_bwrap
def test_a_warm_child_writes_nothing_outside_its_workspace(runner: WarmRunner) -> None:
    paths, code = escape_attempt(runner.pristine)
    report = runner.run({"calc.py": _calc(code)}, [ABOVE], CONFIG)
    assert report is not None and report.outcomes[ABOVE] == TestOutcome.passed, report.log_tail
    assert [p for p in paths if p.exists()] == []


def test_a_changed_test_module_or_a_new_file_goes_cold(runner: WarmRunner) -> None:
    pristine = runner.pristine

    def diff(path: str, new: str) -> str:
        old = (pristine / path).read_text() if (pristine / path).exists() else None
        return make_diff({path: (old, new)})

    assert runner.why_cold(diff("calc.py", FIXED), [ABOVE]) is None
    test_file = "tests/test_calc.py"
    assert "test file" in (runner.why_cold(diff(test_file, TESTS + "\n"), [ABOVE]) or "")
    assert "adds or deletes" in (runner.why_cold(diff("new.py", "x = 1\n"), [ABOVE]) or "")


def test_the_cold_path_runs_targets_first_and_stops_a_looping_test(
    runner: WarmRunner, home: Path
) -> None:
    """Once mode: a staged run (targets first, stop at the first that fails, then the rest)
    and the per-test limit, as the guard plugin gives pytest runs."""
    sandbox = get_sandbox("auto")
    workspaces = WorkspaceManager(home / "cold")
    with workspaces.attempt(runner.pristine) as ws:
        stopped = staged_run(sandbox, ws, CMD, CONFIG, [ABOVE, EDGE])
        (ws / "calc.py").write_text(FIXED)
        fixed = staged_run(sandbox, ws, CMD, CONFIG, [ABOVE, EDGE])
        (ws / "calc.py").write_text(
            FIXED.replace("return", "while x == 99:\n        pass\n    return")
        )
        looping = run_tests(sandbox, ws, CMD, CONFIG.model_copy(update={"test_timeout_s": 1}))
    assert stopped.outcomes == {ABOVE: TestOutcome.failed} and stopped.stopped_early
    assert "AssertionError: 9 != 10" in stopped.log_tail
    assert fixed.outcomes[ABOVE] == fixed.outcomes[EDGE] == fixed.outcomes[GUARD] == "passed"
    assert len(fixed.outcomes) == 8 and not fixed.stopped_early
    assert looping.outcomes[ABOVE] == TestOutcome.timeout, looping.log_tail
    assert looping.outcomes[GUARD] == TestOutcome.passed  # the run went on after it
    assert not looping.timed_out
