"""Cascade policy: after each tested candidate, keep going, escalate, or give up; and before
each model call, whether it may be made at all.

Three levels of budget bind at once: the instance's (``budget:``), the current tier's share
of it (``tiers[].budget``) and the whole campaign's (``campaign_budget:``, over every
instance of the run). Each is checked in the same units (attempts, wall time, tokens,
dollars, model CPU- and GPU-seconds) by ``over``. A model call is checked *before* it is
made against what it would add (``Generator.estimate``): a call that would cross a budget is
not made, so a cap is never overrun by the call that breaks it. Malformed replies, repeats
and refused calls all count, because their usage is charged to the spend like any other.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from patchsmith.config import EscalateRules
from patchsmith.domain import (
    Attempt,
    AttemptStatus,
    Budget,
    CampaignBudget,
    TierBudget,
    Usage,
    Verdict,
)


@dataclass
class Spend:
    """What one instance has used so far (attempts include those of an interrupted run)."""

    started: float = field(default_factory=time.monotonic)
    attempts: int = 0
    usage: Usage = field(default_factory=Usage)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class Ledger:
    """What the whole campaign run has spent so far, over all instances (thread-safe)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._spend = Spend(started=self.started)

    def charge(self, usage: Usage, attempts: int = 0) -> None:
        with self._lock:
            self._spend.attempts += attempts
            self._spend.usage = self._spend.usage + usage

    def spend(self) -> Spend:
        """A snapshot (its clock runs from the campaign's start)."""
        with self._lock:
            return Spend(self._spend.started, self._spend.attempts, self._spend.usage)


@dataclass(frozen=True)
class Limits:
    """One level's limits in common units (None: no limit); ``label`` prefixes reasons."""

    label: str = ""
    attempts: int | None = None
    wall_s: float | None = None
    tokens: int | None = None
    dollars: float | None = None
    cpu_s: float | None = None
    gpu_s: float | None = None

    @classmethod
    def of(cls, budget: Budget | TierBudget | CampaignBudget, label: str = "") -> Limits:
        return cls(
            label=label,
            attempts=budget.max_attempts,
            wall_s=budget.max_wall_s,
            tokens=budget.max_tokens,
            dollars=getattr(budget, "max_dollars", None),
            cpu_s=getattr(budget, "max_cpu_s", None),
            gpu_s=getattr(budget, "max_gpu_s", None),
        )


def _tokens(usage: Usage) -> int:
    return usage.prompt_tokens + usage.completion_tokens


def over(limits: Limits, attempts: int, elapsed: float, usage: Usage) -> str | None:
    """None while within ``limits``, else the reason the first one is spent."""
    p = limits.label
    if limits.attempts is not None and attempts >= limits.attempts:
        return f"{p}attempt budget spent ({attempts}/{limits.attempts})"
    if limits.wall_s is not None and elapsed >= limits.wall_s:
        return f"{p}wall-time budget spent ({elapsed:.0f}s/{limits.wall_s:.0f}s)"
    if limits.tokens is not None and _tokens(usage) >= limits.tokens:
        return f"{p}token budget spent ({_tokens(usage)}/{limits.tokens})"
    dollars = usage.dollars
    if limits.dollars is not None and dollars is not None and dollars >= limits.dollars:
        return f"{p}dollar budget spent (${dollars:.4f}/${limits.dollars})"
    if limits.cpu_s is not None and usage.cpu_seconds >= limits.cpu_s:
        return f"{p}model CPU budget spent ({usage.cpu_seconds:.0f}s/{limits.cpu_s:.0f}s)"
    if limits.gpu_s is not None and usage.gpu_seconds >= limits.gpu_s:
        return f"{p}model GPU budget spent ({usage.gpu_seconds:.0f}s/{limits.gpu_s:.0f}s)"
    return None


def would_cross(limits: Limits, usage: Usage, call: Usage) -> str | None:
    """None when a model call costing about ``call`` keeps ``usage`` within ``limits``,
    else why the call is not made."""
    p = limits.label
    need, used = _tokens(call), _tokens(usage)
    if limits.tokens is not None and need and used + need > limits.tokens:
        left = limits.tokens - used
        return f"{p}token budget: the next model call needs about {need}, {left} left; not made"
    if limits.dollars is not None and call.dollars and usage.dollars is not None:
        left_d = limits.dollars - usage.dollars
        if call.dollars > left_d:
            return (
                f"{p}dollar budget: the next model call costs about ${call.dollars:.4f}, "
                f"${left_d:.4f} left; not made"
            )
    for kind, limit, used_s, need_s in (
        ("CPU", limits.cpu_s, usage.cpu_seconds, call.cpu_seconds),
        ("GPU", limits.gpu_s, usage.gpu_seconds, call.gpu_seconds),
    ):
        if limit is not None and need_s and need_s > limit - used_s:
            return (
                f"{p}model {kind} budget: the next model call needs about {need_s:.0f}s, "
                f"{limit - used_s:.0f}s left; not made"
            )
    return None


def budget_left(budget: Budget, spend: Spend) -> str | None:
    """None while within the instance's budget, else the reason it is spent."""
    return over(Limits.of(budget), spend.attempts, spend.elapsed(), spend.usage)


def campaign_left(limit: CampaignBudget | None, ledger: Ledger) -> str | None:
    """None while the campaign is within ``campaign_budget:``, else the reason it is spent."""
    if limit is None:
        return None
    spend = ledger.spend()
    return over(Limits.of(limit, "campaign "), spend.attempts, spend.elapsed(), spend.usage)


@dataclass(frozen=True)
class TierStart:
    """Where the instance's spend stood when a tier began (its own spend is the difference)."""

    at: float
    attempts: int
    usage: Usage

    @classmethod
    def of(cls, spend: Spend) -> TierStart:
        return cls(time.monotonic(), spend.attempts, spend.usage)

    def used(self, spend: Spend) -> Usage:
        """What the tier itself has spent (dollars None when a price is unknown)."""
        u, s = spend.usage, self.usage
        return Usage(
            prompt_tokens=u.prompt_tokens - s.prompt_tokens,
            completion_tokens=u.completion_tokens - s.completion_tokens,
            latency_s=u.latency_s - s.latency_s,
            gpu_seconds=u.gpu_seconds - s.gpu_seconds,
            cpu_seconds=u.cpu_seconds - s.cpu_seconds,
            dollars=None if u.dollars is None or s.dollars is None else u.dollars - s.dollars,
        )


def tier_budget_left(limit: TierBudget | None, spend: Spend, start: TierStart) -> str | None:
    """None while the tier is within its share, else the reason it is spent."""
    if limit is None:
        return None
    return over(
        Limits.of(limit, "tier "),
        spend.attempts - start.attempts,
        time.monotonic() - start.at,
        start.used(spend),
    )


def call_refused(
    call: Usage,
    *,
    budget: Budget,
    spend: Spend,
    tier: TierBudget | None,
    start: TierStart,
    campaign: CampaignBudget | None,
    ledger: Ledger,
) -> tuple[str, str] | None:
    """Whether a model call costing about ``call`` may be made: None, or the level whose
    budget it would cross (``instance``, ``tier`` or ``campaign``) and why."""
    if not (_tokens(call) or call.dollars or call.cpu_seconds or call.gpu_seconds):
        return None
    checks: list[tuple[str, Limits, Usage]] = [("instance", Limits.of(budget), spend.usage)]
    if tier is not None:
        checks.append(("tier", Limits.of(tier, "tier "), start.used(spend)))
    if campaign is not None:
        checks.append(("campaign", Limits.of(campaign, "campaign "), ledger.spend().usage))
    for level, limits, used in checks:
        why = would_cross(limits, used, call)
        if why:
            return level, why
    return None


@dataclass
class TierSignals:
    """Cheap signals of how an LLM tier is doing, from its attempts (see EscalateRules)."""

    replies: int = 0
    malformed: int = 0
    logprob_sum: float = 0.0
    logprob_n: int = 0
    repeats: int = 0
    critic_rejections: int = 0
    rounds: int = 0
    best_fixed: int = 0
    stale_rounds: int = 0
    first: dict[str, float] | None = None  # as they stood after the first round
    _round_best: int = 0

    def observe(self, attempt: Attempt) -> None:
        self.replies += 1
        if attempt.status == AttemptStatus.malformed_edit:
            self.malformed += 1
        elif attempt.candidate is not None and attempt.candidate.score:
            self.logprob_sum += attempt.candidate.score
            self.logprob_n += 1
        critic = (attempt.candidate.model if attempt.candidate else {}).get("critic") or {}
        if (critic.get("verdict") or {}).get("verdict") == "reject":
            self.critic_rejections += 1
        fixed = len(attempt.critique.fixed) if attempt.critique else 0
        self._round_best = max(self._round_best, fixed)

    def end_round(self, repeats: int) -> None:
        self.repeats = repeats
        self.rounds += 1
        if self._round_best > self.best_fixed:
            self.best_fixed, self.stale_rounds = self._round_best, 0
        else:
            self.stale_rounds += 1
        self._round_best = 0
        if self.first is None:
            self.first = self.values()

    def mean_logprob(self) -> float | None:
        return self.logprob_sum / self.logprob_n if self.logprob_n else None

    def values(self) -> dict[str, float]:
        out = {
            "replies": float(self.replies),
            "malformed_rate": self.malformed / self.replies if self.replies else 0.0,
            "repeats": float(self.repeats),
            "critic_rejections": float(self.critic_rejections),
            "rounds": float(self.rounds),
            "best_fixed": float(max(self.best_fixed, self._round_best)),
            "stale_rounds": float(self.stale_rounds),
        }
        if (lp := self.mean_logprob()) is not None:
            out["mean_logprob"] = lp
        return out

    def record(self) -> dict[str, float]:
        """What the outcome keeps: the signals now, and after the first round (first_*)."""
        # A tier that resolved the instance in its first round never ended that round:
        # its first-round signals are the ones it ended with (tune-cascade's positives).
        snapshot = self.first if self.first is not None else self.values()
        first = {f"first_{k}": v for k, v in snapshot.items()}
        return {**self.values(), **first}


def early_escalation(rules: EscalateRules | None, s: TierSignals) -> str | None:
    """None to go on, else which rule says the tier is not getting there."""
    if rules is None:
        return None
    if s.replies >= rules.min_replies:
        rate = s.malformed / s.replies
        if rules.malformed_rate is not None and rate >= rules.malformed_rate:
            return (
                f"{s.malformed} of {s.replies} replies malformed "
                f"({rate:.0%} >= {rules.malformed_rate:.0%})"
            )
        lp = s.mean_logprob()
        if rules.min_logprob is not None and lp is not None and lp < rules.min_logprob:
            return f"mean token log-prob {lp:.2f} < {rules.min_logprob:.2f}"
    if rules.repeats is not None and s.repeats >= rules.repeats:
        return f"{s.repeats} replies repeated an edit already tried (limit {rules.repeats})"
    if rules.critic_rejections is not None and s.critic_rejections >= rules.critic_rejections:
        return f"the critic rejected {s.critic_rejections} candidate(s)"
    if rules.stale_rounds is not None and s.stale_rounds >= rules.stale_rounds:
        return (
            f"{s.stale_rounds} round(s) without fixing more target tests "
            f"(best so far: {s.best_fixed})"
        )
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
