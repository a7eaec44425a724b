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


def critique(plan: Plan, report: TestReport, diff: str, lint_introduced: int = 0) -> Critique:
    """Judge one candidate: accept only when every target passes with no regression."""
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
    if regressions:
        reasons.append(f"{len(regressions)} regression(s): {', '.join(regressions[:5])}")
    if lint_introduced:
        reasons.append(f"{lint_introduced} new ruff error(s) on changed lines")
    n_targets = max(len(plan.fail_to_pass), 1)
    n_guards = max(len(plan.pass_to_pass), 1)
    score = len(fixed) / n_targets - len(regressions) / n_guards - 0.001 * size
    accepted = not (still or regressions or lint_introduced or report.timed_out)
    if accepted and not outcomes:
        accepted, reasons = False, ["no test outcomes were reported"]
    if accepted:
        reasons.append(f"all {len(fixed)} target tests pass, no regressions, {size} lines changed")
    feedback = (
        ""
        if accepted
        else "; ".join(reasons)
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
    )
