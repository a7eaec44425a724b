"""Critique rules and the cascade policy: verdicts follow the evidence."""

from __future__ import annotations

import time

from patchsmith.domain import Budget, Plan, TestOutcome, TestReport, Usage, Verdict
from patchsmith.tasks.critique import critique, lint_delta
from patchsmith.tasks.edits.diff import make_diff
from patchsmith.tasks.policy import Spend, decide

P, F = TestOutcome.passed, TestOutcome.failed


def plan(targets: list[str], guards: list[str]) -> Plan:
    return Plan(
        instance_id="i",
        intent="bugfix",
        fail_to_pass=targets,
        pass_to_pass=guards,
        baseline=TestReport(),
        tier="search",
    )


DIFF = make_diff({"m.py": ("x = 1\n", "x = 2\n")})


def test_accepts_only_when_targets_pass_without_regressions() -> None:
    p = plan(["t1", "t2"], ["g1"])
    ok = critique(p, TestReport(outcomes={"t1": P, "t2": P, "g1": P}), DIFF)
    assert ok.verdict == Verdict.accept
    assert ok.fixed == ["t1", "t2"] and not ok.regressions
    half = critique(p, TestReport(outcomes={"t1": P, "t2": F, "g1": P}), DIFF)
    assert half.verdict == Verdict.refine
    assert half.still_failing == ["t2"]
    assert "1/2 target tests still fail" in half.reasons
    regress = critique(p, TestReport(outcomes={"t1": P, "t2": P, "g1": F}), DIFF)
    assert regress.verdict == Verdict.refine
    assert regress.regressions == ["g1"]
    none = critique(p, TestReport(outcomes={"t1": F, "t2": F, "g1": P}), DIFF)
    # Same diff, so only the evidence differs: every target fixed > half fixed > nothing
    # fixed; fixing everything at the cost of the only guard is no better than nothing.
    assert ok.score > half.score > none.score
    assert half.score > regress.score
    assert regress.score <= none.score  # a regression undoes all the progress


def test_vanished_guard_is_a_regression_but_not_when_stopped_early() -> None:
    p = plan(["t1"], ["g1"])
    gone = critique(p, TestReport(outcomes={"t1": P}), DIFF)
    assert gone.regressions == ["g1"] and gone.verdict == Verdict.refine
    early = critique(p, TestReport(outcomes={"t1": F}, stopped_early=True), DIFF)
    assert early.regressions == [] and early.still_failing == ["t1"]


def test_timeout_and_empty_reports_are_never_accepted() -> None:
    p = plan(["t1"], [])
    timed = critique(p, TestReport(outcomes={"t1": P}, timed_out=True, duration_s=60), DIFF)
    assert timed.verdict == Verdict.refine
    assert any("timed out" in r for r in timed.reasons)
    empty = critique(plan([], []), TestReport(), DIFF)
    assert empty.verdict == Verdict.refine


def test_lint_delta_counts_only_new_errors_on_changed_lines() -> None:
    before = "import os\n\n\ndef f(a):\n    return a\n"
    after = "import os\n\n\ndef f(a):\n    return b\n"
    diff = make_diff({"m.py": (before, after)})
    # `import os` is unused before and after (F401, not on a changed line): not counted;
    # `b` is undefined (F821) on the changed line: counted.
    assert lint_delta(diff, {"m.py": before}, {"m.py": after}) == 1
    fixed = "import os\n\n\ndef f(a):\n    return a + 1\n"
    assert lint_delta(make_diff({"m.py": (before, fixed)}), {"m.py": before}, {"m.py": fixed}) == 0
    crit = critique(plan(["t"], []), TestReport(outcomes={"t": P}), diff, lint_introduced=1)
    assert crit.verdict == Verdict.refine and crit.lint_delta == 1


def test_policy_refines_escalates_and_gives_up() -> None:
    budget = Budget(max_attempts=3, max_wall_s=100)
    spend = Spend(attempts=1)
    assert decide(budget, spend, tier_exhausted=False, last_tier=False)[0] == Verdict.refine
    assert decide(budget, spend, tier_exhausted=True, last_tier=False)[0] == Verdict.escalate
    assert decide(budget, spend, tier_exhausted=True, last_tier=True)[0] == Verdict.give_up
    verdict, why = decide(budget, Spend(attempts=3), tier_exhausted=False, last_tier=False)
    assert verdict == Verdict.give_up and "attempt budget" in why
    old = Spend(started=time.monotonic() - 200)
    assert "wall-time" in decide(budget, old, tier_exhausted=False, last_tier=False)[1]
    costly = Spend(usage=Usage(prompt_tokens=900, completion_tokens=200, dollars=2.0))
    tight = Budget(max_tokens=1000, max_dollars=5)
    assert "token budget" in decide(tight, costly, tier_exhausted=False, last_tier=False)[1]
    unknown_price = Spend(usage=Usage(dollars=None))
    dollars_only = Budget(max_dollars=0.01)
    # An unknown cost cannot exhaust a dollar budget (and is not counted as $0 either).
    assert decide(dollars_only, unknown_price, tier_exhausted=False, last_tier=False)[0] == (
        Verdict.refine
    )


def test_file_level_target_counts_as_fixed_when_its_tests_pass() -> None:
    # The baseline could not import tests/test_m.py (a collection error keyed by the file);
    # after the fix its tests report under their own ids.
    p = plan(["tests/test_m.py"], [])
    report = TestReport(outcomes={"tests/test_m.py::test_a": P, "tests/test_m.py::test_b": P})
    assert critique(p, report, DIFF).verdict == Verdict.accept
    report.outcomes["tests/test_m.py::test_b"] = F
    assert critique(p, report, DIFF).still_failing == ["tests/test_m.py"]


def test_candidate_timeout_scales_with_the_baseline_but_never_exceeds_the_limit() -> None:
    from patchsmith.domain import SandboxConfig
    from patchsmith.tasks.repair import candidate_limits

    config = SandboxConfig(timeout_s=60)
    quick = Plan(**{**plan(["t"], []).model_dump(), "baseline": TestReport(duration_s=1.0)})
    slow = Plan(**{**plan(["t"], []).model_dump(), "baseline": TestReport(duration_s=30.0)})
    stuck = Plan(**{**plan(["t"], []).model_dump(), "baseline": TestReport(timed_out=True)})
    assert candidate_limits(config, quick).timeout_s == 5.0  # 5x the baseline
    assert candidate_limits(config, slow).timeout_s == 60.0  # capped at the configured limit
    assert candidate_limits(config, stuck).timeout_s == 60.0  # no baseline to scale from
    assert candidate_limits(SandboxConfig(timeout_s=5), quick).timeout_s == 5.0
    # Per test: 3x the baseline, at least 1 s, at most half the limit and a configured one.
    tiny = Plan(**{**plan(["t"], []).model_dump(), "baseline": TestReport(duration_s=0.1)})
    assert candidate_limits(config, tiny).test_timeout_s == 1.0
    assert candidate_limits(config, tiny).timeout_s == 3.0  # the floor
    assert candidate_limits(config, quick).test_timeout_s == 2.5  # half the command's 5 s
    capped = config.model_copy(update={"test_timeout_s": 2})
    assert candidate_limits(capped, quick).test_timeout_s == 2
    assert candidate_limits(config, slow).test_timeout_s == 30.0
