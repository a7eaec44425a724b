"""LLM tier pieces on the scripted backend: config, prompts, planner, generator, critic."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from patchsmith.config import Campaign, LLMTier, SearchTier
from patchsmith.domain import (
    Critique,
    Instance,
    Intent,
    Plan,
    SuspiciousLine,
    TestOutcome,
    TestReport,
    Verdict,
)
from patchsmith.errors import ApplyError, ConfigError, MalformedEdit
from patchsmith.infra.llm.config import ModelConfig
from patchsmith.infra.llm.scripted import ScriptedBackend
from patchsmith.infra.llm.types import ChatMessage, ChatRequest
from patchsmith.prompts import prompt_hash, render
from patchsmith.tasks.edits.malformed import raise_if_malformed
from patchsmith.tasks.generate import make_generator
from patchsmith.tasks.llm.context import build_context, estimate_tokens
from patchsmith.tasks.llm.generator import LLMGenerator
from patchsmith.tasks.llm.models import ask_json, backend_for, use_backend
from patchsmith.tasks.llm.planner import LLMPlan, run_planner

pytestmark = pytest.mark.usefixtures("fresh_backends")

SOURCE = '''def area(w, h):
    """Area of a rectangle."""
    return w + h


def perimeter(w, h):
    return 2 * (w + h)
'''

FIX = """shapes.py
```python
<<<<<<< SEARCH
    return w + h
=======
    return w * h
>>>>>>> REPLACE
```
"""

PLAN_JSON = '{"files": ["shapes.py"], "functions": ["area"], "intended_change": "multiply"}'


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "tests").mkdir(parents=True)
    (root / "shapes.py").write_text(SOURCE)
    (root / "tests" / "test_shapes.py").write_text("def test_area():\n    pass\n")
    return root


def instance(repo: Path) -> Instance:
    return Instance(
        instance_id="shapes", repo=str(repo), instruction="area() adds instead of multiplying"
    )


def plan() -> Plan:
    baseline = TestReport(
        outcomes={"tests/test_shapes.py::test_area": TestOutcome.failed},
        log_tail="E   assert 5 == 6",
    )
    return Plan(
        instance_id="shapes",
        intent=Intent.bugfix,
        fail_to_pass=["tests/test_shapes.py::test_area"],
        pass_to_pass=[],
        suspicious=[SuspiciousLine(path="shapes.py", line=3, score=1.0, sources=["ochiai"])],
        baseline=baseline,
        tier="llm",
    )


def tier(replies: list[str], **kw: object) -> LLMTier:
    model: dict[str, object] = {
        "model": "scripted-m",
        "backend": "scripted",
        "options": {"replies": replies},
    }
    extra = kw.pop("model", {})
    assert isinstance(extra, dict)
    model.update(extra)
    return LLMTier.model_validate({"kind": "llm", "name": "llm", "model": model, **kw})


def accepted() -> Critique:
    return Critique(verdict=Verdict.accept, reasons=["all 1 target tests pass"])


# ------------------------------------------------------------------ config


def test_tiers_are_a_discriminated_union_and_search_stays_the_default() -> None:
    campaign = Campaign.model_validate(
        {
            "name": "c",
            "instances": [{"id": "a", "repo": "."}],
            "tiers": [{}, {"kind": "llm", "name": "small", "model": {"model": "m"}, "samples": 3}],
        }
    )
    search, llm = campaign.tiers
    assert isinstance(search, SearchTier) and isinstance(llm, LLMTier)
    assert llm.batch == 3 and llm.planner is True
    default = Campaign.model_validate({"name": "d", "instances": [{"id": "a", "repo": "."}]})
    assert default.tiers == [SearchTier()]
    with pytest.raises(ValidationError, match="use kind: search, codemod or llm"):
        Campaign.model_validate(
            {"name": "c", "instances": [{"id": "a", "repo": "."}], "tiers": [{"kind": "gpt"}]}
        )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"adapters": ["fix"]}, "must be name@version"),
        ({"adapters": ["fix@1", "fix@2"]}, "one version per adapter name"),
        ({"critic": {"adapter": "guard@"}}, "must be name@version"),
        ({"model": {"model": "m", "backend": "vllm", "quantization": "bnb-4bit"}}, "AWQ/GPTQ/fp8"),
        (
            {"model": {"model": "m", "device": "cpu", "attn_implementation": "flash_attention_2"}},
            "use attn_implementation: sdpa",
        ),
    ],
)
def test_impossible_llm_tiers_are_rejected_with_what_to_use(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        LLMTier.model_validate({"model": {"model": "m"}, **data})


# ------------------------------------------------------------------ prompts, context, models


def test_prompts_render_and_hash_and_unknown_ones_are_listed() -> None:
    text = render("planner_user", instruction="fix $HOME", context="ctx")
    assert text.startswith("Task: fix $HOME") and "ctx" in text
    assert len(prompt_hash("generator_system")) == 16
    assert prompt_hash("generator_system") != prompt_hash("critic_system")
    with pytest.raises(ConfigError, match=r"known: .*generator_system"):
        render("nope")


def test_context_ranks_lines_and_keeps_to_its_budget(repo: Path) -> None:
    big = plan().model_copy(
        update={"baseline": TestReport(log_tail="x" * 50_000), "suspicious": plan().suspicious}
    )
    text = build_context(instance(repo), big, repo, budget_tokens=300)
    assert "shapes.py, line 3 (score 1.00)" in text
    assert estimate_tokens(text) <= 300 + 20
    full = build_context(instance(repo), plan(), repo, budget_tokens=3000)
    assert "def perimeter(w, h):" in full and "tests/test_shapes.py::test_area" in full


def test_backends_are_built_once_per_config_across_threads() -> None:
    config = ModelConfig(model="shared", backend="scripted", options={"replies": ["x"]})
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(backend_for(config))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(b) for b in got}) == 1
    other = ModelConfig(model="other", backend="scripted")
    assert backend_for(other) is not got[0]


def test_ask_json_retries_once_with_the_error_then_gives_up() -> None:
    config = ModelConfig(model="j", backend="scripted", options={"replies": ["nope", PLAN_JSON]})
    backend = ScriptedBackend(config)
    messages = [ChatMessage(role="user", content="plan please")]
    reply = ask_json(backend, messages, LLMPlan, adapter=None, max_new_tokens=64)
    assert reply.value is not None and reply.value.files == ["shapes.py"] and reply.tries == 2
    assert "no JSON object found" in backend.requests[1].messages[-1].content
    assert reply.usage.prompt_tokens > 0
    bad = ScriptedBackend(config.model_copy(update={"options": {"replies": ["{}", "[1]"]}}))
    reply = ask_json(bad, messages, LLMPlan, adapter=None, max_new_tokens=64)
    assert reply.value is None and reply.tries == 2 and "no JSON object" in (reply.error or "")


def test_planner_rejects_files_outside_the_scope_then_records_malformed(repo: Path) -> None:
    bad = '{"files": ["tests/test_shapes.py"], "intended_change": "edit the test"}'
    config = ModelConfig(model="p", backend="scripted", options={"replies": [bad, bad]})
    backend = ScriptedBackend(config)
    result = run_planner(backend, instance(repo), plan(), repo, adapter=None, context_tokens=500)
    assert result.plan is None and result.record["status"] == "malformed"
    assert "outside what may be edited" in result.record["error"]
    assert "outside what may be edited" in backend.requests[1].messages[-1].content


# ------------------------------------------------------------------ generator


def test_generator_turns_a_reply_into_a_diff_with_provenance(repo: Path) -> None:
    variant = FIX.replace("w * h", "h * w")
    t = tier(
        [PLAN_JSON, FIX, FIX, variant],
        model={"quantization": {"method": "bnb-4bit"}, "prices": {"per_1k_prompt": 1.0}},
    )
    gen = make_generator(t)
    assert isinstance(gen, LLMGenerator)
    (candidate,) = gen.propose(instance(repo), plan(), repo, set(), [], 4)
    assert "-    return w + h\n+    return w * h" in candidate.diff
    assert candidate.files == ["shapes.py"] and candidate.generator == "llm"
    model = candidate.model
    assert model["id"] == "scripted-m" and model["backend"] == "scripted"
    assert model["quantization"]["method"] == "bnb-4bit"
    assert model["quantization"]["quant_type"] == "nf4"
    assert model["planner"]["status"] == "ok"
    assert set(model["prompts"]) >= {"generator_user", "planner_system"}
    planner_and_edit = candidate.usage.prompt_tokens
    assert planner_and_edit > 0 and candidate.usage.dollars is not None
    assert candidate.usage.dollars == pytest.approx(planner_and_edit / 1000)
    raise_if_malformed(candidate)  # a good candidate passes through
    # A repeat of a tried edit is dropped; its cost goes on the next new candidate.
    (again,) = gen.propose(instance(repo), plan(), repo, {candidate.candidate_id}, [], 4)
    assert "h * w" in again.diff and gen.rounds == 3
    assert again.usage.completion_tokens == 2 * len(variant.split())
    assert gen.propose(instance(repo), plan(), repo, set(), [], 4) == []  # rounds used up


def test_whitespace_insensitive_matching_applies_a_sloppy_search(repo: Path) -> None:
    sloppy = "shapes.py\n<<<<<<< SEARCH\nreturn w  +  h\n=======\nreturn w * h\n>>>>>>> REPLACE\n"
    gen = LLMGenerator(tier([sloppy], planner=False))
    (candidate,) = gen.propose(instance(repo), plan(), repo, set(), [], 1)
    assert "+    return w * h" in candidate.diff  # the file's indentation is kept


@pytest.mark.parametrize(
    ("reply", "error", "reason"),
    [
        ("Sure! Multiply instead of adding.", MalformedEdit, "no SEARCH/REPLACE blocks found"),
        ('{"file": "shapes.py", "code": "return w * h"}', MalformedEdit, "no SEARCH/REPLACE"),
        (FIX.replace("w + h", "w - h", 1), ApplyError, "SEARCH text not found"),
        (
            "tests/test_shapes.py\n<<<<<<< SEARCH\n    pass\n=======\n    assert True\n"
            ">>>>>>> REPLACE\n",
            ApplyError,
            "outside the instance's scope",
        ),
    ],
)
def test_unusable_replies_become_malformed_candidates_with_the_reason(
    repo: Path, reply: str, error: type[Exception], reason: str
) -> None:
    gen = LLMGenerator(tier([reply], planner=False))
    (candidate,) = gen.propose(instance(repo), plan(), repo, set(), [], 1)
    assert candidate.description.startswith("malformed_edit: ")
    assert candidate.diff == reply and candidate.usage.completion_tokens > 0
    with pytest.raises(error, match=reason):
        raise_if_malformed(candidate)


def test_samples_rotate_adapters_use_sampling_and_rounds_run_out(repo: Path) -> None:
    a, b = repo / "lora-a", repo / "lora-b"
    for p in (a, b):
        p.mkdir()
        (p / "adapter_model.bin").write_bytes(p.name.encode())
    replies = [FIX, FIX.replace("w * h", "h * w"), "junk", "junk"]
    t = tier(
        replies,
        model={"adapters": [{"name": "a", "path": str(a)}, {"name": "b", "path": str(b)}]},
        samples=2,
        rounds=2,
        planner=False,
    )
    gen = LLMGenerator(t)
    first = gen.propose(instance(repo), plan(), repo, set(), [], 8)
    assert [c.model["adapters"][0]["name"] for c in first] == ["a", "b"]
    assert all(c.model["sampling"]["temperature"] == 0.7 for c in first)
    second = gen.propose(instance(repo), plan(), repo, set(), ["2 target tests still fail"], 8)
    assert len(second) == 2 and all(c.description.startswith("malformed_edit") for c in second)
    backend = backend_for(gen.models.generator)
    assert isinstance(backend, ScriptedBackend)
    assert "2 target tests still fail" in backend.requests[-1].messages[-1].content
    assert [r.adapter for r in backend.requests] == ["a", "b", "a", "b"]
    assert gen.propose(instance(repo), plan(), repo, set(), [], 8) == []  # rounds used up


# ------------------------------------------------------------------ critic


def test_critic_can_veto_an_accepted_candidate_and_its_cost_is_added(repo: Path) -> None:
    veto = '{"verdict": "reject", "confidence": 0.8, "reasons": ["special-cases the test"]}'
    critic_model = {"model": "critic", "backend": "scripted", "options": {"replies": [veto]}}
    gen = LLMGenerator(tier([FIX], planner=False, critic={"model": critic_model}))
    (candidate,) = gen.propose(instance(repo), plan(), repo, set(), [], 1)
    before = candidate.usage.prompt_tokens
    report = TestReport(outcomes={"tests/test_shapes.py::test_area": TestOutcome.passed})
    verdict = gen.review(plan(), candidate, report, accepted())
    assert verdict.verdict == Verdict.refine
    assert any("LLM critic rejects" in r for r in verdict.reasons)
    assert "special-cases the test" in verdict.feedback
    assert candidate.usage.prompt_tokens > before
    assert candidate.model["critic"]["id"] == "critic"
    assert candidate.model["critic"]["verdict"]["verdict"] == "reject"


def test_a_malformed_critic_reply_keeps_the_deterministic_verdict(repo: Path) -> None:
    gen = LLMGenerator(tier([FIX, "hmm", "still no"], planner=False, critic={}))
    (candidate,) = gen.propose(instance(repo), plan(), repo, set(), [], 1)
    verdict = gen.review(plan(), candidate, TestReport(), accepted())
    assert verdict.verdict == Verdict.accept
    assert "LLM critic reply malformed" in verdict.reasons[-1]
    rejected = Critique(verdict=Verdict.refine, reasons=["1/1 target tests still fail"])
    assert gen.review(plan(), candidate, TestReport(), rejected) is rejected  # not asked


def test_a_backend_with_a_reply_function_can_stand_in(repo: Path) -> None:
    t = tier([], planner=False)
    seen: list[ChatRequest] = []

    def reply(request: ChatRequest) -> str:
        seen.append(request)
        return FIX

    use_backend(t.model, ScriptedBackend(t.model, reply=reply))
    (candidate,) = LLMGenerator(t).propose(instance(repo), plan(), repo, set(), [], 1)
    assert "return w * h" in candidate.diff and len(seen) == 1


def test_an_unreachable_model_server_propagates_for_prefect_to_retry(repo: Path) -> None:
    pytest.importorskip("openai", reason="needs the openai extra: pip install 'patchsmith[openai]'")
    import socket

    from patchsmith.errors import ModelUnavailable

    with socket.socket() as s:  # a port on 127.0.0.1 that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = {"base_url": f"http://127.0.0.1:{port}/v1", "api_key_env": None}
    t = tier([], planner=False, model={"backend": "openai", "options": options})
    with pytest.raises(ModelUnavailable):
        LLMGenerator(t).propose(instance(repo), plan(), repo, set(), [], 1)


def test_a_prompt_that_leaves_no_room_to_answer_is_asked_again_with_less_context(
    repo: Path,
) -> None:
    seen: list[ChatRequest] = []

    def reply(request: ChatRequest) -> str:
        seen.append(request)
        return FIX

    def words(request: ChatRequest) -> int:
        return sum(len(m.content.split()) for m in request.messages)

    roomy = tier([], planner=False, max_new_tokens=20)
    use_backend(roomy.model, ScriptedBackend(roomy.model, reply=reply))
    LLMGenerator(roomy).propose(instance(repo), plan(), repo, set(), [], 1)
    full = words(seen.pop())
    # The scripted model, like a real one, has prompt and reply share max_context.
    tight = tier([], planner=False, max_new_tokens=20, model={"max_context": full})
    use_backend(tight.model, ScriptedBackend(tight.model, reply=reply))
    gen = LLMGenerator(tight)
    (candidate,) = gen.propose(instance(repo), plan(), repo, set(), [], 1)
    assert len(seen) == 2, "the overflowing prompt is asked again"
    assert words(seen[0]) == full and words(seen[1]) <= full - 20
    assert "return w * h" in candidate.diff
    assert gen.context_tokens < tight.context_tokens  # later rounds keep the smaller budget

    hopeless = tier([], planner=False, max_new_tokens=20, model={"max_context": 60})
    use_backend(hopeless.model, ScriptedBackend(hopeless.model, reply=reply))
    with pytest.raises(ConfigError, match="raise the model's max_context"):
        LLMGenerator(hopeless).propose(instance(repo), plan(), repo, set(), [], 1)
