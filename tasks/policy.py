"""Cascade policy: after each tested candidate, keep going, escalate, or give up."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from patchsmith.domain import Budget, TierBudget, Usage, Verdict


@dataclass
class Spend:
    """What one instance has used so far (attempts include those of an interrupted run)."""

    started: float = field(default_factory=time.monotonic)
    attempts: int = 0
    usage: Usage = field(default_factory=Usage)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def budget_left(budget: Budget, spend: Spend) -> str | None:
    """None while within budget, else the reason it is spent."""
    if spend.attempts >= budget.max_attempts:
        return f"attempt budget spent ({spend.attempts}/{budget.max_attempts})"
    if spend.elapsed() >= budget.max_wall_s:
        return f"wall-time budget spent ({spend.elapsed():.0f}s/{budget.max_wall_s:.0f}s)"
    tokens = spend.usage.prompt_tokens + spend.usage.completion_tokens
    if budget.max_tokens is not None and tokens >= budget.max_tokens:
        return f"token budget spent ({tokens}/{budget.max_tokens})"
    dollars = spend.usage.dollars
    if budget.max_dollars is not None and dollars is not None and dollars >= budget.max_dollars:
        return f"dollar budget spent (${dollars:.4f}/${budget.max_dollars})"
    return None


@dataclass(frozen=True)
class TierStart:
    """Where the instance's spend stood when a tier began (its own spend is the difference)."""

    at: float
    attempts: int
    tokens: int

    @classmethod
    def of(cls, spend: Spend) -> TierStart:
        tokens = spend.usage.prompt_tokens + spend.usage.completion_tokens
        return cls(time.monotonic(), spend.attempts, tokens)


def tier_budget_left(limit: TierBudget | None, spend: Spend, start: TierStart) -> str | None:
    """None while the tier is within its share, else the reason it is spent."""
    if limit is None:
        return None
    attempts = spend.attempts - start.attempts
    if limit.max_attempts is not None and attempts >= limit.max_attempts:
        return f"tier attempt budget spent ({attempts}/{limit.max_attempts})"
    elapsed = time.monotonic() - start.at
    if limit.max_wall_s is not None and elapsed >= limit.max_wall_s:
        return f"tier wall-time budget spent ({elapsed:.0f}s/{limit.max_wall_s:.0f}s)"
    tokens = spend.usage.prompt_tokens + spend.usage.completion_tokens - start.tokens
    if limit.max_tokens is not None and tokens >= limit.max_tokens:
        return f"tier token budget spent ({tokens}/{limit.max_tokens})"
    return None


def decide(
    budget: Budget, spend: Spend, *, tier_exhausted: bool, last_tier: bool
) -> tuple[Verdict, str]:
    """The refine decision: refine (same tier), escalate (next tier) or give up."""
    spent = budget_left(budget, spend)
    if spent:
        return Verdict.give_up, spent
    if tier_exhausted:
        if last_tier:
            return Verdict.give_up, "every tier exhausted its candidates"
        return Verdict.escalate, "tier exhausted its candidates"
    return Verdict.refine, "budget left; trying the next candidates"
