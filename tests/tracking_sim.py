"""A scripted instance lifecycle that drives any ``Tracker`` like the pipeline does.

Test support, not part of the package. Used by the tracking tests, the reports tests and
``bench/tracking_overhead.py``: it makes realistic attempts (diffs, test logs, critiques,
usage) without sandboxes or models, and calls the tracker in the pipeline's order: plan →
(generate → sandbox-test → critique → refine)* → end. That the real pipeline calls the
tracker this way is checked against a real campaign in ``test_tracking_pipeline.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from patchsmith.domain import (
    Attempt,
    AttemptStatus,
    Candidate,
    Critique,
    Instance,
    Outcome,
    OutcomeStatus,
    TestOutcome,
    TestReport,
    Usage,
    Verdict,
)
from patchsmith.infra.llm.config import Prices
from patchsmith.infra.tracking import Tracker, price

SEARCH: dict[str, Any] = {}  # tier 0 has no model


@dataclass(frozen=True)
class Step:
    """One scripted attempt."""

    tier: str = "search"
    generator: str = "mutation"
    model: dict[str, Any] = field(default_factory=dict)
    status: AttemptStatus = AttemptStatus.rejected
    regressions: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    gpu_seconds: float = 0.0
    cpu_seconds: float = 0.0
    prices: Prices | None = None


def fake_diff(path: str, lines: int, seed: int) -> str:
    """A unified diff of about ``lines`` changed lines."""
    body = "".join(f"-    x{i} = {seed}\n+    x{i} = {seed + 1}\n" for i in range(lines // 2))
    return f"--- a/{path}\n+++ b/{path}\n@@ -1,{lines // 2} +1,{lines // 2} @@\n{body}"


def fake_attempt(instance_id: str, number: int, step: Step, *, diff_lines: int = 40,
                 log_lines: int = 200) -> Attempt:  # fmt: skip
    """A realistic attempt for ``step``: diff, per-test report with a log tail, critique."""
    malformed = step.status == AttemptStatus.malformed_edit
    accepted = step.status == AttemptStatus.accepted
    regressions = [f"tests/test_m.py::test_keep_{i}" for i in range(step.regressions)]
    outcomes = {f"tests/test_m.py::test_keep_{i}": TestOutcome.passed for i in range(20)}
    outcomes.update({r: TestOutcome.failed for r in regressions})
    outcomes["tests/test_m.py::test_target"] = (
        TestOutcome.passed if accepted else TestOutcome.failed
    )
    log = "".join(f"tests/test_m.py::test_keep_{i % 20} PASSED\n" for i in range(log_lines))
    usage = Usage(
        prompt_tokens=step.tokens_in,
        completion_tokens=step.tokens_out,
        latency_s=0.01 if step.model else 0.0,
        gpu_seconds=step.gpu_seconds,
        cpu_seconds=step.cpu_seconds,
        dollars=price(step.tokens_in, step.tokens_out, step.gpu_seconds, step.prices),
    )
    diff = fake_diff("src/m.py", diff_lines, number)
    return Attempt(
        instance_id=instance_id,
        number=number,
        tier=step.tier,
        generator=step.generator,
        candidate=None
        if malformed
        else Candidate(
            candidate_id=Candidate.make_id(diff),
            generator=step.generator,
            tier=step.tier,
            diff=diff,
            files=["src/m.py"],
        ),
        report=None
        if malformed
        else TestReport(outcomes=outcomes, exit_code=0 if accepted else 1, log_tail=log),
        critique=None
        if malformed
        else Critique(
            verdict=Verdict.accept if accepted else Verdict.refine,
            regressions=regressions,
            still_failing=[] if accepted else ["tests/test_m.py::test_target"],
            diff_lines=diff_lines,
        ),
        usage=usage,
        status=step.status,
        error="no SEARCH/REPLACE block" if malformed else None,
        started_at=time.time(),
        duration_s=0.5,
        model=step.model,
    )


def run_fake_instance(
    tracker: Tracker,
    campaign_run_id: str | None,
    instance: Instance,
    steps: list[Step],
    *,
    key: str = "k",
    diff_lines: int = 40,
    log_lines: int = 200,
) -> tuple[str | None, Outcome]:
    """Drive ``tracker`` through one instance; returns (instance run id, outcome)."""
    t0 = time.perf_counter()
    iid = instance.instance_id
    run_id = tracker.start_instance(
        campaign_run_id, instance, key=key, params={"flow": "fake"}, flow_run_id=f"flow-{iid}"
    )
    mark = {"patchsmith.instance_id": iid}
    with tracker.step(run_id, "plan", attributes=mark) as span:
        span.set({"outputs": {"tier": steps[0].tier if steps else None}})
    total, winner = Usage(), None
    for number, step in enumerate(steps, start=1):
        attempt = fake_attempt(iid, number, step, diff_lines=diff_lines, log_lines=log_lines)
        with tracker.step(run_id, "generate", attributes={**mark, "tier": step.tier}):
            if step.model:
                tracker.model_call(
                    run_id,
                    model=str(step.model.get("model")),
                    usage=attempt.usage,
                    attributes={**mark, "patchsmith.attempt": number},
                )
        with tracker.step(run_id, "sandbox-test", span_type="TOOL", attributes=mark) as span:
            span.set({"exit_code": attempt.report.exit_code if attempt.report else -1})
        with tracker.step(run_id, "critique", span_type="EVALUATOR", attributes=mark):
            pass
        tracker.log_attempt(run_id, attempt)
        total = total + attempt.usage
        if step.status == AttemptStatus.accepted:
            winner = attempt
            break
        with tracker.step(run_id, "refine", attributes=mark):
            pass
    outcome = Outcome(
        instance_id=iid,
        status=OutcomeStatus.resolved if winner else OutcomeStatus.unresolved,
        attempts=winner.number if winner else len(steps),
        tier=winner.tier if winner else None,
        duration_s=time.perf_counter() - t0,
        patch=winner.candidate.diff if winner and winner.candidate else None,
        usage=total,
    )
    logs = {"verify": "all passed\n" * log_lines} if winner else {}
    tracker.end_instance(run_id, outcome, logs=logs)
    return run_id, outcome
