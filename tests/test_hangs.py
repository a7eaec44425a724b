"""Tests that hang: per-test limits, the watchdog, hang search in the baseline, repairs.

Everything runs in the real bubblewrap sandbox. No test asserts a duration: the command
limits are generous, so a run that only stops because of them shows up as an outcome
that is missing or wrong (``timed_out``, no outcomes), not as a slow test.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from helpers import HAVE_BWRAP

from patchsmith.config import load_campaign
from patchsmith.domain import Instance, OutcomeStatus, SandboxConfig
from patchsmith.domain import TestOutcome as Outcome
from patchsmith.infra.sandbox import Sandbox, get_sandbox
from patchsmith.tasks.campaign import open_session, run_instance
from patchsmith.tasks.planning import make_plan
from patchsmith.tasks.repair import DIRECT
from patchsmith.tasks.testing.junit import TIMEOUT_MARKER
from patchsmith.tasks.testing.run import GUARD_DIR, pytest_equivalent, run_tests

NO_AUTOLOAD = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
CMD = "python -m pytest -q"


@pytest.fixture
def bwrap() -> Sandbox:
    if not HAVE_BWRAP:
        pytest.skip("bubblewrap (bwrap) is not installed")
    return get_sandbox("bwrap")


def write(root: Path, files: Mapping[str, str]) -> Path:
    """A project the sandbox uid may write into."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    return root


def config(timeout_s: float = 120, **kw: object) -> SandboxConfig:
    return SandboxConfig.model_validate({"timeout_s": timeout_s, "env": NO_AUTOLOAD, **kw})


LOOPING = {
    "tests/test_h.py": (
        "def test_ok():\n    assert True\n\n\n"
        "def test_loop():\n    x = 0\n    while x >= 0:\n        x += 1\n\n\n"
        "def test_after():\n    assert 2 == 2\n\n\n"
        "def test_fail():\n    assert 1 == 2\n"
    ),
}


def test_plugin_marker_matches_the_parser() -> None:
    spec = importlib.util.spec_from_file_location("guard", Path(GUARD_DIR) / "patchsmith_guard.py")
    assert spec and spec.loader
    guard = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(guard)
    assert guard.MARKER == TIMEOUT_MARKER


def test_looping_test_times_out_alone_and_the_rest_reports(tmp_path: Path, bwrap: Sandbox) -> None:
    """Plugin autoload is off (NO_AUTOLOAD): our plugin still loads, from a read-only path."""
    ws = write(tmp_path, LOOPING)
    report = run_tests(bwrap, ws, CMD, config(test_timeout_s=1))
    assert not report.timed_out
    assert report.outcomes == {
        "tests/test_h.py::test_ok": Outcome.passed,
        "tests/test_h.py::test_loop": Outcome.timeout,
        "tests/test_h.py::test_after": Outcome.passed,
        "tests/test_h.py::test_fail": Outcome.failed,
    }
    assert report.failing() == ["tests/test_h.py::test_fail", "tests/test_h.py::test_loop"]


def test_watchdog_ends_a_test_that_ignores_the_alarm(tmp_path: Path, bwrap: Sandbox) -> None:
    stuck = (
        "import signal\nimport time\n\n\ndef test_ok():\n    pass\n\n\n"
        "def test_stuck():\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "    time.sleep(1000)\n"
    )
    ws = write(tmp_path, {"tests/test_s.py": stuck})
    report = run_tests(bwrap, ws, CMD, config(test_timeout_s=1))
    assert not report.timed_out
    assert report.outcomes == {
        "tests/test_s.py::test_ok": Outcome.passed,
        "tests/test_s.py::test_stuck": Outcome.timeout,
    }
    hung = (ws / ".patchsmith" / "hung").read_text()
    assert TIMEOUT_MARKER in hung and 'test_s.py", line 11, in test_stuck' in hung


# `any` over an endless C iterator holds the GIL and never checks for signals: neither the
# alarm nor the watchdog thread can act; only the command's limit ends it.
GIL_HANG = (
    "import itertools\n\n\ndef test_first():\n    pass\n\n\n"
    "def test_hang():\n    any(itertools.repeat(0))\n\n\n"
    "def test_last():\n    assert 1 == 2\n"
)


def test_killed_run_names_the_test_that_was_running(tmp_path: Path, bwrap: Sandbox) -> None:
    ws = write(tmp_path, {"tests/test_g.py": GIL_HANG})
    report = run_tests(bwrap, ws, CMD, config(timeout_s=4, test_timeout_s=1))
    assert report.timed_out
    assert report.outcomes == {
        "tests/test_g.py::test_first": Outcome.passed,
        "tests/test_g.py::test_hang": Outcome.timeout,
    }


def test_baseline_cut_short_finds_the_hang_and_runs_the_rest(
    tmp_path: Path, bwrap: Sandbox
) -> None:
    ws = write(tmp_path, {"tests/test_g.py": GIL_HANG})
    inst = Instance.model_validate({"id": "gil", "repo": "."})
    plan = make_plan(inst, bwrap, ws, config(timeout_s=4, test_timeout_s=1), "t0")
    assert plan.fail_to_pass == ["tests/test_g.py::test_hang", "tests/test_g.py::test_last"]
    assert plan.pass_to_pass == ["tests/test_g.py::test_first"]
    assert plan.baseline.outcomes["tests/test_g.py::test_hang"] == Outcome.timeout
    assert not plan.baseline.timed_out
    assert any("re-ran 1 time(s) without tests/test_g.py::test_hang" in n for n in plan.notes)


CRASHING = {
    "walk.py": (
        "import os, signal\n\n\ndef walk(n):\n"
        "    if n < 0:  # the bug: should be n <= 0\n"
        "        return 0\n"
        "    if n == 0:\n"
        "        os.kill(os.getpid(), signal.SIGSEGV)  # stands for a C stack overflow\n"
        "    return 1 + walk(n - 1)\n"
    ),
    "tests/test_walk.py": (
        "from walk import walk\n\n\n"
        "def test_first():\n    assert 1 + 1 == 2\n\n\n"
        "def test_walk():\n    assert walk(3) == 3\n\n\n"
        "def test_last():\n    assert 2 + 2 == 4\n"
    ),
    "pyproject.toml": '[tool.pytest.ini_options]\npythonpath = ["."]\n',
}


def test_a_test_that_kills_the_process_is_an_error_target(tmp_path: Path, bwrap: Sandbox) -> None:
    ws = write(tmp_path, CRASHING)
    inst = Instance.model_validate({"id": "crash", "repo": "."})
    plan = make_plan(inst, bwrap, ws, config(test_timeout_s=5), "t0")
    assert plan.fail_to_pass == ["tests/test_walk.py::test_walk"]
    # the rest of the suite still reports: the test before and the one after the crash
    assert plan.pass_to_pass == ["tests/test_walk.py::test_first", "tests/test_walk.py::test_last"]
    assert plan.baseline.outcomes["tests/test_walk.py::test_walk"] == Outcome.error
    assert any("crashed the test process" in n for n in plan.notes), plan.notes
    assert not any("test(s) hang" in n for n in plan.notes)
    assert ("walk.py", 5) in {(s.path, s.line) for s in plan.suspicious}


CHUNKS = (
    "def chunk_count(n, size):\n"
    '    """How many chunks of `size` items hold `n` items."""\n'
    "    count = 0\n"
    "    remaining = n\n"
    "    while remaining > 0:\n"
    "        remaining += size\n"
    "        count += 1\n"
    "    return count\n"
)
CHUNK_TESTS = (
    "from chunks import chunk_count\n\n\n"
    "def test_empty():\n    assert chunk_count(0, 3) == 0\n\n\n"
    "def test_chunks():\n    assert chunk_count(7, 3) == 3\n"
)
PYPROJECT = '[tool.pytest.ini_options]\npythonpath = ["."]\n'


def test_baseline_whose_only_failing_test_hangs(tmp_path: Path, bwrap: Sandbox) -> None:
    files = {"chunks.py": CHUNKS, "tests/test_chunks.py": CHUNK_TESTS, "pyproject.toml": PYPROJECT}
    ws = write(tmp_path, files)
    inst = Instance.model_validate({"id": "chunks", "repo": "."})
    plan = make_plan(inst, bwrap, ws, config(test_timeout_s=1), "t0")
    assert plan.fail_to_pass == ["tests/test_chunks.py::test_chunks"]
    assert plan.pass_to_pass == ["tests/test_chunks.py::test_empty"]
    assert plan.baseline.outcomes["tests/test_chunks.py::test_chunks"] == Outcome.timeout
    assert any("1 test(s) hang" in n for n in plan.notes)
    assert {(s.path, s.line) for s in plan.suspicious[:3]} & {("chunks.py", 5), ("chunks.py", 6)}


def test_repair_of_a_hanging_bug_gets_attempts_and_resolves(
    home: Path, tmp_path: Path, bwrap: Sandbox
) -> None:
    files = {"chunks.py": CHUNKS, "tests/test_chunks.py": CHUNK_TESTS, "pyproject.toml": PYPROJECT}
    write(tmp_path / "chunks", files)
    raw = {
        "name": "hangs",
        "instances": [{"id": "chunks", "repo": "chunks", "test_cmd": "python -m pytest -q tests"}],
        # Without per-test limits the plan alone would cost 2 x 60 s and find no target.
        "sandbox": {"backend": "bwrap", "timeout_s": 60, "env": NO_AUTOLOAD},
        "budget": {"max_attempts": 30, "max_wall_s": 300},
        "tiers": [{"kind": "search", "name": "search", "max_order": 1}],
    }
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(raw))
    campaign = load_campaign(path)
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, campaign.instances[0], DIRECT)
    assert outcome.status == OutcomeStatus.resolved, outcome.reasons
    assert outcome.attempts >= 1
    assert outcome.patch and "+        remaining -= size" in outcome.patch


UNITTESTS = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "tests/__init__.py": "",
    "tests/test_calc.py": (
        "import unittest\n\nfrom calc import add\n\n\n"
        "class TestAdd(unittest.TestCase):\n"
        "    def test_zero(self):\n        self.assertEqual(add(0, 0), 0)\n\n"
        "    def test_two(self):\n        self.assertEqual(add(1, 1), 2)\n\n\n"
        "def test_helper(value):  # unittest ignores plain functions; so must pytest\n"
        "    raise AssertionError\n"
    ),
}


@pytest.mark.parametrize(
    "cmd", ["python -m unittest discover -s tests -v", "python -m unittest tests.test_calc"]
)
def test_unittest_command_gets_per_test_outcomes(tmp_path: Path, bwrap: Sandbox, cmd: str) -> None:
    ws = write(tmp_path, UNITTESTS)
    inst = Instance.model_validate({"id": "ut", "repo": ".", "test_cmd": cmd})
    plan = make_plan(inst, bwrap, ws, config(), "t0")
    assert plan.baseline.outcomes == {
        "tests/test_calc.py::TestAdd::test_zero": Outcome.passed,
        "tests/test_calc.py::TestAdd::test_two": Outcome.failed,
    }
    assert plan.fail_to_pass == ["tests/test_calc.py::TestAdd::test_two"]
    assert any("unittest command run by unittest's own runner" in n for n in plan.notes)
    assert plan.suspicious and plan.suspicious[0].path == "calc.py"
    # Per-test coverage, as pytest-cov names its contexts: the spectra apply.
    assert plan.localization.startswith("per-test spectra (Ochiai)"), plan.localization


def test_cases_only_unittest_collects_get_per_test_outcomes(tmp_path: Path, bwrap: Sandbox) -> None:
    # pytest finds no TestCase in a module whose cases load_tests builds at run time;
    # unittest's own runner runs them, under the node id of a class in that module.
    files = {
        "check_all.py": (
            "import unittest\n\n\ndef load_tests(loader, tests, pattern):\n"
            "    case = type('Case', (unittest.TestCase,), {'test_x': lambda self: None})\n"
            "    return loader.loadTestsFromTestCase(case)\n"
        )
    }
    ws = write(tmp_path, files)
    inst = Instance.model_validate(
        {"id": "ut", "repo": ".", "test_cmd": "python -m unittest discover -p 'check*.py'"}
    )
    plan = make_plan(inst, bwrap, ws, config(), "t0")
    assert plan.baseline.outcomes == {"check_all.py::Case::test_x": Outcome.passed}


def test_unittest_that_pytest_cannot_collect_falls_back_to_exit_code(
    tmp_path: Path, bwrap: Sandbox
) -> None:
    # unittest's -p pattern matches check*.py; pytest finds no TestCase in the module it
    # collects (the case is built at run time), and a class local to load_tests has no
    # node id either way, so the original command decides.
    files = {
        "check_all.py": (
            "import unittest\n\n\ndef load_tests(loader, tests, pattern):\n"
            "    class Case(unittest.TestCase):\n"
            "        def test_x(self):\n            pass\n\n"
            "    return loader.loadTestsFromTestCase(Case)\n"
        )
    }
    ws = write(tmp_path, files)
    cmd = "python -m unittest discover -p 'check*.py'"
    assert pytest_equivalent(cmd, ws) is not None
    inst = Instance.model_validate({"id": "ut", "repo": ".", "test_cmd": cmd})
    plan = make_plan(inst, bwrap, ws, config(), "t0")
    assert plan.baseline.outcomes == {cmd: Outcome.passed}
    assert any("using it by exit code" in n for n in plan.notes)
