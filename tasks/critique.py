"""Deterministic critique: a verdict from test evidence, lint delta and diff size.

The critique looks at one tested candidate. Whether to escalate to the next tier or give up
is the refine step's call (``tasks/policy.py``), because it depends on the whole history.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Mapping

from patchsmith.domain import FAILING, Critique, Plan, TestOutcome, TestReport, Verdict
from patchsmith.tasks.edits.diff import changed_lines, diff_size
from patchsmith.tasks.testing.run import target_outcome

# Only errors that point at real breakage; style noise would penalise correct fixes.
LINT_SELECT = "E9,F"


def _ruff_bin() -> str:
    """The ruff that the ``ruff`` package installed (its scripts dir, wherever that is)."""
    from ruff.__main__ import find_ruff_bin

    return str(find_ruff_bin())


def lint(path: str, text: str) -> list[tuple[int, str]]:
    """ruff diagnostics (line, code: message) for one file's text, read from stdin."""
    proc = subprocess.run(
        [
            _ruff_bin(),
            "check",
            "--isolated",
            "--no-cache",
            "--output-format",
            "json",
            "--select",
            LINT_SELECT,
            "--stdin-filename",
            path,
            "-",
        ],
        input=text.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"ruff failed on {path}: {proc.stderr.decode(errors='replace')}")
    return [(d["location"]["row"], f"{d['code']}: {d['message']}") for d in json.loads(proc.stdout)]


def lint_delta(diff: str, before: Mapping[str, str], after: Mapping[str, str]) -> int:
    """Number of ruff errors on changed lines that the file did not already have."""
    introduced = 0
    for path, lines in changed_lines(diff).items():
        if not path.endswith(".py") or path not in after:
            continue
        old = Counter(msg for _, msg in lint(path, before.get(path, "")))
        new = Counter(msg for row, msg in lint(path, after[path]) if row in lines)
        introduced += sum((new - old).values())
    return introduced


def _goal_terms(plan: Plan, report: TestReport) -> tuple[list[str], float, bool, str]:
    """A refactoring's goal in the critique: what is still wrong (reasons), the share of
    occurrences removed, whether it moved (fewer occurrences, or the check now passing with
    none added), and feedback for the next round."""
    before, after = plan.goal, report.goal
    if before is None:
        return [], 0.0, False, ""
    if after is None:
        return ["the goal was not evaluated on this candidate"], 0.0, False, ""
    total, left = len(before.occurrences), len(after.occurrences)
    removed = max(total - left, 0)
    still: list[str] = []
    if left:
        still.append(f"{left} occurrence(s) of the goal left ({removed} of {total} removed)")
    check_now = after.check is not None and after.check.passed
    if after.check is not None and not check_now:
        still.append(f"the goal's check_cmd still fails (exit {after.check.exit_code})")
    check_moved = check_now and not (before.check is not None and before.check.passed)
    moved = left < total or (check_moved and left <= total)
    lines = [f"- {o.where()}: {o.text}" for o in after.occurrences[:20]]
    feedback = ("occurrences left:\n" + "\n".join(lines)) if lines else ""
    if after.check is not None and not check_now and after.check.log_tail:
        feedback += f"\n--- check_cmd output (tail) ---\n{after.check.log_tail[-1500:]}"
    return still, removed / max(total, 1), moved, feedback


def critique(plan: Plan, report: TestReport, diff: str, lint_introduced: int = 0) -> Critique:
    """Judge one candidate: accept only when every target passes with no regression.

    A refactoring (the plan has a goal) has no target tests: it is accepted when the goal
    is met (no occurrence left, the check passes) with every guard green, and marked
    ``progress`` when it removed occurrences with every guard green."""
    outcomes = report.outcomes
    fixed = [t for t in plan.fail_to_pass if target_outcome(outcomes, t) == TestOutcome.passed]
    still = [t for t in plan.fail_to_pass if t not in fixed]
    regressions = [t for t in plan.pass_to_pass if target_outcome(outcomes, t) in FAILING]
    if not report.stopped_early and outcomes:
        # A guard test that vanished (collection error, deleted) counts as a regression.
        regressions += [t for t in plan.pass_to_pass if target_outcome(outcomes, t) is None]
    size = diff_size(diff)
    reasons: list[str] = []
    if report.runner == "precheck":  # rejected before any test ran: say why first
        reasons.append(report.log_tail.removeprefix("patchsmith: "))
    if report.timed_out:
        reasons.append(f"tests timed out after {report.duration_s:.1f}s")
    if report.limit_hit and report.limit_hit != "timeout":
        reasons.append(f"sandbox limit hit: {report.limit_hit}")
    hung = sorted(t for t, o in outcomes.items() if o == TestOutcome.timeout)
    if hung:
        reasons.append(f"{len(hung)} test(s) ran past the per-test limit: {', '.join(hung[:5])}")
    if still:
        reasons.append(f"{len(still)}/{len(plan.fail_to_pass)} target tests still fail")
    goal_still, goal_share, moved, goal_feedback = _goal_terms(plan, report)
    reasons += goal_still
    if regressions:
        reasons.append(f"{len(regressions)} regression(s): {', '.join(regressions[:5])}")
    if lint_introduced:
        reasons.append(f"{lint_introduced} new ruff error(s) on changed lines")
    n_targets = max(len(plan.fail_to_pass), 1)
    n_guards = max(len(plan.pass_to_pass), 1)
    gained = goal_share if plan.goal is not None else len(fixed) / n_targets
    score = gained - len(regressions) / n_guards - 0.001 * size
    broken = bool(regressions or lint_introduced or report.timed_out)
    accepted = not (still or goal_still or broken)
    if accepted and not outcomes:
        accepted, reasons = False, ["no test outcomes were reported"]
    progress = plan.goal is not None and not accepted and moved and not broken and bool(outcomes)
    if accepted and plan.goal is not None:
        reasons.append(f"the goal is met, all {len(plan.pass_to_pass)} guard tests pass, "
                       f"{size} lines changed")  # fmt: skip
    elif accepted:
        reasons.append(f"all {len(fixed)} target tests pass, no regressions, {size} lines changed")
    elif progress:
        reasons.append("progress: guards green; the next round starts from this candidate")
    feedback = (
        ""
        if accepted
        else "; ".join(reasons)
        + (f"\n{goal_feedback}" if goal_feedback else "")
        + (f"\n--- test log (tail) ---\n{report.log_tail[-2000:]}" if report.log_tail else "")
    )
    return Critique(
        verdict=Verdict.accept if accepted else Verdict.refine,
        score=round(score, 6),
        reasons=reasons,
        feedback=feedback,
        fixed=fixed,
        still_failing=still,
        regressions=sorted(set(regressions)),
        lint_delta=lint_introduced,
        diff_lines=size,
        progress=progress,
    )
