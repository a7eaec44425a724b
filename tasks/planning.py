"""Planning: a baseline test run, hang search, flaky-test detection and fault localization.

The baseline runs the full test command with per-test coverage and a per-test limit (our
pytest plugin). A test past that limit fails with outcome ``timeout``. When the whole
command is killed, or the plugin's watchdog had to end it, the test that hung is known from
the plugin's files and the baseline runs again without it (a few rounds at most), so that
the rest of the suite still reports; hanging tests are failing targets. A second run
without coverage finds flaky tests (an outcome that differs between the two runs); flaky
tests are never targets nor regression guards. Localization ranks lines by Ochiai over the
coverage of failing vs. passing tests, boosted by the frames of the failing tests'
tracebacks (for a hang: where the test was when it was stopped).

A ``python -m unittest`` command runs through unittest's own runner (``testing/run.py``)
for per-test outcomes and coverage under pytest's node ids, else under pytest, else by its
exit code (the plan notes which). Given ``fail_to_pass`` ids (SWE-bench), only those
are targets, and only those the baseline shows failing.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from patchsmith.domain import (
    FAILING,
    Instance,
    Plan,
    SandboxConfig,
    SuspiciousLine,
    TestOutcome,
    TestReport,
)
from patchsmith.infra.sandbox import Sandbox
from patchsmith.tasks.localize import (
    EXECUTED_WEIGHT,
    CoverageError,
    Line,
    assertion_callees,
    boosts,
    coverage_by_test,
    editable,
    editable_excludes,
    function_spans,
    hint_names,
    lines_run,
    ochiai,
    rank,
    traceback_frames,
)
from patchsmith.tasks.testing.junit import failure_texts
from patchsmith.tasks.testing.run import (
    COMMAND_CONTEXT,
    COVERAGE_FILE,
    JUNIT_FILE,
    REPORT_DIR,
    UNITTEST_RUNNER,
    effective_command,
    hang_texts,
    is_pytest,
    per_test_limit,
    ran_under_pytest,
    read_report,
    run_tests,
    target_outcome,
)

PYTEST_USAGE_ERROR = 4
WATCHDOG_EXIT = 124  # patchsmith_guard.WATCHDOG_EXIT: the plugin ended a run on a hang
HANG_ROUNDS = 3
"""Baseline re-runs (each without the hanging tests found so far) at most."""


def _incomplete(report: TestReport) -> bool:
    """True when the run was cut short (killed at its limit, ended by the watchdog, or
    dead of a signal inside a test)."""
    return report.timed_out or report.exit_code == WATCHDOG_EXIT or report.crashed is not None


def _run_notes(label: str, report: TestReport) -> list[str]:
    notes = []
    if report.timed_out:
        notes.append(f"{label} timed out: its outcomes are incomplete")
    elif report.limit_hit == "output" and report.outcomes:
        notes.append(
            f"{label} printed more than the output limit: its log is truncated, its outcomes "
            "(from the test report, or the exit code) are kept"
        )
    elif report.limit_hit:
        notes.append(f"{label} hit the {report.limit_hit} limit: its outcomes may be incomplete")
    if not report.outcomes:
        notes.append(f"{label} reported no test outcomes (exit code {report.exit_code})")
    return notes


class _Evidence:
    """What localization needs from baseline runs, read before the next run overwrites it."""

    def __init__(self, workspace: Path, pytest_cmd: bool) -> None:
        self.workspace = workspace
        self.pytest_cmd = pytest_cmd
        self.cov: dict[str, set[Line]] = {}
        self.texts: dict[str, str] = {}
        self.notes: list[str] = []

    def add(self, report: TestReport) -> None:
        """Coverage and failure texts of the run that just ended (later runs win)."""
        out = self.workspace / REPORT_DIR
        try:
            self.cov.update(coverage_by_test(out / COVERAGE_FILE, self.workspace))
            if not self.pytest_cmd:  # the hook's line tracer, with or without coverage.py
                traced = lines_run(out, self.workspace)
                if traced:
                    self.cov.setdefault(COMMAND_CONTEXT, set()).update(traced)
                elif COMMAND_CONTEXT not in self.cov:
                    self.notes.append(
                        "no lines recorded for the test command (no Python process of it "
                        "loaded patchsmith's hook: python -I or -S, or no Python at all): "
                        "localization uses tracebacks only"
                    )
        except CoverageError as exc:
            self.notes.append(f"coverage data unusable ({exc}): localization uses tracebacks only")
        if not self.pytest_cmd:
            self.texts.update({t: report.log_tail for t in report.failing()})
            return
        self.texts.update(failure_texts(read_report(out, JUNIT_FILE)))
        self.texts.update(hang_texts(out))
        if report.crashed is not None:  # what the dying process printed (faulthandler)
            self.texts[report.crashed] = report.log_tail

    def localize(
        self, instance: Instance, fail_to_pass: list[str], pass_to_pass: list[str]
    ) -> tuple[list[SuspiciousLine], dict[str, list[int]], str]:
        """Ranked suspicious lines, the in-scope lines the failing tests ran, and which
        evidence was used (in words)."""
        exclude = editable_excludes(instance)

        def in_scope(path: str) -> bool:
            return editable(instance, path)

        used: list[str] = []
        if self.pytest_cmd:
            failing = {t for t in fail_to_pass if t in self.cov}
            scores = ochiai(self.cov, failing, set(pass_to_pass)) if failing else {}
            ran = {line for t in failing for line in self.cov[t]}
            source = "ochiai"
            if failing:
                guards = sum(1 for t in pass_to_pass if t in self.cov)
                used.append(
                    f"per-test spectra (Ochiai) over {len(failing)} failing and {guards} "
                    "passing tests' coverage"
                )
        else:
            ran = self.cov.get(COMMAND_CONTEXT, set()) if fail_to_pass else set()
            scores = dict.fromkeys(ran, EXECUTED_WEIGHT)
            source = "executed"
        executed: dict[str, set[int]] = defaultdict(set)
        for path, line in ran:
            if in_scope(path):
                executed[path].add(line)
        if not self.pytest_cmd and executed:
            used.append(
                f"lines the failing command ran ({sum(map(len, executed.values()))} in "
                f"{len(executed)} file(s), coverage of its Python processes)"
            )
        frames = [
            traceback_frames(self.texts[t], self.workspace) for t in fail_to_pass if t in self.texts
        ]
        callees: set[str] = set()
        for tb in frames:
            callees |= assertion_callees(tb, self.workspace, in_scope)
        hints = hint_names(instance.instruction)
        paths = set(executed) | {p for tb in frames for p, _ in tb if in_scope(p)}
        spans = function_spans(self.workspace, paths or _scope_files(self.workspace, in_scope))
        extra = boosts(spans, callees, hints, executed)
        if any(in_scope(p) for tb in frames for p, _ in tb):
            used.append("traceback frames")
        if "callee" in extra:
            used.append(
                f"the failing assertions' callees ({', '.join(sorted(callees & set(spans)))})"
            )
        if "hint" in extra:
            used.append(f"names in the instruction ({', '.join(sorted(hints & set(spans)))})")
        ranked = rank(scores, frames, instance.scope, exclude, cov_source=source, extra=extra)
        lines = {p: sorted(ls) for p, ls in sorted(executed.items())}
        return ranked, lines, "; ".join(used) or "no evidence"


MAX_SCOPE_WALK = 5000
"""Directory entries looked at, at most, to find in-scope files when nothing else names
any (no coverage, no traceback in scope)."""


def _scope_files(root: Path, in_scope: Callable[[str], bool]) -> list[str]:
    """In-scope ``.py`` files of the workspace (hidden and report directories skipped)."""
    found: list[str] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            seen += 1
            if seen > MAX_SCOPE_WALK:
                return found
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if name.endswith(".py") and in_scope(rel):
                found.append(rel)
    return found


def _timeouts(report: TestReport) -> set[str]:
    return {t for t, o in report.outcomes.items() if o == TestOutcome.timeout}


def _stoppers(report: TestReport) -> dict[str, TestOutcome]:
    """Tests that ended the run: hung ones (timeout) and the one it crashed in (error)."""
    found = dict.fromkeys(_timeouts(report), TestOutcome.timeout)
    if report.crashed is not None:
        found[report.crashed] = TestOutcome.error
    return found


def _find_hangs(
    sandbox: Sandbox,
    workspace: Path,
    cmd: str,
    config: SandboxConfig,
    first: TestReport,
    evidence: _Evidence,
    notes: list[str],
    coverage: bool,
) -> tuple[TestReport, set[str]]:
    """The baseline with hanging (and crashing) tests found and the rest of the suite run
    without them.

    Returns the merged report (hanging tests with outcome ``timeout``, a test the process
    died in with ``error``) and the ids of both kinds, to deselect in later runs.
    """
    stopped: dict[str, TestOutcome] = {}
    report, rounds = first, 0
    while _incomplete(report) and rounds < HANG_ROUNDS:
        # deselected tests do not run, so every culprit is new
        culprits = {t: o for t, o in _stoppers(report).items() if t not in stopped}
        if not culprits:
            break  # cut short, but not inside a test we can name: nothing to deselect
        stopped |= culprits
        rounds += 1
        report = run_tests(
            sandbox, workspace, cmd, config, deselect=sorted(stopped), coverage=coverage
        )
        evidence.add(report)
    stopped = _stoppers(first) | _stoppers(report) | stopped
    crashed = sorted(t for t, o in stopped.items() if o == TestOutcome.error)
    if crashed:
        notes.append(
            f"{len(crashed)} test(s) crashed the test process (outcome error; the rest ran "
            f"without them): {', '.join(crashed)}"
        )
    if report is first:
        return first, set(stopped)
    if _incomplete(report):
        notes.append(
            f"baseline still cut short after {rounds} re-run(s) without the hanging tests: "
            "its outcomes are incomplete"
        )
    else:
        notes.append(
            f"baseline was cut short by a hanging or crashing test; re-ran {rounds} time(s) "
            f"without {', '.join(sorted(stopped))}"
        )
    outcomes = {**first.outcomes, **report.outcomes, **stopped}
    merged = report.model_copy(
        update={
            "outcomes": outcomes,
            "log_tail": "\n".join(filter(None, [first.log_tail[-4000:], report.log_tail])),
        }
    )
    return merged, set(stopped)


def _targets(
    instance: Instance, baseline: TestReport, flaky: list[str], notes: list[str]
) -> tuple[list[str], list[str]]:
    """Targets and guards: the given ids (only those that fail now) or the failing tests."""
    if instance.fail_to_pass:
        fail_to_pass = []
        already, missing = [], []
        for t in instance.fail_to_pass:
            outcome = target_outcome(baseline.outcomes, t)
            if outcome is None:
                missing.append(t)
                fail_to_pass.append(t)  # may appear once fixed (a new parametrization, say)
            elif outcome in FAILING:
                fail_to_pass.append(t)
            else:
                already.append(t)
        if already:
            notes.append(
                "fail_to_pass tests already pass in the baseline (not targets): "
                + ", ".join(already)
            )
        if missing and baseline.outcomes:
            notes.append(f"fail_to_pass tests not found in the baseline: {', '.join(missing)}")
        if not baseline.outcomes:
            fail_to_pass = []
    else:
        fail_to_pass = baseline.failing()
    pass_to_pass = instance.pass_to_pass or baseline.passing()
    if instance.fail_to_pass or instance.pass_to_pass:
        dropped = sorted(set(instance.fail_to_pass + instance.pass_to_pass) & set(flaky))
        if dropped:
            notes.append(f"given tests dropped as flaky: {', '.join(dropped)}")
    return (
        [t for t in fail_to_pass if t not in flaky],
        [t for t in pass_to_pass if t not in flaky],
    )


def make_plan(
    instance: Instance,
    sandbox: Sandbox,
    workspace: Path,
    config: SandboxConfig,
    tier: str,
    *,
    warm_rerun: Callable[[TestReport], bool] | None = None,
) -> Plan:
    """Run the baseline (hangs found, then once more), pick targets and guards, rank lines.

    ``warm_rerun``, given the baseline, runs the unchanged tests again in the instance's
    warm session (the one that will screen its candidates) and says whether every test
    came out as in the baseline. If so, that was the second run: no test is flaky, and no
    cold run is paid for it. If it could not run or disagreed anywhere (a flaky test, or
    tests that behave differently in a forked session), the second run is cold, as
    without it.

    SandboxStartError propagates: the baseline could not run at all (an infra fault).
    """
    notes: list[str] = []
    cmd = instance.test_cmd
    converted = effective_command(cmd, workspace)
    pytest_cmd = is_pytest(converted)
    coverage = True  # pytest-cov per test, else every Python process of the command
    baseline = run_tests(sandbox, workspace, cmd, config, coverage=coverage)
    if (
        pytest_cmd
        and not baseline.outcomes
        and baseline.exit_code == PYTEST_USAGE_ERROR
        and ("--cov" in baseline.log_tail or "pytest_cov" in baseline.log_tail)
    ):
        notes.append(
            "pytest-cov is not available in this environment: no per-test coverage, "
            "localization uses tracebacks only (add pytest-cov to environment.install)"
        )
        coverage = False
        baseline = run_tests(sandbox, workspace, cmd, config)
    if converted != cmd:
        if baseline.runner_note == UNITTEST_RUNNER:
            notes.append(f"unittest command run by {UNITTEST_RUNNER} for per-test outcomes, "
                         "under pytest's node ids")  # fmt: skip
        elif ran_under_pytest(baseline, cmd):
            notes.append(f"unittest command run under pytest for per-test outcomes: {converted}")
        else:
            pytest_cmd = False
            notes.append("pytest could not run the unittest command: using it by exit code")
    if not pytest_cmd:
        notes.append(
            "test command is not pytest: one outcome for the whole command; localization "
            "from the lines it ran and its log's tracebacks"
        )
    evidence = _Evidence(workspace, pytest_cmd)
    evidence.add(baseline)
    hung: set[str] = set()
    if pytest_cmd:
        baseline, hung = _find_hangs(
            sandbox, workspace, cmd, config, baseline, evidence, notes, coverage
        )
    notes += _run_notes("baseline", baseline)
    hanging = sorted(t for t in hung if baseline.outcomes.get(t) == TestOutcome.timeout)
    if hanging:
        notes.append(
            f"{len(hanging)} test(s) hang (stopped at the {per_test_limit(config):g}s per-test "
            f"limit, outcome timeout): {', '.join(hanging)}"
        )

    complete = bool(baseline.outcomes) and not (hung or baseline.timed_out)
    if warm_rerun is not None and complete and warm_rerun(baseline):
        rerun = baseline
        notes.append("re-run in the warm session: every test as in the baseline")
    else:
        rerun = run_tests(sandbox, workspace, cmd, config, deselect=sorted(hung))
        notes += _run_notes("re-run", rerun)
    flaky = sorted(
        t
        for t, outcome in baseline.outcomes.items()
        if t in rerun.outcomes and rerun.outcomes[t] != outcome
    )
    if flaky:
        notes.append(f"{len(flaky)} flaky test(s) differ between two runs: {', '.join(flaky)}")
    if hung and not _incomplete(rerun):
        # A candidate's limits scale from the baseline's duration: take the suite's cost
        # without its hanging tests (the re-run deselected them), not their time-outs.
        baseline = baseline.model_copy(update={"duration_s": rerun.duration_s})
    fail_to_pass, pass_to_pass = _targets(instance, baseline, flaky, notes)
    if not fail_to_pass:
        notes.append("baseline has no failing tests: nothing to repair")
    notes += evidence.notes
    suspicious, executed, used = evidence.localize(instance, fail_to_pass, pass_to_pass)
    if fail_to_pass:
        notes.append(f"localization: {used}")
        if not suspicious:
            notes.append("localization found no suspicious line in scope")
    return Plan(
        instance_id=instance.instance_id,
        intent=instance.intent,
        fail_to_pass=fail_to_pass,
        pass_to_pass=pass_to_pass,
        flaky=flaky,
        suspicious=suspicious,
        baseline=baseline,
        tier=tier,
        notes=notes,
        localization=used if fail_to_pass else "",
        executed=executed,
    )
