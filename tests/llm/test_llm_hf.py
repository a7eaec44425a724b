"""The hf backend on a tiny model built offline, through the real from_pretrained path.

fp32, bitsandbytes 8-bit and 4-bit on CPU, peft adapters (mixed batches), left-padded
batched generation and concurrent callers sharing generate calls.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

from patchsmith.errors import ConfigError
from patchsmith.infra.llm import get_backend
from patchsmith.infra.llm.config import ModelConfig
from patchsmith.infra.llm.types import ChatRequest, Completion

PROMPTS = [
    "Fix the failing test.",
    "def add(a, b):\n    return a - b\n# the sum is wrong, fix it please",
    "Propose a minimal patch for the stack class",
    "x",
]


def _requests(adapters: list[str | None] | None = None, n: int = 12) -> list[ChatRequest]:
    adapters = adapters or [None] * len(PROMPTS)
    return [
        ChatRequest.user(p, adapter=a, max_new_tokens=n)
        for p, a in zip(PROMPTS, adapters, strict=True)
    ]


def _logits(backend: Any, text: str, adapter: str | None = None) -> Any:
    import torch

    enc = backend.tokenizer([text], return_tensors="pt")
    kwargs = (
        {} if backend.model is backend.base_model else {"adapter_names": [adapter or "__base__"]}
    )
    with torch.inference_mode():
        return backend.model(**enc, **kwargs).logits[0].float()


def test_completion_carries_tokens_logprob_and_cost(hf_adapters: Any) -> None:
    [c] = hf_adapters.complete([ChatRequest.user("Fix the failing test.", max_new_tokens=7)])
    assert isinstance(c, Completion) and c.model.endswith("model") and c.adapter is None
    assert c.usage.prompt_tokens > 5 and 1 <= c.usage.completion_tokens <= 7
    assert c.finish_reason in ("stop", "length") and c.text
    assert c.mean_logprob is not None and -math.log(512) * 3 < c.mean_logprob < 0
    expected = (c.usage.prompt_tokens * 0.5 + c.usage.completion_tokens * 1.5) / 1000
    assert c.usage.dollars == pytest.approx(expected) and c.usage.latency_s > 0
    assert hf_adapters.attn_implementation == "sdpa" and hf_adapters.device == "cpu"


def test_batched_greedy_equals_one_at_a_time(hf_plain: Any) -> None:
    batched = hf_plain.complete(_requests())
    single = [hf_plain.complete([r])[0] for r in _requests()]
    assert [c.text for c in batched] == [c.text for c in single]
    for b, s in zip(batched, single, strict=True):
        assert b.usage.completion_tokens == s.usage.completion_tokens
        assert b.mean_logprob == pytest.approx(s.mean_logprob, abs=1e-4)
    assert len({c.text for c in batched}) == len(PROMPTS)  # prompts really differ


def test_concurrent_callers_share_generate_calls(hf_plain: Any) -> None:
    requests = [ChatRequest.user(f"Fix test number {i}", max_new_tokens=8) for i in range(8)]
    expected = [hf_plain.complete([r])[0].text for r in requests]
    before = len(hf_plain.batch_sizes)
    out: dict[int, str] = {}
    barrier = threading.Barrier(8)

    def call(i: int) -> None:
        barrier.wait()
        out[i] = hf_plain.complete([requests[i]])[0].text

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [out[i] for i in range(8)] == expected
    sizes = hf_plain.batch_sizes[before:]
    assert sum(sizes) == 8 and len(sizes) < 8 and max(sizes) > 1


def test_adapter_changes_logits_and_base_is_restored(hf_adapters: Any, hf_plain: Any) -> None:
    text = "Fix the failing test."
    base = _logits(hf_plain, text)
    with_a = _logits(hf_adapters, text, "a")
    assert (with_a - base).abs().max().item() > 0.1
    assert (_logits(hf_adapters, text, None) - base).abs().max().item() < 1e-4
    with hf_adapters.model.disable_adapter():
        import torch

        enc = hf_adapters.tokenizer([text], return_tensors="pt")
        with torch.inference_mode():
            disabled = hf_adapters.model(**enc).logits[0]
    assert (disabled - base).abs().max().item() < 1e-4


def test_mixed_adapter_batch_matches_single_adapter_runs(hf_adapters: Any, hf_plain: Any) -> None:
    names: list[str | None] = ["a", "b", None, "a"]
    mixed = hf_adapters.complete(_requests(names))
    single = [hf_adapters.complete([r])[0] for r in _requests(names)]
    assert [c.text for c in mixed] == [c.text for c in single]
    assert [c.adapter for c in mixed] == names
    plain = hf_plain.complete(_requests())
    assert mixed[2].text == plain[2].text  # no adapter = the base model
    assert mixed[0].text != plain[0].text and mixed[1].text != plain[1].text
    with pytest.raises(ConfigError, match="unknown adapter 'c'"):
        hf_adapters.complete([ChatRequest.user("x", adapter="c")])


def test_prompt_over_max_context_ends_with_length(tiny: Any) -> None:
    backend = get_backend(ModelConfig(model=str(tiny.path), device="cpu", max_context=24))
    short, long = backend.complete(
        [ChatRequest.user("x", max_new_tokens=50), ChatRequest.user("Fix the failing test " * 10)]
    )
    assert short.usage.prompt_tokens + short.usage.completion_tokens <= 24
    assert short.finish_reason == "length" and short.usage.completion_tokens > 0
    assert long.text == "" and long.finish_reason == "length" and long.usage.completion_tokens == 0
    assert long.usage.dollars is None  # no price configured


@pytest.mark.parametrize(
    ("quantization", "max_rel_error", "min_cosine"),
    [
        ("bnb-8bit", 0.1, 0.99),
        ({"method": "bnb-4bit", "quant_type": "nf4", "compute_dtype": "float32"}, 0.5, 0.8),
    ],
    ids=["8bit", "4bit-nf4"],
)
def test_bnb_quantized_is_smaller_and_close(
    tiny: Any, hf_plain: Any, quantization: Any, max_rel_error: float, min_cosine: float
) -> None:
    import torch

    # fp32 around the quantized layers, as in the fp32 model it is compared with.
    config = ModelConfig(
        model=str(tiny.path), device="cpu", dtype="float32", quantization=quantization
    )
    backend = get_backend(config)
    assert type(backend.model.model.layers[0].mlp.up_proj).__module__.startswith("bitsandbytes")
    assert backend.model.get_memory_footprint() < 0.7 * hf_plain.model.get_memory_footprint()
    text = PROMPTS[1]
    base, quant = _logits(hf_plain, text), _logits(backend, text)
    rel = ((quant - base).norm() / base.norm()).item()
    cosine = torch.nn.functional.cosine_similarity(quant, base, dim=-1).min().item()
    assert rel < max_rel_error and cosine > min_cosine
    [c] = backend.complete([ChatRequest.user(text, max_new_tokens=6)])
    assert c.usage.completion_tokens == 6 and c.mean_logprob is not None
