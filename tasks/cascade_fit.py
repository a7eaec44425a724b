"""``patchsmith tune-cascade``: fit escalation rules from recorded outcomes.

Every outcome keeps, per LLM tier it reached, the tier's signals after its first round
(``first_*``, see ``policy.TierSignals``). One sample per (outcome, tier): those first-round
signals, labelled by whether that tier went on to resolve the instance. Two fits:

- a logistic regression over the standardized signals (plain gradient descent with a
  little L2; no numerical library needed for a handful of features), scored by
  leave-one-out accuracy against always predicting the majority label;
- per signal, the threshold that best separates the tiers that got there from those that
  did not (a decision stump), written as the ``escalate:`` rules of a campaign tier: past it
  after one round, the tier hands over.

Small samples fit badly; the report says how many there were and how the fit compares with
the majority baseline, so nobody mistakes four outcomes for evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from patchsmith.config import EscalateRules
from patchsmith.domain import Outcome, OutcomeStatus
from patchsmith.infra.store import Store

# Signal → the EscalateRules field it fits and the direction that means "hand over".
RULES: dict[str, tuple[str, str]] = {
    "first_malformed_rate": ("malformed_rate", "high"),
    "first_mean_logprob": ("min_logprob", "low"),
    "first_repeats": ("repeats", "high"),
    "first_critic_rejections": ("critic_rejections", "high"),
}
# Not first_stale_rounds: after one round it is 0 exactly when that round resolved the
# instance, so it would only restate the label.
FEATURES = list(RULES)


@dataclass(frozen=True)
class Sample:
    instance_id: str
    tier: str
    features: dict[str, float]
    resolved: bool  # this tier resolved the instance


@dataclass(frozen=True)
class Stump:
    signal: str
    rule: str
    threshold: float
    accuracy: float


@dataclass(frozen=True)
class Fit:
    samples: int
    positives: int
    weights: dict[str, float]
    bias: float
    loo_accuracy: float | None  # None with fewer than 2 samples of each label
    majority_accuracy: float
    stumps: list[Stump]

    def rules(self) -> dict[str, float]:
        """The ``escalate:`` rules from the stumps that beat the majority baseline (checked
        by EscalateRules itself; they apply after one reply, as the signals were taken)."""
        out: dict[str, float] = {}
        for s in self.stumps:
            if s.accuracy <= self.majority_accuracy:
                continue
            if s.rule == "malformed_rate" and s.threshold > 0:
                out[s.rule] = s.threshold
            elif s.rule == "min_logprob" and s.threshold < 0:
                out[s.rule] = s.threshold + 1e-6  # the stump hands over at <= threshold
            elif s.rule not in ("malformed_rate", "min_logprob"):
                out[s.rule] = max(1, math.ceil(s.threshold))
        if out:
            out = {"min_replies": 1, **out}
            EscalateRules.model_validate(out)
        return out


def samples_from(outcomes: list[Outcome]) -> list[Sample]:
    out = []
    for o in outcomes:
        for tier, values in o.signals.items():
            if values.get("first_replies", 0) < 1:
                continue  # the tier made no reply at all (refused, or stopped by a budget)
            features = {f: values.get(f, 0.0) for f in FEATURES}
            won = o.status == OutcomeStatus.resolved and o.tier == tier
            out.append(Sample(o.instance_id, tier, features, won))
    return out


def store_samples(store: Store) -> list[Sample]:
    """Samples from every campaign run in the store."""
    outcomes: list[Outcome] = []
    for run in store.campaign_runs():
        outcomes.extend(store.outcomes(run["id"]))
    return samples_from(outcomes)


def _scale(samples: list[Sample]) -> tuple[dict[str, float], dict[str, float]]:
    mean = {f: sum(s.features[f] for s in samples) / len(samples) for f in FEATURES}
    std = {}
    for f in FEATURES:
        var = sum((s.features[f] - mean[f]) ** 2 for s in samples) / len(samples)
        std[f] = math.sqrt(var) or 1.0
    return mean, std


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))


def logistic(
    samples: list[Sample], *, steps: int = 2000, rate: float = 0.1, l2: float = 0.01
) -> tuple[dict[str, float], float]:
    """Weights (per raw signal) and bias of P(the tier resolves | first-round signals)."""
    mean, std = _scale(samples)
    xs = [[(s.features[f] - mean[f]) / std[f] for f in FEATURES] for s in samples]
    ys = [1.0 if s.resolved else 0.0 for s in samples]
    w, b = [0.0] * len(FEATURES), 0.0
    n = len(samples)
    for _ in range(steps):
        gw, gb = [l2 * wi for wi in w], 0.0
        for x, y in zip(xs, ys, strict=True):
            err = _sigmoid(b + sum(wi * xi for wi, xi in zip(w, x, strict=True))) - y
            gb += err / n
            for i, xi in enumerate(x):
                gw[i] += err * xi / n
        w = [wi - rate * g for wi, g in zip(w, gw, strict=True)]
        b -= rate * gb
    # Back to raw units: w·(x - mean)/std + b.
    weights = {f: w[i] / std[f] for i, f in enumerate(FEATURES)}
    bias = b - sum(w[i] * mean[f] / std[f] for i, f in enumerate(FEATURES))
    return weights, bias


def predict(weights: dict[str, float], bias: float, sample: Sample) -> bool:
    return bias + sum(weights[f] * sample.features[f] for f in FEATURES) > 0


def _loo(samples: list[Sample]) -> float | None:
    labels = {s.resolved for s in samples}
    if len(samples) < 4 or len(labels) < 2:
        return None
    right = 0
    for i, held in enumerate(samples):
        weights, bias = logistic(samples[:i] + samples[i + 1 :], steps=500)
        right += predict(weights, bias, held) == held.resolved
    return right / len(samples)


def _stump(samples: list[Sample], signal: str) -> Stump:
    rule, direction = RULES[signal]
    values = sorted({s.features[signal] for s in samples})
    best = Stump(signal, rule, values[0], 0.0)
    for v in values:
        # hand over when the signal is past v: predict "not resolved" there
        right = sum(
            (s.features[signal] >= v if direction == "high" else s.features[signal] <= v)
            != s.resolved
            for s in samples
        )
        accuracy = right / len(samples)
        if accuracy > best.accuracy:
            best = Stump(signal, rule, v, accuracy)
    return best


def fit(samples: list[Sample]) -> Fit:
    if not samples:
        raise ValueError("no outcomes with first-round signals: run a campaign with LLM tiers")
    positives = sum(s.resolved for s in samples)
    weights, bias = logistic(samples)
    majority = max(positives, len(samples) - positives) / len(samples)
    return Fit(
        samples=len(samples),
        positives=positives,
        weights=weights,
        bias=bias,
        loo_accuracy=_loo(samples),
        majority_accuracy=majority,
        stumps=[_stump(samples, f) for f in FEATURES],
    )
