"""Budgets the orchestrator enforces: per instance, per tier, per campaign, and before each
model call (real sandbox, store and workspaces; scripted models that keep their requests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import make_stats_project
from test_llm_campaign import FIX, SEARCH
from typer.testing import CliRunner

from patchsmith import preflight
from patchsmith.cli import app
from patchsmith.config import Campaign
from patchsmith.domain import Budget, CampaignBudget, GiveUp, OutcomeStatus, Usage
from patchsmith.infra.llm.config import ModelConfig
from patchsmith.infra.llm.scripted import ScriptedBackend
from patchsmith.infra.store import Store
from patchsmith.tasks import cascade_fit
from patchsmith.tasks.campaign import open_session, run_instance, work_key
from patchsmith.tasks.llm.models import use_backend
from patchsmith.tasks.llm.transcript import prompt_digest
from patchsmith.tasks.policy import Ledger, Limits, Spend, TierStart, call_refused, over
from patchsmith.tasks.repair import DIRECT

pytestmark = [
    pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning"),
    pytest.mark.usefixtures("fresh_backends"),
]

WRONG = """stats.py
<<<<<<< SEARCH
    return f"n={len(values)} mean={mean(values):.2f}"
=======
    return f"n={len(values)} mean={mean(values):.3f}"
>>>>>>> REPLACE
"""


def scripted(name: str, replies: list[str], **tier: Any) -> tuple[dict[str, Any], ScriptedBackend]:
    """An LLM tier on a scripted model, and that model (it keeps every request it got)."""
    model = {"model": name, "backend": "scripted", "options": {"replies": replies, "cycle": True}}
    backend = ScriptedBackend(ModelConfig.model_validate(model))
    use_backend(backend.config, backend)
    return {"kind": "llm", "name": name, "model": model, "planner": False, **tier}, backend


def campaign(project: Path, tiers: list[dict[str, Any]], **extra: Any) -> Campaign:
    return Campaign.model_validate(campaign_data(project, tiers, **extra))


def campaign_data(project: Path, tiers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": "budgets",
        "instances": [
            {
                "id": "stats-describe",
                "repo": str(project),
                "test_cmd": "python -m pytest -q tests/test_describe.py",
            }
        ],
        "sandbox": {"timeout_s": 60, "env": {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}},
        "budget": {"max_attempts": 20, "max_wall_s": 120},
        "tiers": tiers,
        **extra,
    }


def test_a_model_call_that_would_cross_the_token_budget_is_not_made(
    home: Path, tmp_path: Path
) -> None:
    tier, backend = scripted("coder", [FIX], rounds=1)
    c = campaign(
        make_stats_project(tmp_path),
        [tier],
        budget={"max_attempts": 20, "max_wall_s": 120, "max_tokens": 50},
    )
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, c.instances[0], DIRECT)

    assert backend.requests == []  # the fix was one call away, but the call did not fit
    assert outcome.status == OutcomeStatus.unresolved and outcome.give_up == GiveUp.budget
    assert "coder: token budget: the next model call needs about" in outcome.reasons[-1]
    assert "50 left; not made" in outcome.reasons[-1]
    assert outcome.usage.prompt_tokens == 0


def test_a_tier_whose_share_cannot_pay_for_a_call_escalates_without_calling(
    home: Path, tmp_path: Path
) -> None:
    small, small_model = scripted("small", [WRONG], rounds=2, budget={"max_tokens": 10})
    big, big_model = scripted("big", [FIX], rounds=1)
    c = campaign(make_stats_project(tmp_path), [small, big])
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, c.instances[0], DIRECT)

    assert small_model.requests == [] and len(big_model.requests) == 1
    assert outcome.status == OutcomeStatus.resolved and outcome.tier == "big"
    assert any("small: tier token budget: the next model call" in r for r in outcome.reasons)


def test_replies_that_no_candidate_paid_for_still_count(home: Path, tmp_path: Path) -> None:
    """Two samples, the same wrong edit twice: the repeat is not tested, but its tokens
    are in the instance's spend (and so in its budget)."""
    tier, backend = scripted("coder", [WRONG], rounds=1, samples=2)
    c = campaign(make_stats_project(tmp_path), [tier])
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, c.instances[0], DIRECT)

    attempts = session.store.attempts_for_key(work_key(session, c.instances[0]))
    assert len(backend.requests) == 2 and len(attempts) == 1
    # The attempt records which exact prompt it answered.
    assert attempts[0].model["prompt_sha256"] == prompt_digest(backend.requests[0].messages)
    charged = attempts[0].usage.prompt_tokens
    assert charged > 0 and outcome.usage.prompt_tokens == 2 * charged
    assert session.ctx.ledger.spend().usage.prompt_tokens == 2 * charged


def test_the_campaign_budget_binds_over_all_instances(home: Path, tmp_path: Path) -> None:
    project = make_stats_project(tmp_path)
    c = campaign(project, [SEARCH], campaign_budget={"max_attempts": 2}, concurrency=1)
    window = c.instances[0].model_copy(
        update={
            "instance_id": "stats-window",
            "test_cmd": "python -m pytest -q tests/test_windows.py",
        }
    )
    c = c.model_copy(update={"instances": [c.instances[0], window]})
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    first = run_instance(session, c.instances[0], DIRECT)
    second = run_instance(session, window, DIRECT)

    assert first.attempts == 2 and "campaign attempt budget spent (2/2)" in first.reasons[-1]
    # Search would fix this one, but the campaign has nothing left for it.
    assert second.status == OutcomeStatus.unresolved and second.attempts == 0
    assert second.give_up == GiveUp.budget
    assert second.reasons[-1] == "campaign attempt budget spent (2/2)"


def test_model_seconds_and_dollars_are_limits_too() -> None:
    used = Usage(prompt_tokens=10, cpu_seconds=31.0, gpu_seconds=2.0, dollars=0.5)
    cpu = Limits.of(Budget(max_cpu_s=30))
    assert over(cpu, 0, 0.0, used) == "model CPU budget spent (31s/30s)"
    gpu = Limits.of(CampaignBudget(max_gpu_s=2), "campaign ")
    assert over(gpu, 0, 0.0, used) == "campaign model GPU budget spent (2s/2s)"
    assert over(Limits.of(Budget(max_dollars=1.0)), 0, 0.0, used) is None

    # Before a call: the instance's dollars would cross; a call without a price cannot.
    spend = Spend(usage=used)
    ledger = Ledger()
    args: dict[str, Any] = {
        "spend": spend,
        "tier": None,
        "start": TierStart.of(Spend()),
        "campaign": None,
        "ledger": ledger,
    }
    call = Usage(prompt_tokens=100, dollars=0.6)
    level, why = call_refused(call, budget=Budget(max_dollars=1.0), **args) or ("", "")
    assert level == "instance" and "costs about $0.6000, $0.5000 left; not made" in why
    assert call_refused(call, budget=Budget(max_dollars=1.2), **args) is None
    slow = Usage(completion_tokens=10, cpu_seconds=40.0)  # at the rate earlier replies took
    assert call_refused(slow, budget=Budget(max_cpu_s=60), **args) == (
        "instance",
        "model CPU budget: the next model call needs about 40s, 29s left; not made",
    )
    ledger.charge(Usage(completion_tokens=950))
    campaign_cap = CampaignBudget(max_tokens=1000)
    refused = call_refused(call, budget=Budget(), **{**args, "campaign": campaign_cap})
    assert refused == (
        "campaign",
        "campaign token budget: the next model call needs about 100, 50 left; not made",
    )


def _llm_tier(rounds: int, **model: Any) -> dict[str, Any]:
    return {
        "kind": "llm",
        "name": "coder",
        "model": {"model": "coder", "backend": "scripted", **model},
        "rounds": rounds,
        "samples": 2,
        "planner": False,
        "context_tokens": 200,
        "max_new_tokens": 50,
    }


def test_the_preflight_worst_case_scales_with_the_tiers_and_stops_at_the_budgets(
    tmp_path: Path,
) -> None:
    project = make_stats_project(tmp_path)
    priced = {"prices": {"per_1k_completion": 2.0}}
    one = preflight.estimate(campaign(project, [SEARCH, _llm_tier(1, **priced)]))
    two = preflight.estimate(campaign(project, [SEARCH, _llm_tier(2, **priced)]))
    assert one.tiers[0].requests == 2 and two.tiers[0].requests == 4
    assert two.tokens == 2 * one.tokens and one.tokens > 2 * (200 + 50)  # prompts and replies
    assert two.dollars == pytest.approx(4 * 50 / 1000 * 2.0)  # only replies are priced
    assert one.attempts == 20 and one.wall_s == 120
    capped = preflight.estimate(
        campaign(project, [_llm_tier(2)], campaign_budget={"max_tokens": 123, "max_attempts": 7})
    )
    assert capped.tokens == 123 and capped.attempts == 7 and capped.dollars is None
    assert any("price unknown" in line for line in capped.lines())


def test_the_preflight_gives_the_rates_this_store_recorded(home: Path, tmp_path: Path) -> None:
    tier, _backend = scripted("coder", [WRONG, WRONG.replace(".3f", ".4f")], rounds=2)
    data = campaign_data(make_stats_project(tmp_path), [tier])
    c = Campaign.model_validate(data)
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    run_instance(session, c.instances[0], DIRECT)
    attempts = session.store.attempts_for_key(work_key(session, c.instances[0]))
    calls = [a for a in attempts if a.usage.completion_tokens]
    assert len(calls) == 2

    estimate = preflight.estimate(c, session.store).tiers[0]
    assert estimate.recorded == 2
    mean = sum(a.usage.prompt_tokens + a.usage.completion_tokens for a in calls) / 2
    assert estimate.tokens_expected == pytest.approx(mean)
    (tmp_path / "campaign.yaml").write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["estimate", str(tmp_path / "campaign.yaml")])
    assert result.exit_code == 0, result.output
    assert "2 recorded calls" in result.output and "pre-flight: 1 instance(s)" in result.output


# ------------------------------------------------------------ confidence-gated escalation


def test_a_tier_whose_replies_are_malformed_hands_over_early(home: Path, tmp_path: Path) -> None:
    rules = {"malformed_rate": 0.5, "min_replies": 2}
    small, small_model = scripted("small", ["I would change it."], rounds=5, escalate=rules)
    big, _ = scripted("big", [FIX], rounds=1)
    c = campaign(make_stats_project(tmp_path), [small, big])
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, c.instances[0], DIRECT)

    assert len(small_model.requests) == 2  # of its 5 rounds
    assert outcome.status == OutcomeStatus.resolved and outcome.tier == "big"
    assert "small: escalating early: 2 of 2 replies malformed (100% >= 50%)" in outcome.reasons
    recorded = outcome.signals["small"]
    assert recorded["malformed_rate"] == 1.0 and recorded["replies"] == 2
    assert recorded["first_replies"] == 1 and outcome.signals["big"]["best_fixed"] == 1
    # Resolved within its first round: its first-round signals are still recorded (the
    # positives tune-cascade learns from).
    assert outcome.signals["big"]["first_replies"] == 1
    stored = session.store.find_outcome(work_key(session, c.instances[0]))
    assert stored is not None and stored.signals == outcome.signals


@pytest.mark.parametrize(
    ("rules", "replies", "why"),
    [
        ({"repeats": 1}, [WRONG], "1 replies repeated an edit already tried (limit 1)"),
        (
            {"stale_rounds": 2},
            [WRONG, WRONG.replace(".3f", ".4f"), WRONG.replace(".3f", ".5f")],
            "2 round(s) without fixing more target tests (best so far: 0)",
        ),
    ],
)
def test_the_last_tier_stops_early_on_its_signals(
    home: Path, tmp_path: Path, rules: dict[str, Any], replies: list[str], why: str
) -> None:
    tier, model = scripted("coder", replies, rounds=5, escalate=rules)
    c = campaign(make_stats_project(tmp_path), [tier])
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, c.instances[0], DIRECT)

    assert len(model.requests) == 2  # of 5 rounds
    assert (
        outcome.give_up == GiveUp.signals and outcome.reasons[-1] == f"coder: stopped early: {why}"
    )


def test_tune_cascade_fits_a_rule_that_separates_recorded_tier_runs(home: Path) -> None:
    """Tier runs whose first round was all malformed never resolved; the others did."""
    from patchsmith.domain import Instance, Outcome

    c = Campaign.model_validate(
        {"name": "fit", "instances": [{"id": "x", "repo": str(home), "test_cmd": "true"}]}
    )
    with Store.open(home=home) as store:
        cid = store.start_campaign(c, config={}, flow_run_id=None)
        for i in range(10):
            bad = i % 2 == 0
            first = {"first_replies": 1.0, "first_malformed_rate": 1.0 if bad else 0.0}
            outcome = Outcome(
                instance_id=f"i{i}",
                status=OutcomeStatus.unresolved if bad else OutcomeStatus.resolved,
                tier=None if bad else "small",
                signals={"small": first},
            )
            inst = Instance(instance_id=f"i{i}", repo=str(home), test_cmd="true")
            run = store.start_instance(cid, inst, f"key{i}")
            store.record_outcome(run, f"key{i}", outcome)
        samples = cascade_fit.store_samples(store)
    result = cascade_fit.fit(samples)
    assert result.samples == 10 and result.positives == 5 and result.majority_accuracy == 0.5
    assert result.loo_accuracy == 1.0
    assert result.weights["first_malformed_rate"] < 0  # malformed first replies: less likely
    assert result.rules() == {"min_replies": 1, "malformed_rate": 1.0}

    shown = CliRunner().invoke(app, ["tune-cascade"])
    assert shown.exit_code == 0, shown.output
    assert "leave-one-out accuracy 100%" in shown.output and "malformed_rate: 1.0" in shown.output


def test_signals_route_and_rules_reach_the_instance_run() -> None:
    from patchsmith.domain import Outcome
    from patchsmith.infra.tracking_metrics import InstanceAccount, instance_summary

    outcome = Outcome(
        instance_id="i",
        status=OutcomeStatus.unresolved,
        signals={"small": {"replies": 2.0, "first_malformed_rate": 1.0}},
        route={"mode": "embed", "first": "small", "similarity_model": 0.3},
        rules=["core", "payments"],
    )
    metrics, tags, _params = instance_summary(InstanceAccount(), outcome)
    assert tags["patchsmith.route"] == "small" and metrics["route.similarity_model"] == 0.3
    assert tags["patchsmith.rules"] == "core,payments"
    assert metrics["signal.small.replies"] == 2.0
    assert metrics["signal.small.first_malformed_rate"] == 1.0


# ------------------------------------------------------------ multi-pass modes


def test_max_mode_samples_and_critiques_every_candidate(home: Path, tmp_path: Path) -> None:
    """fast, then max on the same model: max draws 4 replies and its critic reviews each
    tested candidate; the critic's calls are in the instance's cumulative cost."""
    from patchsmith.config import LLMTier

    model = {"model": "coder", "backend": "scripted"}
    assert LLMTier.model_validate({"model": model, "mode": "max"}).samples == 4
    explicit = LLMTier.model_validate({"model": model, "mode": "max", "samples": 2})
    assert explicit.samples == 2 and explicit.critic is not None
    assert explicit.critic.review == "all"
    assert LLMTier.model_validate({"model": model}).critic is None  # fast: as given

    wrong = [WRONG.replace(".3f", f".{n}f") for n in range(3, 9)]
    fast, _ = scripted("fast", wrong[:1], rounds=1)
    deep, backend = scripted("deep", wrong[1:], rounds=1, mode="max")
    reject = '{"verdict": "reject", "confidence": 0.8, "reasons": ["not the median"]}'
    critic = {
        "model": "critic",
        "backend": "scripted",
        "options": {"replies": [reject], "cycle": True},
    }
    deep["critic"] = {"review": "all", "model": critic}
    c = campaign(make_stats_project(tmp_path), [fast, deep])
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, c.instances[0], DIRECT)

    attempts = session.store.attempts_for_key(work_key(session, c.instances[0]))
    deep_attempts = [a for a in attempts if a.tier == "deep"]
    assert len(backend.requests) == 4 and len(deep_attempts) == 4
    assert all(a.model["critic"]["verdict"]["verdict"] == "reject" for a in deep_attempts)
    assert outcome.signals["deep"]["critic_rejections"] == 4
    spent = sum(a.usage.prompt_tokens for a in attempts)
    generated = sum(sum(len(m.content.split()) for m in r.messages) for r in backend.requests)
    assert outcome.usage.prompt_tokens == spent > generated  # the critic's prompts count too
