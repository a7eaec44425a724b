"""Campaigns with LLM tiers end to end: real sandbox, store and workspaces.

One campaign runs through the scripted backend (search gives up, a first LLM tier
replies garbage, a second one fixes the bug); one runs through the tiny local model with
a registered LoRA adapter (it fixes nothing; every attempt must still be recorded).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import make_stats_project

from patchsmith.adapters.registry import hash_files, register
from patchsmith.adapters.resolve import resolve_tier
from patchsmith.config import Campaign
from patchsmith.domain import AttemptStatus, OutcomeStatus
from patchsmith.errors import ConfigError
from patchsmith.infra.store import Store
from patchsmith.tasks.campaign import open_session, run_instance, work_key
from patchsmith.tasks.llm.models import cached
from patchsmith.tasks.repair import DIRECT

pytestmark = [
    pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning"),
    pytest.mark.usefixtures("fresh_backends"),
]

FIX = """stats.py
<<<<<<< SEARCH
    return f"n={len(values)} mean={mean(values):.2f}"
=======
    ordered = sorted(values)
    return f"n={len(values)} mean={mean(values):.2f} median={ordered[len(ordered) // 2]}"
>>>>>>> REPLACE
"""
PLAN = '{"files": ["stats.py"], "functions": ["describe"], "intended_change": "add the median"}'
ACCEPT = '{"verdict": "accept", "confidence": 0.9, "reasons": ["minimal and general"]}'
SEARCH = {"kind": "search", "top_lines": 3, "max_order": 1, "widen": False}


def campaign(project: Path, tiers: list[dict[str, Any]], attempts: int = 20) -> Campaign:
    return Campaign.model_validate(
        {
            "name": "llm-e2e",
            "instances": [
                {
                    "id": "stats-describe",
                    "repo": str(project),
                    "test_cmd": "python -m pytest -q tests/test_describe.py",
                }
            ],
            "sandbox": {"timeout_s": 60, "env": {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}},
            "budget": {"max_attempts": attempts, "max_wall_s": 120},
            "tiers": tiers,
        }
    )


def fake_adapter(root: Path, base: str) -> Path:
    root.mkdir(parents=True)
    (root / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": base, "r": 8, "target_modules": ["q_proj"]})
    )
    (root / "adapter_model.safetensors").write_bytes(b"lora weights")
    return root


def test_tiers_run_in_order_and_every_attempt_records_its_model(home: Path, tmp_path: Path) -> None:
    project = make_stats_project(tmp_path)
    adapter = fake_adapter(tmp_path / "fix-lora", base="small-coder")
    with Store.open(home=home) as store:
        register(store, adapter, name="fix", version="1", kind="functional")
    small = {
        "kind": "llm",
        "name": "small-quantized-llm",
        "model": {
            "model": "small-coder",
            "backend": "scripted",
            "quantization": {"method": "bnb-4bit", "quant_type": "nf4", "compute_dtype": "float32"},
            "prices": {"per_1k_prompt": 0.2, "per_1k_completion": 0.4},
            "options": {"replies": ["I would multiply the values."], "cycle": True},
        },
        "adapters": ["fix@1"],
        "samples": 2,
        "rounds": 1,
        "planner": False,
    }
    bigger = {
        "kind": "llm",
        "name": "bigger-llm",
        "model": {"model": "big-coder", "backend": "scripted", "options": {"replies": [PLAN, FIX]}},
        "rounds": 1,
        "critic": {
            "model": {"model": "critic", "backend": "scripted", "options": {"replies": [ACCEPT]}}
        },
    }
    c = campaign(project, [SEARCH, small, bigger])
    out = tmp_path / "out"
    session = open_session(c, home=home, out_dir=out, tracking=False)
    outcome = run_instance(session, c.instances[0], DIRECT)

    assert outcome.status == OutcomeStatus.resolved, outcome.reasons
    assert outcome.tier == "bigger-llm" and "median=" in (outcome.patch or "")
    attempts = session.store.attempts_for_key(work_key(session, c.instances[0]))
    tiers = [a.tier for a in attempts]
    assert tiers == sorted(tiers, key=["search", "small-quantized-llm", "bigger-llm"].index)
    assert [a.number for a in attempts] == list(range(1, len(attempts) + 1))
    search = [a for a in attempts if a.tier == "search"]
    assert search and all(a.model == {} and a.usage.prompt_tokens == 0 for a in search)

    small_attempts = [a for a in attempts if a.tier == "small-quantized-llm"]
    assert len(small_attempts) == 2
    for a in small_attempts:
        assert a.status == AttemptStatus.malformed_edit
        assert a.error == "MalformedEdit: no SEARCH/REPLACE blocks found"
        assert a.model["id"] == "small-coder"
        assert a.model["quantization"] == {
            "method": "bnb-4bit",
            "quant_type": "nf4",
            "double_quant": True,
            "compute_dtype": "float32",
        }
        assert a.model["adapters"] == [
            {"name": "fix", "version": "1", "sha256": hash_files(adapter), "kind": "functional"}
        ]
        assert a.usage.prompt_tokens > 0 and a.usage.completion_tokens == 5
        assert a.usage.dollars == pytest.approx(a.usage.prompt_tokens * 0.2 / 1000 + 5 * 0.4 / 1000)
        assert a.candidate is not None and a.candidate.diff == "I would multiply the values."

    (won,) = [a for a in attempts if a.tier == "bigger-llm"]
    assert won.status == AttemptStatus.accepted and won.model["id"] == "big-coder"
    assert won.model["planner"]["status"] == "ok" and won.model["adapters"] == []
    assert won.model["critic"]["verdict"]["verdict"] == "accept"
    assert won.usage.dollars is None  # no price configured: unknown, never 0
    assert any("LLM critic accepts" in r for r in won.critique.reasons)  # type: ignore[union-attr]
    assert outcome.usage.dollars is None
    assert outcome.usage.prompt_tokens == sum(a.usage.prompt_tokens for a in attempts)

    with Store.open(home=home) as store, store.engine.connect() as db:
        rows = db.exec_driver_sql(
            "SELECT status, model_id, quantization, adapters, tokens FROM attempts "
            "WHERE tier = 'small-quantized-llm'"
        ).all()
    assert [r[0] for r in rows] == ["malformed_edit", "malformed_edit"]
    assert all(r[1] == "small-coder" and r[4] > 0 for r in rows)
    assert "bnb-4bit" in str(rows[0][2]) and "fix" in str(rows[0][3])
    line = json.loads((out / "outcomes.jsonl").read_text())
    assert (line["status"], line["tier"]) == ("resolved", "bigger-llm")
    assert (out / "patches" / "stats-describe.diff").read_text() == outcome.patch


def test_an_unknown_adapter_stops_the_instance_with_the_registered_versions(
    home: Path, tmp_path: Path
) -> None:
    project = make_stats_project(tmp_path)
    with Store.open(home=home) as store:
        register(
            store, fake_adapter(tmp_path / "a", "m"), name="fix", version="1", kind="functional"
        )
    llm = {"kind": "llm", "model": {"model": "m", "backend": "scripted"}, "adapters": ["fix@2"]}
    c = campaign(project, [llm])
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    with pytest.raises(ConfigError, match="registered versions of 'fix': 1"):
        run_instance(session, c.instances[0], DIRECT)
    stored = session.store.find_outcome(work_key(session, c.instances[0]))
    assert stored is not None and stored.status == OutcomeStatus.error


THIRD_PARTY = [
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning",
    "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning",
]


@pytest.mark.filterwarnings(*THIRD_PARTY)
def test_the_tiny_model_fixes_nothing_but_every_attempt_is_recorded(
    home: Path, tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch", reason="needs the hf extra: pip install 'patchsmith[hf]'")
    pytest.importorskip("peft", reason="needs the hf extra: pip install 'patchsmith[hf]'")
    from patchsmith.infra.llm.tiny import build_tiny_adapter, build_tiny_model

    torch.set_num_threads(1)
    model = build_tiny_model(tmp_path / "tiny")
    lora = build_tiny_adapter(model, tmp_path / "tiny-lora", seed=1)
    with Store.open(home=home) as store:
        register(store, lora, name="tiny-fix", version="1", kind="functional")
    project = make_stats_project(tmp_path)
    llm = {
        "kind": "llm",
        "name": "tiny",
        "model": {
            "model": str(model),
            "backend": "hf",
            "device": "cpu",
            "max_context": 1024,
            "prices": {"per_1k_prompt": 0.01},
            "options": {"batch_wait_ms": 0},
        },
        "adapters": ["tiny-fix@1"],
        "samples": 2,
        "rounds": 1,
        "context_tokens": 200,
        "max_new_tokens": 12,
        "critic": {},
    }
    c = campaign(project, [SEARCH, llm])
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    # The model loads in the background while search runs (adapters resolved as the tier
    # will ask for them, so the tier finds it built).
    assert len(session.warming) == 1
    session.warming[0].join()
    generator = resolve_tier(c.tiers[1], session.store).generator  # type: ignore[arg-type]
    assert cached(generator) is not None
    outcome = run_instance(session, c.instances[0], DIRECT)

    assert outcome.status == OutcomeStatus.unresolved
    attempts = session.store.attempts_for_key(work_key(session, c.instances[0]))
    assert len(attempts) == outcome.attempts
    tiny = [a for a in attempts if a.tier == "tiny"]
    assert len(tiny) == 2
    for a in tiny:
        assert a.status in (AttemptStatus.malformed_edit, AttemptStatus.rejected)
        assert a.usage.prompt_tokens > 0 and a.usage.completion_tokens > 0
        assert a.usage.cpu_seconds > 0  # the in-process model's CPU time, shared out
        assert a.usage.dollars is not None and a.usage.dollars > 0
        assert a.model["id"] == str(model) and a.model["backend"] == "hf"
        assert a.model["attn_implementation"] == "sdpa"
        assert a.model["adapters"][0]["sha256"] == hash_files(lora)
        assert a.model["planner"]["status"] in ("ok", "malformed")
    # The planner's calls are paid for by the first candidate.
    assert tiny[0].usage.prompt_tokens > tiny[1].usage.prompt_tokens
    line = json.loads((tmp_path / "out" / "outcomes.jsonl").read_text())
    assert line["status"] == "unresolved" and line["attempts"] == len(attempts)


def test_a_tier_past_its_budget_escalates_before_it_runs_out_of_candidates(
    home: Path, tmp_path: Path
) -> None:
    """The widening search holds far more candidates than the instance's budget; without
    its own share it would spend every attempt and the model tier would never run."""
    project = make_stats_project(tmp_path)
    search = {"kind": "search", "budget": {"max_attempts": 3}}
    fixer = {
        "kind": "llm", "name": "fixer", "planner": False, "rounds": 1,
        "model": {"model": "big-coder", "backend": "scripted", "options": {"replies": [FIX]}},
    }  # fmt: skip
    c = campaign(project, [search, fixer], attempts=50)
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, c.instances[0], DIRECT)

    assert outcome.status == OutcomeStatus.resolved and outcome.tier == "fixer", outcome.reasons
    attempts = session.store.attempts_for_key(work_key(session, c.instances[0]))
    assert [a.tier for a in attempts] == ["search"] * 3 + ["fixer"]
    (why,) = [r for r in outcome.reasons if r.startswith("search:")]
    assert "tier attempt budget spent (3/3)" in why and "of" in why  # how far it got


def test_the_last_tier_past_its_budget_gives_up_with_that_reason(
    home: Path, tmp_path: Path
) -> None:
    project = make_stats_project(tmp_path)
    c = campaign(project, [{"kind": "search", "budget": {"max_attempts": 2}}], attempts=50)
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, c.instances[0], DIRECT)

    assert outcome.status == OutcomeStatus.unresolved and outcome.attempts == 2
    assert "search: tier attempt budget spent (2/2)" in outcome.reasons[-1]


def test_instances_finish_the_cheap_tier_before_any_instance_reaches_the_model(
    home: Path, tmp_path: Path
) -> None:
    """With one slot and three instances, an instance that escalates gives its slot to
    the instances still waiting for search: every search attempt comes before the first
    model attempt (a greedy slot would run the first instance's model tier right away)."""
    project = make_stats_project(tmp_path)
    llm = {
        "kind": "llm",
        "name": "model",
        "model": {
            "model": "m",
            "backend": "scripted",
            "options": {"replies": ["no"], "cycle": True},
        },
        "rounds": 1,
        "planner": False,
    }
    c = campaign(project, [SEARCH, llm]).model_copy(update={"concurrency": 1})
    first = c.instances[0]
    c = c.model_copy(
        update={"instances": [first.model_copy(update={"instance_id": f"i{n}"}) for n in range(3)]}
    )
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    threads = [
        threading.Thread(target=run_instance, args=(session, inst, DIRECT)) for inst in c.instances
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    attempts = sorted(
        (
            a
            for inst in c.instances
            for a in session.store.attempts_for_key(work_key(session, inst))
        ),
        key=lambda a: a.started_at,
    )
    tiers = [a.tier for a in attempts]
    assert {a.instance_id for a in attempts if a.tier == "model"} == {"i0", "i1", "i2"}
    assert tiers == sorted(tiers, key=["search", "model"].index), tiers
