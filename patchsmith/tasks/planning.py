"""Planning: a baseline test run, flaky-test detection and fault localization.

The baseline runs the full test command with per-test coverage; a second run without
coverage finds flaky tests (an outcome that differs between the two runs). Flaky tests are
never targets nor regression guards. Localization ranks lines by Ochiai over the coverage
of failing vs. passing tests, boosted by the frames of the failing tests' tracebacks.
"""

from __future__ import annotations

from pathlib import Path

from patchsmith.domain import Instance, Plan, SandboxConfig, SuspiciousLine, TestReport
from patchsmith.infra.sandbox import Sandbox
from patchsmith.tasks.junit import failure_texts
from patchsmith.tasks.localize import Line, coverage_by_test, ochiai, rank, traceback_frames
from patchsmith.tasks.testrun import (
    COVERAGE_FILE,
    JUNIT_FILE,
    REPORT_DIR,
    is_pytest,
    read_report,
    run_tests,
)

PYTEST_USAGE_ERROR = 4


def _run_notes(label: str, report: TestReport) -> list[str]:
    notes = []
    if report.timed_out:
        notes.append(f"{label} timed out: its outcomes are incomplete")
    elif report.limit_hit:
        notes.append(f"{label} hit the {report.limit_hit} limit: its outcomes may be incomplete")
    if not report.outcomes:
        notes.append(f"{label} reported no test outcomes (exit code {report.exit_code})")
    return notes


class _Evidence:
    """What localization needs from the baseline, read before the re-run overwrites it."""

    def __init__(self, workspace: Path, baseline: TestReport, pytest_cmd: bool) -> None:
        out = workspace / REPORT_DIR
        self.workspace = workspace
        self.cov: dict[str, set[Line]] = {}
        self.texts: dict[str, str] = {}
        if pytest_cmd:
            self.cov = coverage_by_test(out / COVERAGE_FILE, workspace)
            self.texts = failure_texts(read_report(out, JUNIT_FILE))
        else:
            self.texts = {t: baseline.log_tail for t in baseline.failing()}

    def localize(
        self, instance: Instance, fail_to_pass: list[str], pass_to_pass: list[str]
    ) -> list[SuspiciousLine]:
        """Rank suspicious lines for these targets and guards."""
        failing = {t for t in fail_to_pass if t in self.cov}
        scores = ochiai(self.cov, failing, set(pass_to_pass)) if failing else {}
        frames = [
            traceback_frames(self.texts[t], self.workspace) for t in fail_to_pass if t in self.texts
        ]
        return rank(scores, frames, instance.scope, instance.exclude)


def make_plan(
    instance: Instance,
    sandbox: Sandbox,
    workspace: Path,
    config: SandboxConfig,
    tier: str,
) -> Plan:
    """Run the baseline (twice), pick targets and guards, rank suspicious lines.

    SandboxStartError propagates: the baseline could not run at all (an infra fault).
    """
    notes: list[str] = []
    cmd = instance.test_cmd
    pytest_cmd = is_pytest(cmd)
    if not pytest_cmd:
        notes.append(
            "test command is not pytest: no per-test localization "
            "(one outcome for the whole command, tracebacks from its log only)"
        )
    baseline = run_tests(sandbox, workspace, cmd, config, coverage=pytest_cmd)
    if (
        pytest_cmd
        and not baseline.outcomes
        and baseline.exit_code == PYTEST_USAGE_ERROR
        and "--cov" in baseline.log_tail
    ):
        notes.append("pytest rejected the coverage options (is pytest-cov installed?)")
        baseline = run_tests(sandbox, workspace, cmd, config)
    notes += _run_notes("baseline", baseline)
    evidence = _Evidence(workspace, baseline, pytest_cmd)
    given_f2p = instance.fail_to_pass or baseline.failing()
    given_p2p = instance.pass_to_pass or baseline.passing()

    rerun = run_tests(sandbox, workspace, cmd, config)
    notes += _run_notes("re-run", rerun)
    flaky = sorted(
        t
        for t, outcome in baseline.outcomes.items()
        if t in rerun.outcomes and rerun.outcomes[t] != outcome
    )
    if flaky:
        notes.append(f"{len(flaky)} flaky test(s) differ between two runs: {', '.join(flaky)}")
    fail_to_pass = [t for t in given_f2p if t not in flaky]
    pass_to_pass = [t for t in given_p2p if t not in flaky]
    if instance.fail_to_pass or instance.pass_to_pass:
        dropped = sorted(set(instance.fail_to_pass + instance.pass_to_pass) & set(flaky))
        if dropped:
            notes.append(f"given tests dropped as flaky: {', '.join(dropped)}")
    if instance.fail_to_pass:
        passing = set(baseline.passing())
        already = [t for t in fail_to_pass if t in passing]
        missing = [t for t in fail_to_pass if t not in baseline.outcomes]
        if already:
            notes.append(f"fail_to_pass tests already pass in the baseline: {', '.join(already)}")
        if missing and baseline.outcomes:
            notes.append(f"fail_to_pass tests not found in the baseline: {', '.join(missing)}")
    if not fail_to_pass:
        notes.append("baseline has no failing tests: nothing to repair")
    suspicious = evidence.localize(instance, fail_to_pass, pass_to_pass)
    if fail_to_pass and not suspicious:
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
    )
