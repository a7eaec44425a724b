"""The product metrics: what an instance run records, and how runs add up.

Pure functions over plain values: the tracker uses them to write a run, the reports use
them to read runs back (``InstanceRecord.from_run``), and both aggregate with ``Stats``.

Definitions (DESIGN.md, "Metrics the product reports"):

- patch correctness rate = accepted patches whose target tests pass with no regression
  / accepted (verified) patches
- resolved rate = resolved instances / instances
- regressions per 1,000 changes = tested attempts whose tests showed a regression * 1000
  / tested attempts
- well-formed-edit rate = attempts whose edit was not malformed / attempts
- cost per success = dollars / resolved instances; unknown (None) if any cost is unknown
- GPU-hours per success = GPU-hours / resolved instances
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from patchsmith.domain import Attempt, AttemptStatus, Outcome, OutcomeStatus, patch_lines
from patchsmith.infra.tracking_params import config_id, config_label, model_config

CFG = "cfg."  # per-model-configuration metric prefix: cfg.<id>.<counter>
CONFIG_PARAM = "model_config."  # param holding a configuration's JSON


@dataclass
class Stats:
    """Counters that add up across attempts, instances, tiers and configurations."""

    instances: int = 0
    resolved: int = 0
    accepted: int = 0
    correct: int = 0
    attempts: int = 0
    well_formed: int = 0
    tested: int = 0
    regressing: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    gpu_seconds: float = 0.0
    cpu_seconds: float = 0.0  # in-process model calls
    dollars: float = 0.0
    cost_unknown: bool = False
    attempts_to_success: int = 0
    wall_s_to_success: float = 0.0

    def add(self, other: Stats) -> None:
        """Add another Stats into this one (cost stays unknown once unknown)."""
        for f in fields(self):
            if f.name == "cost_unknown":
                self.cost_unknown = self.cost_unknown or other.cost_unknown
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @staticmethod
    def _ratio(num: float, den: float, scale: float = 1.0) -> float | None:
        return num * scale / den if den else None

    @property
    def resolved_rate(self) -> float | None:
        return self._ratio(self.resolved, self.instances)

    @property
    def patch_correctness_rate(self) -> float | None:
        return self._ratio(self.correct, self.accepted)

    @property
    def regressions_per_1000_changes(self) -> float | None:
        return self._ratio(self.regressing, self.tested, 1000.0)

    @property
    def well_formed_edit_rate(self) -> float | None:
        return self._ratio(self.well_formed, self.attempts)

    @property
    def cost_usd(self) -> float | None:
        return None if self.cost_unknown else self.dollars

    @property
    def cost_per_success_usd(self) -> float | None:
        return None if self.cost_unknown else self._ratio(self.dollars, self.resolved)

    @property
    def gpu_hours_per_success(self) -> float | None:
        return self._ratio(self.gpu_seconds / 3600.0, self.resolved)

    @property
    def tokens_per_success(self) -> float | None:
        return self._ratio(self.tokens_in + self.tokens_out, self.resolved)

    @property
    def cpu_seconds_per_success(self) -> float | None:
        return self._ratio(self.cpu_seconds, self.resolved)

    @property
    def mean_attempts_to_success(self) -> float | None:
        return self._ratio(self.attempts_to_success, self.resolved)

    @property
    def mean_wall_s_to_success(self) -> float | None:
        return self._ratio(self.wall_s_to_success, self.resolved)

    def metrics(self) -> dict[str, float]:
        """Campaign-level metrics; unknown values are left out (never written as 0)."""
        values: dict[str, float | None] = {
            "instances": self.instances,
            "resolved": self.resolved,
            "resolved_rate": self.resolved_rate,
            "accepted_patches": self.accepted,
            "patch_correctness_rate": self.patch_correctness_rate,
            "attempts": self.attempts,
            "attempts_tested": self.tested,
            "regressions_per_1000_changes": self.regressions_per_1000_changes,
            "well_formed_edit_rate": self.well_formed_edit_rate,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "gpu_hours": self.gpu_seconds / 3600.0,
            "gpu_hours_per_success": self.gpu_hours_per_success,
            "model_cpu_seconds": self.cpu_seconds,
            "model_cpu_seconds_per_success": self.cpu_seconds_per_success,
            "tokens_per_success": self.tokens_per_success,
            "cost_usd": self.cost_usd,
            "cost_per_success_usd": self.cost_per_success_usd,
            "mean_attempts_to_success": self.mean_attempts_to_success,
            "mean_wall_time_to_success_s": self.mean_wall_s_to_success,
        }
        return {k: float(v) for k, v in values.items() if v is not None}


def attempt_stats(attempt: Attempt) -> Stats:
    """One attempt as counters (tested = the sandbox ran its tests)."""
    tested = attempt.report is not None and attempt.report.infra_error is None
    regressing = tested and attempt.critique is not None and bool(attempt.critique.regressions)
    usage = attempt.usage
    return Stats(
        attempts=1,
        well_formed=int(attempt.status != AttemptStatus.malformed_edit),
        tested=int(tested),
        regressing=int(regressing),
        tokens_in=usage.prompt_tokens,
        tokens_out=usage.completion_tokens,
        gpu_seconds=usage.gpu_seconds,
        cpu_seconds=usage.cpu_seconds,
        dollars=usage.dollars or 0.0,
        cost_unknown=usage.dollars is None,
    )


@dataclass
class InstanceAccount:
    """What the tracker accumulates for one instance run between start and end."""

    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_config: dict[str, Stats] = field(default_factory=dict)
    accepted: Attempt | None = None

    def add(self, attempt: Attempt) -> str:
        """Count an attempt; returns its configuration id."""
        config = model_config(attempt)
        cid = config_id(config)
        self.configs[cid] = config
        self.by_config.setdefault(cid, Stats()).add(attempt_stats(attempt))
        if attempt.status == AttemptStatus.accepted:
            self.accepted = attempt
        return cid


def instance_summary(
    account: InstanceAccount, outcome: Outcome
) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
    """(metrics, tags, params) that end an instance run."""
    total = Stats()
    for stats in account.by_config.values():
        total.add(stats)
    resolved = outcome.status == OutcomeStatus.resolved
    accepted = resolved and outcome.patch is not None
    crit = account.accepted.critique if account.accepted else None
    correct = accepted and (crit is None or not (crit.regressions or crit.still_failing))
    attempts = max(outcome.attempts, total.attempts)
    usage = outcome.usage
    metrics: dict[str, float] = {
        "resolved": float(resolved),
        "accepted": float(accepted),
        "correct": float(correct),
        "attempts": float(attempts),
        "attempts_tested": float(total.tested),
        "regressions_introduced": float(total.regressing),
        "well_formed_edits": float(total.well_formed),
        "wall_time_s": outcome.duration_s,
        "tokens_in": float(usage.prompt_tokens),
        "tokens_out": float(usage.completion_tokens),
        "gpu_seconds": usage.gpu_seconds,
        "model_cpu_seconds": usage.cpu_seconds,
    }
    if total.attempts:
        metrics["well_formed_edit_rate"] = total.well_formed / total.attempts
    if resolved:
        metrics["attempts_to_success"] = float(
            account.accepted.number if account.accepted else attempts
        )
    if usage.dollars is not None:
        metrics["dollars"] = usage.dollars
    for tier, values in outcome.signals.items():  # the LLM tiers' escalation signals
        for name, value in values.items():
            metrics[f"signal.{tier}.{name}"] = value
    winner = config_id(model_config(account.accepted)) if account.accepted and resolved else None
    for cid, stats in account.by_config.items():
        for name in ("attempts", "well_formed", "tested", "regressing", "tokens_in", "tokens_out"):
            metrics[f"{CFG}{cid}.{name}"] = float(getattr(stats, name))
        metrics[f"{CFG}{cid}.gpu_seconds"] = stats.gpu_seconds
        metrics[f"{CFG}{cid}.cpu_seconds"] = stats.cpu_seconds
        metrics[f"{CFG}{cid}.cost_unknown"] = float(stats.cost_unknown)
        if not stats.cost_unknown:
            metrics[f"{CFG}{cid}.dollars"] = stats.dollars
        metrics[f"{CFG}{cid}.resolved"] = float(cid == winner)
        metrics[f"{CFG}{cid}.correct"] = float(cid == winner and correct)
    tags = {
        "patchsmith.status": str(outcome.status),
        "patchsmith.cost_unknown": str(usage.dollars is None).lower(),
    }
    if outcome.give_up is not None and not resolved:
        tags["patchsmith.give_up"] = outcome.give_up.value
    if winner:
        tags["patchsmith.resolved_config"] = winner
        tags["patchsmith.resolved_tier"] = account.configs[winner]["tier"]
    elif resolved and outcome.tier:
        tags["patchsmith.resolved_tier"] = outcome.tier
    if outcome.route:  # intent routing's decision and its similarities
        tags["patchsmith.route"] = str(outcome.route.get("first", ""))
        for key, found in outcome.route.items():
            if isinstance(found, float):
                metrics[f"route.{key}"] = found
    if outcome.rules:
        tags["patchsmith.rules"] = ",".join(outcome.rules)
    if outcome.needs_review:
        tags["patchsmith.needs_review"] = "true"
    if outcome.goal is not None:  # a refactoring: its recipe and how far it got
        goal = outcome.goal
        tags["patchsmith.recipe"] = goal.recipe
        tags["patchsmith.refactor_state"] = goal.state
        metrics["goal.occurrences_before"] = float(goal.before)
        metrics["goal.occurrences_after"] = float(goal.after)
        metrics["goal.migrated_share"] = (
            (goal.before - goal.after) / goal.before if goal.before else 1.0
        )
        for tier, n in goal.by_tier.items():
            metrics[f"goal.migrated_by.{tier}"] = float(n)
        if outcome.patch:
            metrics["goal.changeset_lines"] = float(patch_lines(outcome.patch))
    params = {
        f"{CONFIG_PARAM}{cid}": json.dumps(cfg, sort_keys=True)[:6000]
        for cid, cfg in account.configs.items()
    }
    return metrics, tags, params


@dataclass
class InstanceRecord:
    """An instance run read back from MLflow."""

    run_id: str
    total: Stats
    configs: dict[str, dict[str, Any]]
    by_config: dict[str, Stats]
    give_up: str | None = None
    """Why an unresolved instance ended (``Outcome.give_up``), when it was recorded."""

    @classmethod
    def from_run(
        cls, run_id: str, metrics: dict[str, float], tags: dict[str, str], params: dict[str, str]
    ) -> InstanceRecord:
        """Rebuild counters from a run's latest metrics, tags and params."""
        m = metrics
        resolved = int(m.get("resolved", 0))
        total = Stats(
            instances=1,
            resolved=resolved,
            accepted=int(m.get("accepted", 0)),
            correct=int(m.get("correct", 0)),
            attempts=int(m.get("attempts", 0)),
            well_formed=int(m.get("well_formed_edits", 0)),
            tested=int(m.get("attempts_tested", 0)),
            regressing=int(m.get("regressions_introduced", 0)),
            tokens_in=int(m.get("tokens_in", 0)),
            tokens_out=int(m.get("tokens_out", 0)),
            gpu_seconds=m.get("gpu_seconds", 0.0),
            cpu_seconds=m.get("model_cpu_seconds", 0.0),
            dollars=m.get("dollars", 0.0),
            cost_unknown="dollars" not in m,
            attempts_to_success=int(m.get("attempts_to_success", 0)) if resolved else 0,
            wall_s_to_success=m.get("wall_time_s", 0.0) if resolved else 0.0,
        )
        configs = {
            k[len(CONFIG_PARAM) :]: json.loads(v)
            for k, v in params.items()
            if k.startswith(CONFIG_PARAM)
        }
        by_config: dict[str, Stats] = {}
        for cid in configs:

            def get(name: str, cid: str = cid) -> float:
                return m.get(f"{CFG}{cid}.{name}", 0.0)

            by_config[cid] = Stats(
                instances=1,
                resolved=int(get("resolved")),
                accepted=int(get("resolved")),
                correct=int(get("correct")),
                attempts=int(get("attempts")),
                well_formed=int(get("well_formed")),
                tested=int(get("tested")),
                regressing=int(get("regressing")),
                tokens_in=int(get("tokens_in")),
                tokens_out=int(get("tokens_out")),
                gpu_seconds=get("gpu_seconds"),
                cpu_seconds=get("cpu_seconds"),
                dollars=get("dollars"),
                cost_unknown=bool(get("cost_unknown")) or f"{CFG}{cid}.dollars" not in m,
                attempts_to_success=total.attempts_to_success if get("resolved") else 0,
                wall_s_to_success=total.wall_s_to_success if get("resolved") else 0.0,
            )
        give_up = None if resolved else tags.get("patchsmith.give_up")
        return cls(run_id, total, configs, by_config, give_up)


@dataclass
class Summary:
    """A set of instance runs added up overall, per tier and per model configuration."""

    overall: Stats
    by_tier: dict[str, Stats]
    by_config: dict[str, Stats]  # keyed by label (config_label)
    config_tier: dict[str, str]  # label → tier
    unresolved: dict[str, int] = field(default_factory=dict)
    """Unresolved instances by give-up reason (``unknown`` where none was recorded)."""


def summarize(records: list[InstanceRecord]) -> Summary:
    """Add up instance records. Tiers and configurations count instances that used them."""
    overall = Stats()
    by_tier: dict[str, Stats] = {}
    by_config: dict[str, Stats] = {}
    config_tier: dict[str, str] = {}
    for record in records:
        overall.add(record.total)
        for cid, stats in record.by_config.items():
            config = record.configs[cid]
            label, tier = config_label(config), str(config.get("tier"))
            config_tier[label] = tier
            by_config.setdefault(label, Stats()).add(stats)
            by_tier.setdefault(tier, Stats()).add(stats)
    # a tier used by several configurations of one instance is still one instance
    for tier in by_tier:
        by_tier[tier].instances = sum(
            any(str(r.configs[c].get("tier")) == tier for c in r.configs) for r in records
        )
    unresolved: dict[str, int] = {}
    for record in records:
        if not record.total.resolved:
            reason = record.give_up or "unknown"
            unresolved[reason] = unresolved.get(reason, 0) + 1
    return Summary(overall, by_tier, by_config, config_tier, unresolved)
