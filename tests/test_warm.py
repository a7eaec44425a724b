"""Warm screening: a forked child of one sandboxed pytest session per candidate.

The warm path must give the cold path's verdicts (same outcomes on the same candidates),
survive whatever a candidate does to its child, fall back to cold where it cannot judge,
and never make "resolved" mean less: verify-only still runs cold on a fresh workspace.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import (
    HOSTILE_CANDIDATES,
    STATS,
    RecordingSandbox,
    check_survives_hostile,
    escape_attempt,
    make_stats_project,
    needs_bwrap,
    write_campaign,
)

from patchsmith.config import load_campaign
from patchsmith.domain import AttemptStatus, OutcomeStatus, SandboxConfig, TestOutcome
from patchsmith.infra.sandbox import get_sandbox
from patchsmith.infra.workspace import WorkspaceManager
from patchsmith.tasks.campaign import close_session, open_session, run_instance, work_key
from patchsmith.tasks.edits.diff import make_diff
from patchsmith.tasks.repair import DIRECT, pristine_tree
from patchsmith.tasks.testing.run import staged_run
from patchsmith.tasks.testing.warm import WarmRunner

pytestmark = pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning")

CMD = "python -m pytest -q tests/test_windows.py"
TARGET = "tests/test_windows.py::test_window_sums_cover_the_last_window"
FIXED = STATS.replace("range(len(values) - size)", "range(len(values) - size + 1)")
CONFIG = SandboxConfig(timeout_s=30, test_timeout_s=2, env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})


def _body(code: str) -> str:
    """stats.py with ``code`` run first thing in window_sums (the target's function)."""
    marker = '    """Sums of every run of `size` consecutive values."""\n'
    return FIXED.replace(marker, marker + "".join(f"    {line}\n" for line in code.splitlines()))


@pytest.fixture
def runner(tmp_path: Path, home: Path):  # type: ignore[no-untyped-def]
    make_stats_project(tmp_path)
    workspaces = WorkspaceManager(home / "workspaces")
    instance = load_campaign(write_campaign(tmp_path)).instances[0]
    pristine = pristine_tree(workspaces, instance)  # as a campaign makes it (owner, modes)
    warm = WarmRunner(get_sandbox("auto"), workspaces, pristine, CMD, CONFIG, lifetime_s=300)
    yield warm
    warm.close()


def test_warm_gives_the_cold_verdicts_in_one_session(runner: WarmRunner, home: Path) -> None:
    cold_sandbox = get_sandbox("auto")
    workspaces = WorkspaceManager(home / "cold")
    for text in (STATS, FIXED, STATS.replace("size)]", "size - 1)]"), FIXED):
        warm = runner.run({"stats.py": text}, [TARGET], CONFIG)
        assert warm is not None and warm.runner == "warm", runner.broken
        with workspaces.attempt(runner.pristine) as ws:
            (ws / "stats.py").write_text(text)
            cold = staged_run(cold_sandbox, ws, CMD, CONFIG, [TARGET])
        assert warm.outcomes == cold.outcomes
        assert warm.stopped_early == cold.stopped_early
    assert runner.starts == 1  # one session served all four
    assert warm.outcomes == dict.fromkeys(runner.items, TestOutcome.passed)


def test_the_original_source_is_what_an_unchanged_module_runs(runner: WarmRunner) -> None:
    # A candidate touches one module; the next one, without it, sees the pristine file.
    assert runner.run({"stats.py": FIXED}, [TARGET], CONFIG).outcomes[TARGET] == "passed"
    assert runner.run({}, [TARGET], CONFIG).outcomes == {TARGET: TestOutcome.failed}


@needs_bwrap
@pytest.mark.parametrize("name", sorted(HOSTILE_CANDIDATES))
def test_the_session_survives_a_hostile_candidate(runner: WarmRunner, name: str) -> None:
    code, expected = HOSTILE_CANDIDATES[name]
    check_survives_hostile(
        runner, {"stats.py": _body(code)}, {"stats.py": FIXED}, TARGET, CONFIG, expected
    )


@needs_bwrap
def test_a_candidate_that_kills_the_session_gets_a_new_one(runner: WarmRunner) -> None:
    killer = _body("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos._exit(1)")
    assert runner.run({"stats.py": killer}, [TARGET], CONFIG) is None  # caller runs it cold
    again = runner.run({"stats.py": FIXED}, [TARGET], CONFIG)
    assert again is not None and again.outcomes[TARGET] == TestOutcome.passed
    assert runner.starts == 2


@needs_bwrap
def test_a_warm_child_writes_nothing_outside_its_workspace(runner: WarmRunner) -> None:
    paths, code = escape_attempt(runner.pristine)
    report = runner.run({"stats.py": _body(code)}, [TARGET], CONFIG)
    assert report is not None and report.outcomes[TARGET] == TestOutcome.passed, report.log_tail
    assert [p for p in paths if p.exists()] == []


@needs_bwrap
def test_a_child_that_kills_every_process_it_can_costs_one_session(runner: WarmRunner) -> None:
    killer = _body("import os, signal\nos.kill(-1, signal.SIGKILL)")
    assert runner.run({"stats.py": killer}, [TARGET], CONFIG) is None
    again = runner.run({"stats.py": FIXED}, [TARGET], CONFIG)
    assert again is not None and again.outcomes[TARGET] == TestOutcome.passed
    assert runner.starts == 2


def test_a_test_that_writes_into_the_workspace_gets_the_next_candidate_a_clean_one(
    runner: WarmRunner,
) -> None:
    writer = _body("open('leftover.txt', 'w').write('x')")
    assert runner.run({"stats.py": writer}, [TARGET], CONFIG).outcomes[TARGET] == "passed"
    reader = _body("import os\nassert not os.path.exists('leftover.txt'), 'state leaked'")
    report = runner.run({"stats.py": reader}, [TARGET], CONFIG)
    assert report is not None and report.outcomes[TARGET] == TestOutcome.passed, report.log_tail
    assert runner.starts == 2


def test_a_module_imported_under_another_name_is_rebound(runner: WarmRunner) -> None:
    # tests/test_windows.py did `from stats import window_sums`: that binding follows the
    # re-executed module; a candidate that breaks the module at import time is its error.
    assert runner.run({"stats.py": FIXED}, [TARGET], CONFIG).outcomes[TARGET] == "passed"
    broken = runner.run({"stats.py": FIXED + "\nraise RuntimeError('at import')\n"}, [TARGET],
                        CONFIG)  # fmt: skip
    assert broken is not None and broken.outcomes.get(TARGET) != TestOutcome.passed
    assert "at import" in broken.log_tail


def test_what_the_warm_path_cannot_judge_it_names(runner: WarmRunner, tmp_path: Path) -> None:
    pristine = runner.pristine

    def diff(path: str, new: str) -> str:
        old = (pristine / path).read_text() if (pristine / path).exists() else None
        return make_diff({path: (old, new)})

    assert runner.why_cold(diff("stats.py", FIXED), [TARGET]) is None
    tests = (pristine / "tests/test_windows.py").read_text()
    assert "test file" in (runner.why_cold(diff("tests/test_windows.py", tests + "\n"), [TARGET])
                           or "")  # fmt: skip
    assert "adds or deletes" in (runner.why_cold(diff("new.py", "x = 1\n"), [TARGET]) or "")
    (pristine / "conftest.py").write_text("")
    assert "conftest" in (runner.why_cold(diff("conftest.py", "x = 1\n"), [TARGET]) or "")
    assert "not a Python module" in (runner.why_cold(diff("pyproject.toml", "x\n"), [TARGET]) or "")
    assert "not a test the warm session collected" in (
        runner.why_cold(diff("stats.py", FIXED), ["tests/test_windows.py::nope"]) or ""
    )
    cold_cmd = WarmRunner(runner.sandbox, runner.workspaces, pristine, "sh -c 'pytest'", CONFIG,
                          lifetime_s=10)  # fmt: skip
    assert "neither pytest nor" in (cold_cmd.why_cold(diff("stats.py", FIXED), [TARGET]) or "")
    xdist = WarmRunner(runner.sandbox, runner.workspaces, pristine, CMD + " -n 2", CONFIG,
                       lifetime_s=10)  # fmt: skip
    assert "'-n'" in (xdist.why_cold(diff("stats.py", FIXED), [TARGET]) or "")


def _run_campaign(  # type: ignore[no-untyped-def]
    tmp_path: Path, home: Path, path: Path | None = None, **overrides: object
):
    """Repair the campaign's first instance directly: (outcome, its attempts in the store)."""
    campaign = load_campaign(path or write_campaign(tmp_path, **overrides))
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=False)
    try:
        outcome = run_instance(session, campaign.instances[0], DIRECT)
        attempts = session.store.attempts_for_key(work_key(session, campaign.instances[0]))
    finally:
        close_session(session, "")
    return outcome, attempts


def test_campaign_attempts_record_the_path_that_screened_them(tmp_path: Path, home: Path) -> None:
    for screening in ("warm", "cold"):
        root = tmp_path / screening
        root.mkdir()
        make_stats_project(root)
        outcome, attempts = _run_campaign(root, home / screening, screening=screening)
        assert outcome.status == OutcomeStatus.resolved, outcome.reasons
        assert {a.report.runner for a in attempts if a.report} == {screening}


ORDER_LIB = """CACHE = {}


def scale(x):
    return CACHE.get("factor", 2) - x
"""
ORDER_POLLUTER = """import lib


def test_a_factor_can_be_set():
    lib.CACHE["factor"] = 5
    assert lib.CACHE["factor"] == 5
"""
ORDER_TARGET = """from lib import scale


def test_scale_doubles():
    assert scale(3) == 6
"""


def test_a_candidate_that_fails_on_a_fresh_full_run_is_not_resolved(
    tmp_path: Path, home: Path
) -> None:
    # Screening runs the target first, then the guards: a fix (`-` → `*`, say) passes. The
    # full command on a fresh workspace runs test_a first, which changes the factor, and
    # the target fails: verify-only must refute every such candidate.
    project = tmp_path / "order"
    (project / "tests").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["."]\n')
    (project / "lib.py").write_text(ORDER_LIB)
    (project / "tests" / "test_a_polluter.py").write_text(ORDER_POLLUTER)
    (project / "tests" / "test_b_target.py").write_text(ORDER_TARGET)
    path = write_campaign(tmp_path, name="order")
    data = yaml.safe_load(path.read_text())
    data["instances"] = [
        {"id": "order-scale", "repo": "order", "test_cmd": "python -m pytest -q",
         "fail_to_pass": ["tests/test_b_target.py::test_scale_doubles"]},
    ]  # fmt: skip
    data["budget"]["max_attempts"] = 30
    path.write_text(yaml.safe_dump(data))
    outcome, attempts = _run_campaign(tmp_path, home, path)
    accepted = [a for a in attempts if a.status == AttemptStatus.accepted]
    assert accepted, "screening should accept the `*` fix"
    refuted = [a for a in attempts if a.error and a.error.startswith("verify-only run failed")]
    assert len(refuted) == len(accepted), [a.status for a in attempts]  # every one of them
    assert outcome.status != OutcomeStatus.resolved, outcome.reasons


def test_candidates_that_do_not_compile_or_repeat_code_never_reach_a_sandbox(
    tmp_path: Path, home: Path
) -> None:
    from patchsmith.domain import Candidate, Plan, TestReport
    from patchsmith.tasks.repair import RepairContext, prepare_pristine, test_step

    make_stats_project(tmp_path)
    campaign = load_campaign(write_campaign(tmp_path))
    sandbox = RecordingSandbox(get_sandbox("auto"))
    ctx = RepairContext(campaign=campaign, sandbox=sandbox,
                        workspaces=WorkspaceManager(home / "workspaces"))  # fmt: skip
    instance = campaign.instances[0]
    pristine = prepare_pristine(ctx, instance)
    plan = Plan(instance_id=instance.instance_id, intent=instance.intent, fail_to_pass=[TARGET],
                pass_to_pass=[], baseline=TestReport(duration_s=0.5), tier="search")  # fmt: skip

    def candidate(text: str, cid: str) -> Candidate:
        diff = make_diff({"stats.py": (STATS, text)})
        return Candidate(candidate_id=cid, diff=diff, generator="test", tier="search")

    try:
        first = test_step(ctx, instance, plan, pristine, candidate(FIXED, "c1"))
        runs = len(sandbox.calls)
        assert first.runner == "warm"
        assert first.outcomes[TARGET] == TestOutcome.passed
        bad = test_step(ctx, instance, plan, pristine, candidate(FIXED + "\ndef (:\n", "c2"))
        assert bad.runner == "precheck" and "does not compile" in bad.log_tail
        same = FIXED.replace("def window_sums", "# a comment\n\n\ndef window_sums")
        dup = test_step(ctx, instance, plan, pristine, candidate(same, "c3"))
        assert dup.runner == "precheck" and "same code as candidate c1" in dup.log_tail
        assert len(sandbox.calls) == runs  # neither started anything
    finally:
        ctx.end_screen(instance)


SVC = """import threading
import time

_worker = threading.Thread(target=lambda: time.sleep(3600), daemon=True)
_worker.start()  # at import: a forked child has no such thread


def worker_alive():
    return _worker.is_alive()


def double(x):
    return x + 2
"""
TEST_SVC = """from svc import double, worker_alive


def test_worker_alive():
    assert worker_alive()


def test_double():
    assert double(3) == 6
"""


def _svc_runner(tmp_path: Path, home: Path) -> WarmRunner:
    project = tmp_path / "svc"
    (project / "tests").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["."]\n')
    (project / "svc.py").write_text(SVC)
    (project / "tests" / "test_svc.py").write_text(TEST_SVC)
    return WarmRunner(get_sandbox("auto"), WorkspaceManager(home / "ws"), project,
                      "python -m pytest -q tests/test_svc.py", CONFIG, lifetime_s=60,
                      targets=["tests/test_svc.py::test_double"],
                      guards=["tests/test_svc.py::test_worker_alive"])  # fmt: skip


def test_a_session_that_disagrees_with_the_baseline_sends_every_candidate_cold(
    tmp_path: Path, home: Path
) -> None:
    runner = _svc_runner(tmp_path, home)
    try:
        diff = make_diff({"svc.py": (SVC, SVC.replace("x + 2", "x * 2"))})
        why = runner.why_cold(diff, ["tests/test_svc.py::test_double"])
        assert why is not None and "test_worker_alive is failed in the warm session" in why
        assert runner.run({}, ["tests/test_svc.py::test_double"], CONFIG) is None
    finally:
        runner.close()


def test_the_unchanged_run_sets_a_short_per_test_limit(runner: WarmRunner, home: Path) -> None:
    calibrated = WarmRunner(runner.sandbox, runner.workspaces, runner.pristine, CMD, CONFIG,
                            lifetime_s=60, targets=[TARGET],
                            guards=["tests/test_windows.py::test_mean_is_unaffected"])  # fmt: skip
    try:
        assert calibrated.ensure_started(), calibrated.broken
        limit = calibrated.test_limit
        assert limit is not None and 0.25 <= limit < CONFIG.test_timeout_s
        looping = calibrated.run({"stats.py": _body("while True:\n    pass")}, [TARGET], CONFIG)
        assert looping is not None and looping.outcomes[TARGET] == TestOutcome.timeout
        assert f"after {limit:g}s (per-test limit)" in looping.log_tail
    finally:
        calibrated.close()


def test_a_hanging_target_does_not_set_the_warm_per_test_limit(tmp_path: Path, home: Path) -> None:
    project = tmp_path / "hang"
    (project / "tests").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["."]\n')
    (project / "spin.py").write_text("def spin():\n    while True:\n        pass\n\n\ndef one():\n"
                                     "    return 1\n")  # fmt: skip
    (project / "tests" / "test_spin.py").write_text(
        "from spin import one, spin\n\n\ndef test_spin():\n    spin()\n\n\n"
        "def test_one():\n    assert one() == 1\n"
    )
    runner = WarmRunner(get_sandbox("auto"), WorkspaceManager(home / "ws"), project,
                        "python -m pytest -q tests/test_spin.py", CONFIG, lifetime_s=60,
                        targets=["tests/test_spin.py::test_spin"],
                        guards=["tests/test_spin.py::test_one"])  # fmt: skip
    try:
        assert runner.ensure_started(), runner.broken
        # The target ran into the 2 s limit; the limit comes from test_one's time.
        assert runner.test_limit is not None and runner.test_limit < CONFIG.test_timeout_s
    finally:
        runner.close()
