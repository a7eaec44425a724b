"""The openai backend against a real chat-completions server on 127.0.0.1.

The server (tests/llm/conftest.py) implements the OpenAI contract plus vLLM's
/v1/load_lora_adapter over the hf backend on the tiny model, so answers can be checked
against the hf backend directly.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from patchsmith.errors import ConfigError, ModelUnavailable
from patchsmith.infra.llm import get_backend
from patchsmith.infra.llm.config import ModelConfig
from patchsmith.infra.llm.types import ChatRequest

pytest.importorskip("openai", reason="needs the openai extra: pip install 'patchsmith[openai]'")


def _backend(server: Any, tiny: Any, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Any:
    monkeypatch.setenv("TINY_KEY", server.api_key)
    return get_backend(
        ModelConfig(
            model="tiny",
            backend="openai",
            request_timeout_s=30,
            adapters=[
                {"name": "a", "path": str(tiny.adapter_a)},
                {"name": "b", "path": str(tiny.adapter_b)},
            ],
            prices={"per_1k_completion": 2.0},
            options={"base_url": server.url, "api_key_env": "TINY_KEY", **options},
        )
    )


def test_answers_match_the_hf_backend(chat_server, tiny, hf_adapters, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    backend = _backend(chat_server, tiny, monkeypatch)
    requests = [ChatRequest.user(f"Fix test {i}", max_new_tokens=6) for i in range(4)]
    requests.append(ChatRequest.user("Fix test with a", adapter="a", max_new_tokens=6))
    got = backend.complete(requests)
    want = hf_adapters.complete(requests)
    assert [c.text for c in got] == [c.text for c in want]
    for g, w in zip(got, want, strict=True):
        assert g.usage.completion_tokens == w.usage.completion_tokens
        assert g.usage.prompt_tokens == w.usage.prompt_tokens
        assert g.mean_logprob == pytest.approx(w.mean_logprob, abs=1e-5)
        assert g.usage.dollars == pytest.approx(g.usage.completion_tokens * 2.0 / 1000)
    by_prompt = {b["messages"][0]["content"]: b for b in chat_server.bodies[-5:]}
    assert by_prompt["Fix test with a"]["model"] == "a"  # adapter chosen by model name
    assert (
        by_prompt["Fix test 0"]["model"] == "tiny" and by_prompt["Fix test 0"]["temperature"] == 0
    )


def test_missing_adapter_is_loaded_at_runtime(chat_server, tiny, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    plain = _backend(chat_server, tiny, monkeypatch)
    if "b" not in chat_server.loaded:
        with pytest.raises(ConfigError, match=r"does not serve 'b'.*runtime_lora"):
            plain.complete([ChatRequest.user("x", adapter="b", max_new_tokens=2)])
    backend = _backend(chat_server, tiny, monkeypatch, runtime_lora=True)
    [c] = backend.complete([ChatRequest.user("x", adapter="b", max_new_tokens=2)])
    assert c.adapter == "b" and "b" in chat_server.loaded
    assert {"lora_name": "b", "lora_path": str(tiny.adapter_b)} in chat_server.load_calls
    calls = len(chat_server.load_calls)
    backend.complete([ChatRequest.user("y", adapter="b", max_new_tokens=2)])
    assert len(chat_server.load_calls) == calls  # loaded once


@pytest.mark.parametrize("status", [429, 500, 503])
def test_overload_and_server_errors_are_infra_faults(
    chat_server, tiny, monkeypatch, status
) -> None:  # type: ignore[no-untyped-def]
    backend = _backend(chat_server, tiny, monkeypatch)
    chat_server.fail_next.append(status)
    with pytest.raises(ModelUnavailable, match=str(status)):
        backend.complete([ChatRequest.user("x", max_new_tokens=2)])
    assert backend.complete([ChatRequest.user("x", max_new_tokens=2)])[0].usage.completion_tokens


def test_unreachable_server_is_an_infra_fault(tiny, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    monkeypatch.setenv("TINY_KEY", "k")
    backend = get_backend(
        ModelConfig(
            model="tiny",
            backend="openai",
            request_timeout_s=5,
            options={"base_url": f"http://127.0.0.1:{port}/v1", "api_key_env": "TINY_KEY"},
        )
    )
    with pytest.raises(ModelUnavailable, match=f"127.0.0.1:{port}"):
        backend.complete([ChatRequest.user("x")])


def test_key_comes_from_the_environment(chat_server, tiny, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    config = ModelConfig(
        model="tiny",
        backend="openai",
        options={"base_url": chat_server.url, "api_key_env": "NO_SUCH_KEY_VAR"},
    )
    with pytest.raises(ConfigError, match=r"set \$NO_SUCH_KEY_VAR"):
        get_backend(config)
    monkeypatch.setenv("NO_SUCH_KEY_VAR", "wrong")
    with pytest.raises(ConfigError, match="refused the API key"):
        get_backend(config).complete([ChatRequest.user("x", max_new_tokens=2)])


def test_json_schema_and_sampling_reach_the_server(chat_server, tiny, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    backend = _backend(chat_server, tiny, monkeypatch)
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    request = ChatRequest.user(
        "x", max_new_tokens=3, json_schema=schema, sampling={"temperature": 0.7, "seed": 3}
    )
    backend.complete([request])
    body = chat_server.bodies[-1]
    assert body["response_format"]["json_schema"]["schema"] == schema
    assert (body["temperature"], body["seed"], body["max_tokens"]) == (0.7, 3, 3)
