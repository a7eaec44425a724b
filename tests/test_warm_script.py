"""Warm screening of ``python FILE`` test commands: a fork of one sandboxed Python per candidate.

The script server must give the cold path's verdict for the same candidate (the script's
exit code, one outcome keyed by the command), stop a looping candidate at the per-test
limit, survive what a candidate does to its child, and send to the cold path what it
cannot judge (the script itself changed).
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
from patchsmith.tasks.testing.run import script_argv, staged_run
from patchsmith.tasks.testing.warm import WarmRunner

pytestmark = pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning")

CMD = "python check.py --strict"
CALC = "def clamp(x, lo, hi):\n    return max(lo, min(x, hi - 1))\n"
FIXED = CALC.replace("hi - 1", "hi")
CHECK = """import sys
from calc import clamp

assert sys.argv[1:] == ["--strict"], sys.argv
assert __name__ == "__main__"
for x, want in ((5, 5), (-3, 0), (99, 10), (10, 10)):
    got = clamp(x, 0, 10)
    if got != want:
        print(f"clamp({x}, 0, 10) = {got}, want {want}")
        sys.exit(1)
print("ok")
"""
CONFIG = SandboxConfig(timeout_s=30, test_timeout_s=2)


def _calc(code: str) -> str:
    """The fixed calc.py with ``code`` run first thing in clamp."""
    return FIXED.replace("):\n", "):\n" + "".join(f"    {ln}\n" for ln in code.splitlines()), 1)


@pytest.fixture
def runner(tmp_path: Path, home: Path):  # type: ignore[no-untyped-def]
    project = tmp_path / "calc"
    project.mkdir()
    (project / "calc.py").write_text(CALC)
    (project / "check.py").write_text(CHECK)
    campaign = tmp_path / "campaign.yaml"
    instance = {"id": "calc-clamp", "repo": "calc", "test_cmd": CMD}
    campaign.write_text(yaml.safe_dump({"name": "scripts", "instances": [instance]}))
    workspaces = WorkspaceManager(home / "workspaces")
    pristine = pristine_tree(workspaces, load_campaign(campaign).instances[0])
    warm = WarmRunner(get_sandbox("auto"), workspaces, pristine, CMD, CONFIG, lifetime_s=300,
                      targets=[CMD])  # fmt: skip
    yield warm
    warm.close()


def test_a_script_command_is_recognised_only_in_its_plain_form() -> None:
    assert script_argv("python check.py -v") == ["python", "check.py", "-v"]
    assert script_argv("FOO=1 python3.11 tests/run.py") == ["python3.11", "tests/run.py"]
    for other in ("python -m pytest", "python -X dev check.py", "python check.py && rm x",
                  "sh check.py", "python data.txt", "python"):  # fmt: skip
        assert script_argv(other) is None, other


def test_warm_gives_the_cold_verdicts_in_one_session(runner: WarmRunner, home: Path) -> None:
    cold_sandbox = get_sandbox("auto")
    workspaces = WorkspaceManager(home / "cold")
    for text in (CALC, FIXED, CALC.replace("max(lo", "min(lo"), FIXED):
        warm = runner.run({"calc.py": text}, [CMD], CONFIG)
        assert warm is not None and warm.runner == "warm", runner.broken
        with workspaces.attempt(runner.pristine) as ws:
            (ws / "calc.py").write_text(text)
            cold = staged_run(cold_sandbox, ws, CMD, CONFIG, [CMD])
        assert warm.outcomes == cold.outcomes, (warm.log_tail, cold.log_tail)
    assert runner.starts == 1
    assert warm.outcomes == {CMD: TestOutcome.passed}
    failed = runner.run({"calc.py": CALC}, [CMD], CONFIG)
    assert failed is not None and failed.outcomes == {CMD: TestOutcome.failed}
    assert "clamp(99, 0, 10) = 9, want 10" in failed.log_tail  # the script's own output


def test_an_uncaught_exception_fails_with_the_scripts_traceback(runner: WarmRunner) -> None:
    report = runner.run({"calc.py": _calc("raise KeyError('from clamp')")}, [CMD], CONFIG)
    assert report is not None and report.outcomes == {CMD: TestOutcome.failed}
    assert "KeyError: 'from clamp'" in report.log_tail
    assert "check.py" in report.log_tail and "runpy" not in report.log_tail


def test_a_looping_candidate_is_stopped_at_the_per_test_limit(runner: WarmRunner) -> None:
    limits = CONFIG.model_copy(update={"test_timeout_s": 1})
    report = runner.run({"calc.py": _calc("while True:\n    pass")}, [CMD], limits)
    assert report is not None and report.outcomes == {CMD: TestOutcome.timeout}
    again = runner.run({"calc.py": FIXED}, [CMD], CONFIG)
    assert again is not None and again.outcomes == {CMD: TestOutcome.passed}
    assert runner.starts == 1


# A script that exits 3 fails, as it does cold; under pytest the same body is an error.
SCRIPT_HOSTILE = {
    **HOSTILE_CANDIDATES,
    "modules": (HOSTILE_CANDIDATES["modules"][0], TestOutcome.failed),
}


@needs_bwrap
@pytest.mark.parametrize("name", sorted(SCRIPT_HOSTILE))
def test_the_session_survives_a_hostile_candidate(runner: WarmRunner, name: str) -> None:
    code, expected = SCRIPT_HOSTILE[name]
    check_survives_hostile(
        runner, {"calc.py": _calc(code)}, {"calc.py": FIXED}, CMD, CONFIG, expected
    )


@needs_bwrap
def test_a_warm_child_writes_nothing_outside_its_workspace(runner: WarmRunner) -> None:
    paths, code = escape_attempt(runner.pristine)
    report = runner.run({"calc.py": _calc(code)}, [CMD], CONFIG)
    assert report is not None and report.outcomes == {CMD: TestOutcome.passed}, report.log_tail
    assert [p for p in paths if p.exists()] == []


def test_a_changed_script_or_a_new_file_goes_cold(runner: WarmRunner) -> None:
    pristine = runner.pristine

    def diff(path: str, new: str) -> str:
        old = (pristine / path).read_text() if (pristine / path).exists() else None
        return make_diff({path: (old, new)})

    assert runner.why_cold(diff("calc.py", FIXED), [CMD]) is None
    assert "test file" in (runner.why_cold(diff("check.py", CHECK + "\n"), [CMD]) or "")
    assert "adds or deletes" in (runner.why_cold(diff("new.py", "x = 1\n"), [CMD]) or "")
