"""Business rules: patterns that force a minimum tier, a critic, more verification or a
person's review (real sandbox, store and workspaces; scripted models)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from helpers import make_stats_project
from pydantic import ValidationError
from test_budgets import FIX, SEARCH, campaign, scripted

from patchsmith.domain import OutcomeStatus
from patchsmith.tasks.campaign import open_session, run_instance, work_key
from patchsmith.tasks.repair import DIRECT, verify_step

pytestmark = [
    pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning"),
    pytest.mark.usefixtures("fresh_backends"),
]
ACCEPT = '{"verdict": "accept", "confidence": 0.9, "reasons": ["minimal"]}'


def test_a_minimum_tier_skips_the_cheaper_tiers(home: Path, tmp_path: Path) -> None:
    coder, _ = scripted("coder", [FIX], rounds=1)
    rule = {"name": "payments", "repos": ["sta*"], "min_tier": "coder"}
    c = campaign(make_stats_project(tmp_path), [SEARCH, coder], rules=[rule])
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, c.instances[0], DIRECT)

    attempts = session.store.attempts_for_key(work_key(session, c.instances[0]))
    assert {a.tier for a in attempts} == {"coder"}
    assert "search: skipped: rule 'payments' starts at tier 'coder'" in outcome.reasons
    assert outcome.status == OutcomeStatus.resolved and outcome.rules == ["payments"]


def test_a_required_critic_leaves_only_the_tiers_that_have_one(home: Path, tmp_path: Path) -> None:
    plain, plain_model = scripted("plain", [FIX], rounds=1)
    guarded, _ = scripted("guarded", [FIX], rounds=1)
    guarded["critic"] = {
        "model": {"model": "critic", "backend": "scripted", "options": {"replies": [ACCEPT]}}
    }
    rule = {"name": "guardrail", "instances": ["stats-*"], "require_critic": True}
    c = campaign(make_stats_project(tmp_path), [SEARCH, plain, guarded], rules=[rule])
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, c.instances[0], DIRECT)

    assert plain_model.requests == []
    assert outcome.status == OutcomeStatus.resolved and outcome.tier == "guarded"
    assert "plain: skipped: rule 'guardrail' requires an LLM critic" in outcome.reasons


@pytest.mark.parametrize(("paths", "held"), [(["stats.py"], True), (["billing/*"], False)])
def test_a_patch_on_ruled_paths_is_verified_twice_and_held_for_review(
    home: Path, tmp_path: Path, paths: list[str], held: bool
) -> None:
    coder, _ = scripted("coder", [FIX], rounds=1)
    rule: dict[str, Any] = {"name": "core", "paths": paths, "verify_runs": 2, "needs_review": True}
    c = campaign(make_stats_project(tmp_path), [coder], rules=[rule])
    runs: list[str] = []

    def verify(*args: Any) -> Any:
        runs.append("verify")
        return verify_step(*args)

    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, c.instances[0], dataclasses.replace(DIRECT, verify=verify))

    assert outcome.status == OutcomeStatus.resolved and outcome.needs_review is held
    assert len(runs) == (2 if held else 1)
    if held:
        assert "held for review by rule(s) core" in outcome.reasons
        assert any(r.startswith("verified on 2 fresh workspaces") for r in outcome.reasons)
    assert outcome.rules == ["core"]  # the rule matched the instance either way


def test_a_rule_naming_an_unknown_tier_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="min_tier 'big', not a tier of this campaign"):
        campaign(tmp_path, [SEARCH], rules=[{"name": "r", "min_tier": "big"}])
