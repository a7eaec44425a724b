"""Pre-flight estimate: what a campaign may spend at most, before it starts.

The worst case is every instance reaching every tier and using all of it: each LLM tier's
rounds x samples requests (and its planner), each request a full prompt (the tier's context
budget plus the prompts' text) and a full reply. Where this store has recorded calls of the
same model, the estimate also gives the *expected* size of a call and the model seconds per
call as this machine ran them. The budgets (per instance and per campaign) then cap the
totals. ``patchsmith run`` prints it and the campaign's MLflow run records it
(``preflight_*`` params); ``patchsmith estimate`` prints it alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from patchsmith.config import Campaign, LLMTier
from patchsmith.domain import Usage
from patchsmith.infra.store import Store
from patchsmith.tasks.llm.context import PLAN_TOKENS, first_prompt_tokens


@dataclass(frozen=True)
class TierEstimate:
    """One LLM tier, per instance that reaches it."""

    tier: str
    model: str
    requests: int
    tokens: int  # at most
    dollars: float | None  # at most; None: no price configured
    recorded: int  # calls of this model in the store
    tokens_expected: float | None  # per request, from the recorded calls
    cpu_s_expected: float | None  # model CPU-seconds per request, recorded
    gpu_s_expected: float | None


@dataclass(frozen=True)
class Preflight:
    instances: int
    concurrency: int
    attempts: int  # at most, over the campaign
    wall_s: float  # at most, with every slot busy
    tokens: int  # at most
    dollars: float | None
    tiers: list[TierEstimate]

    def params(self) -> dict[str, float]:
        """What the campaign's MLflow run records (``preflight_*``)."""
        out: dict[str, float] = {
            "preflight_max_attempts": self.attempts,
            "preflight_max_wall_s": round(self.wall_s),
            "preflight_max_tokens": self.tokens,
        }
        if self.dollars is not None:
            out["preflight_max_dollars"] = round(self.dollars, 4)
        return out

    def lines(self) -> list[str]:
        """The estimate for people, one line per fact."""
        out = [
            f"pre-flight: {self.instances} instance(s), {self.concurrency} at once; at most "
            f"{self.attempts} attempts and {self.wall_s / 60:.0f} min",
        ]
        for t in self.tiers:
            price = f", ≤ ${t.dollars:.4f}" if t.dollars is not None else ", price unknown"
            line = (
                f"  {t.tier} ({t.model}): ≤ {t.requests} request(s) and ≤ {t.tokens} tokens "
                f"per instance{price}"
            )
            if t.recorded and t.tokens_expected is not None:
                line += f"; {t.recorded} recorded calls: ~{t.tokens_expected:.0f} tokens"
                if t.cpu_s_expected:
                    line += f", ~{t.cpu_s_expected:.0f} model CPU-s"
                if t.gpu_s_expected:
                    line += f", ~{t.gpu_s_expected:.0f} GPU-s"
                line += " per request"
            out.append(line)
        if self.tiers:
            total = f"  model tokens at most {self.tokens}"
            if self.dollars is not None:
                total += f", ${self.dollars:.4f}"
            out.append(total + " for the campaign (budgets included)")
        return out


def _tier(tier: LLMTier, store: Store | None) -> TierEstimate:
    requests = tier.rounds * tier.samples
    per_request = first_prompt_tokens(tier.edit_format, tier.context_tokens)
    prompt, completion = requests * per_request, requests * tier.max_new_tokens
    if tier.planner:
        requests += 1
        prompt += per_request
        completion += min(PLAN_TOKENS, tier.max_new_tokens)
    recorded, usage = store.model_usage(str(tier.model.model)) if store else (0, Usage())
    per = (lambda total: total / recorded) if recorded else (lambda total: None)
    return TierEstimate(
        tier=tier.name,
        model=str(tier.model.model),
        requests=requests,
        tokens=prompt + completion,
        dollars=tier.model.prices.dollars(prompt, completion, 0.0),
        recorded=recorded,
        tokens_expected=per(usage.prompt_tokens + usage.completion_tokens),
        cpu_s_expected=per(usage.cpu_seconds),
        gpu_s_expected=per(usage.gpu_seconds),
    )


def _cap(value: float, *limits: float | None) -> float:
    return min([value, *(x for x in limits if x is not None)])


def estimate(campaign: Campaign, store: Store | None = None) -> Preflight:
    """The campaign's worst case (``store``: where recorded calls give expected rates)."""
    n = len(campaign.instances)
    tiers = [_tier(t, store) for t in campaign.tiers if isinstance(t, LLMTier)]
    budget, whole = campaign.budget, campaign.campaign_budget
    per_instance = sum(t.tokens for t in tiers)
    if budget.max_tokens is not None:
        per_instance = min(per_instance, budget.max_tokens)
    tokens = int(_cap(n * per_instance, whole.max_tokens if whole else None))
    priced = [t.dollars for t in tiers]
    dollars: float | None = None
    if tiers and all(d is not None for d in priced):
        one = _cap(sum(d for d in priced if d is not None), budget.max_dollars)
        dollars = _cap(n * one, whole.max_dollars if whole else None)
    slots = min(campaign.concurrency, n)
    return Preflight(
        instances=n,
        concurrency=slots,
        attempts=int(_cap(n * budget.max_attempts, whole.max_attempts if whole else None)),
        wall_s=_cap(-(-n // slots) * budget.max_wall_s, whole.max_wall_s if whole else None),
        tokens=tokens,
        dollars=dollars,
        tiers=tiers,
    )
