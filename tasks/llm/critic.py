"""The LLM critic: the diff and the test evidence → a structured verdict, combined with
the deterministic critique.

The deterministic critique stays in charge of the evidence: a candidate whose tests fail
is never accepted because a model liked it. The critic (often a guardrail adapter) may
veto an accepted candidate (→ refine, with its feedback for the next round) and adds its
reasons to any critique it reviews. A critic reply that stays malformed after one retry
leaves the deterministic verdict as it was, with a note.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from patchsmith.domain import Critique, TestReport, Verdict
from patchsmith.infra.llm.types import ChatMessage, ModelBackend
from patchsmith.prompts import render
from patchsmith.tasks.llm.context import steady
from patchsmith.tasks.llm.models import JsonReply, ask_json

PROMPTS = ("critic_system", "critic_user", "retry_json")
MAX_DIFF_CHARS = 8000


class CriticVerdict(BaseModel):
    """The critic's structured verdict (unknown keys are ignored)."""

    model_config = ConfigDict(extra="ignore")

    verdict: Literal["accept", "reject"]
    confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    reasons: list[str] = Field(default_factory=list)
    feedback: str = ""


def evidence(report: TestReport, critique: Critique) -> str:
    """The test evidence the critic reads."""
    lines = [
        f"deterministic verdict: {critique.verdict.value}",
        *(f"- {r}" for r in critique.reasons),
        f"fixed targets: {', '.join(critique.fixed) or 'none'}",
        f"still failing: {', '.join(critique.still_failing) or 'none'}",
        f"regressions: {', '.join(critique.regressions) or 'none'}",
        f"passing tests: {len(report.passing())}, failing tests: {len(report.failing())}",
    ]
    if report.log_tail and critique.verdict != Verdict.accept:
        lines.append(f"test log (tail):\n{steady(report.log_tail)[-1500:]}")
    return "\n".join(lines)


def run_critic(
    backend: ModelBackend,
    instruction: str,
    diff: str,
    report: TestReport,
    critique: Critique,
    *,
    adapter: str | None,
    max_new_tokens: int,
) -> JsonReply[CriticVerdict]:
    """Ask the critic about one tested candidate (retried once on invalid output)."""
    messages = [
        ChatMessage(role="system", content=render("critic_system")),
        ChatMessage(
            role="user",
            content=render(
                "critic_user",
                instruction=instruction,
                diff=diff[:MAX_DIFF_CHARS],
                evidence=evidence(report, critique),
            ),
        ),
    ]
    return ask_json(
        backend, messages, CriticVerdict, adapter=adapter, max_new_tokens=max_new_tokens
    )


def combine(critique: Critique, verdict: CriticVerdict | None, error: str | None) -> Critique:
    """The deterministic critique with the critic's verdict folded in."""
    if verdict is None:
        note = f"LLM critic reply malformed ({error}); deterministic verdict kept"
        return critique.model_copy(update={"reasons": [*critique.reasons, note]})
    said = "; ".join(verdict.reasons) or "no reasons given"
    if verdict.verdict == "accept":
        note = f"LLM critic accepts (confidence {verdict.confidence:.2f}): {said}"
        return critique.model_copy(update={"reasons": [*critique.reasons, note]})
    note = f"LLM critic rejects (confidence {verdict.confidence:.2f}): {said}"
    feedback = "\n".join(
        x for x in (critique.feedback, f"Reviewer: {verdict.feedback or said}") if x
    )
    update: dict[str, object] = {"reasons": [*critique.reasons, note], "feedback": feedback}
    if critique.verdict == Verdict.accept:
        update["verdict"] = Verdict.refine
    return critique.model_copy(update=update)
