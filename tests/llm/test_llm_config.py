"""Model config validation, the registry, the scripted backend and the micro-batcher.

Fast: none of these load torch.
"""

from __future__ import annotations

import importlib.util
import threading
import time

import pytest
from pydantic import ValidationError

from patchsmith.errors import ConfigError, MissingExtra
from patchsmith.infra.llm import BACKENDS, get_backend, options_class
from patchsmith.infra.llm.batching import MicroBatcher
from patchsmith.infra.llm.config import ModelConfig, Prices, Quantization
from patchsmith.infra.llm.hf import resolve_attention, resolve_device
from patchsmith.infra.llm.types import ChatRequest


def test_defaults_are_greedy_unquantized_auto_attention() -> None:
    cfg = ModelConfig(model="org/m")
    assert cfg.sampling.greedy and cfg.quantization.method == "none"
    assert cfg.attn_implementation == "auto" and cfg.backend == "hf"


def test_quantization_shorthand_and_bnb4_fields() -> None:
    assert ModelConfig(model="m", quantization="bnb-8bit").quantization.method == "bnb-8bit"
    q = Quantization(method="bnb-4bit", quant_type="fp4", double_quant=False)
    assert (q.quant_type, q.double_quant, q.compute_dtype) == ("fp4", False, "bfloat16")
    with pytest.raises(ValidationError, match="apply to bnb-4bit only"):
        Quantization(method="bnb-8bit", quant_type="nf4")


@pytest.mark.parametrize(
    ("fields", "hint"),
    [
        ({"backend": "vllm", "quantization": "bnb-4bit"}, "awq | gptq | fp8"),
        (
            {"device": "cpu", "attn_implementation": "flash_attention_2"},
            "use attn_implementation: sdpa",
        ),
        ({"device": "cpu", "quantization": "fp8"}, "use bnb-8bit or bnb-4bit"),
        ({"backend": "vllm", "attn_implementation": "sdpa"}, "attn_implementation: auto"),
        ({"options": {"max_batch_sise": 4}}, "max_batch_sise"),
        ({"backend": "scripted", "options": {"replies": "x", "bogus": 1}}, "bogus"),
    ],
)
def test_impossible_combinations_say_what_to_use(fields: dict[str, object], hint: str) -> None:
    with pytest.raises(ValidationError, match=hint.replace("|", r"\|")):
        ModelConfig(model="org/m", **fields)  # type: ignore[arg-type]


def test_adapter_for_another_base_model_is_rejected(tmp_path) -> None:  # type: ignore[no-untyped-def]
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "org/other"}')
    with pytest.raises(ValidationError, match=r"trained on 'org/other'.*set model: org/other"):
        ModelConfig(model="org/m", adapters=[{"name": "x", "path": str(adapter)}])
    ok = ModelConfig(model="org/other", adapters=[{"name": "x", "path": str(adapter)}])
    assert ok.adapter("x").path == str(adapter)
    with pytest.raises(ValidationError, match="unique"):
        ModelConfig(model="m", adapters=[{"name": "x", "path": "p"}, {"name": "x", "path": "q"}])


def test_prices() -> None:
    assert Prices().dollars(1000, 1000, 3600) is None
    assert Prices(per_1k_prompt=1, per_1k_completion=2).dollars(500, 250, 0) == pytest.approx(1.0)
    assert Prices(per_gpu_hour=3.6).dollars(10, 10, 10) == pytest.approx(0.01)


def test_registry_lists_valid_names_and_options_classes() -> None:
    assert set(BACKENDS) == {"hf", "openai", "vllm", "scripted"}
    with pytest.raises(ConfigError, match="unknown model backend 'nope'; valid: hf, openai"):
        options_class("nope")
    assert "base_url" in options_class("openai").model_fields


def test_attention_and_device_resolution() -> None:
    assert resolve_attention("auto", "cuda", True) == "flash_attention_2"
    assert resolve_attention("auto", "cuda", False) == "sdpa"
    assert resolve_attention("auto", "cpu", True) == "sdpa"
    with pytest.raises(MissingExtra, match=r"patchsmith\[gpu\]"):
        resolve_attention("flash_attention_2", "cuda", False)
    with pytest.raises(ConfigError, match="sdpa"):
        resolve_attention("flash_attention_2", "cpu", True)
    assert resolve_device("auto", False) == "cpu"
    with pytest.raises(ConfigError, match="device: cpu"):
        resolve_device("cuda", False)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_missing_names_the_extra() -> None:
    with pytest.raises(MissingExtra, match=r"pip install 'patchsmith\[vllm\]'"):
        get_backend(ModelConfig(model="m", backend="vllm", quantization="awq"))


def test_scripted_backend_replays_and_prices() -> None:
    cfg = ModelConfig(
        model="fake",
        backend="scripted",
        adapters=[{"name": "a", "path": "nowhere"}],
        prices={"per_1k_completion": 1000},
        options={"replies": ["one two three", "four"]},
    )
    backend = get_backend(cfg)
    out = backend.complete(
        [ChatRequest.user("hi there"), ChatRequest.user("x", adapter="a", max_new_tokens=1)]
    )
    assert [c.text for c in out] == ["one two three", "four"]
    assert out[0].usage.prompt_tokens == 2 and out[0].usage.completion_tokens == 3
    assert out[0].usage.dollars == pytest.approx(3.0) and out[1].adapter == "a"
    with pytest.raises(ConfigError, match="ran out of replies after 2"):
        backend.complete([ChatRequest.user("again")])
    with pytest.raises(ConfigError, match=r"unknown adapter .b.*configured: \[.a.\]"):
        backend.complete([ChatRequest.user("x", adapter="b")])


def test_micro_batcher_gathers_concurrent_callers_into_one_call() -> None:
    calls: list[list[int]] = []

    def square(batch: list[int]) -> list[int]:
        calls.append(list(batch))
        time.sleep(0.01)
        return [x * x for x in batch]

    batcher: MicroBatcher[int, int] = MicroBatcher(square, max_batch=8, max_wait_s=2.0)
    results: dict[int, list[int]] = {}
    threads = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, batcher.submit([i])))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: [i * i] for i in range(8)}
    assert batcher.batch_sizes == [8]  # full batch: nobody waited the 2 s


def test_micro_batcher_raises_in_every_caller_of_a_failed_batch() -> None:
    def boom(batch: list[int]) -> list[int]:
        raise RuntimeError(f"bad batch of {len(batch)}")

    batcher: MicroBatcher[int, int] = MicroBatcher(boom, max_batch=4, max_wait_s=0.0)
    with pytest.raises(RuntimeError, match="bad batch of 3"):
        batcher.submit([1, 2, 3])
    ok: MicroBatcher[int, int] = MicroBatcher(lambda b: [-x for x in b], max_batch=2, max_wait_s=0)
    assert ok.submit([1, 2, 3]) == [-1, -2, -3] and ok.batch_sizes == [2, 1]
