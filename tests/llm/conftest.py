"""Fixtures for the model-backend tests: a tiny model built once, and a chat server.

The tiny model (random weights, a locally trained tokenizer, a chat template) and two
LoRA adapters are built once per session under ``tmp_path_factory``; nothing is
downloaded. ``chat_server`` is a real HTTP server on 127.0.0.1 implementing the
OpenAI chat-completions contract (plus vLLM's ``/v1/load_lora_adapter``) over the hf
backend, so the openai backend is tested end to end over sockets.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

# Third-party warnings raised while loading/using the real stack (see the report):
THIRD_PARTY_WARNINGS = [
    # torch.jit used by bitsandbytes at import
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning",
    # peft calls a transformers helper that transformers 5 deprecated
    "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning",
    # bitsandbytes 8-bit on CPU computes in fp16
    "ignore:MatMul8bitLt. inputs will be cast from:UserWarning",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Apply the narrow third-party filters to the tests in this directory only."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            for spec in THIRD_PARTY_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(spec))


@dataclass
class TinyModel:
    """Paths of the session's tiny model and its two adapters."""

    path: Path
    adapter_a: Path
    adapter_b: Path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """The tiny model and adapters, built once per session (a few seconds)."""
    torch = pytest.importorskip("torch", reason="needs the hf extra: pip install 'patchsmith[hf]'")
    pytest.importorskip("peft", reason="needs the hf extra: pip install 'patchsmith[hf]'")

    from patchsmith.infra.llm.tiny import build_tiny_adapter, build_tiny_model

    torch.set_num_threads(1)  # 2 shared cores: one thread is faster and steadier
    root = tmp_path_factory.mktemp("tiny")
    path = build_tiny_model(root / "model")
    return TinyModel(
        path=path,
        adapter_a=build_tiny_adapter(path, root / "lora-a", seed=1),
        adapter_b=build_tiny_adapter(path, root / "lora-b", seed=2),
    )


@pytest.fixture(scope="session")
def hf_adapters(tiny: TinyModel) -> Any:
    """An fp32 hf backend with adapters ``a`` and ``b`` loaded."""
    from patchsmith.infra.llm import get_backend
    from patchsmith.infra.llm.config import ModelConfig

    return get_backend(
        ModelConfig(
            model=str(tiny.path),
            device="cpu",
            dtype="float32",
            adapters=[
                {"name": "a", "path": str(tiny.adapter_a)},
                {"name": "b", "path": str(tiny.adapter_b)},
            ],
            prices={"per_1k_prompt": 0.5, "per_1k_completion": 1.5},
            options={"batch_wait_ms": 50},
        )
    )


@pytest.fixture(scope="session")
def hf_plain(tiny: TinyModel) -> Any:
    """An fp32 hf backend without adapters (no price configured)."""
    from patchsmith.infra.llm import get_backend
    from patchsmith.infra.llm.config import ModelConfig

    return get_backend(
        ModelConfig(
            model=str(tiny.path),
            device="cpu",
            dtype="float32",
            options={"batch_wait_ms": 50},
        )
    )


@dataclass
class ChatServer:
    """A running chat-completions server and what it saw."""

    url: str
    base_name: str
    api_key: str
    loaded: set[str]
    bodies: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    load_calls: list[dict[str, Any]] = field(default_factory=list)


def _handler(backend: Any, state: ChatServer) -> type[BaseHTTPRequestHandler]:
    from patchsmith.infra.llm.config import Sampling
    from patchsmith.infra.llm.types import ChatMessage, ChatRequest

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {state.api_key}":
                return True
            self._send(401, {"error": {"message": "bad key"}})
            return False

        def do_GET(self) -> None:
            if not self._authorized():
                return
            names = [state.base_name, *sorted(state.loaded)]
            self._send(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": n, "object": "model", "created": 0, "owned_by": "test"}
                        for n in names
                    ],
                },
            )

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not self._authorized():
                return
            if self.path == "/v1/load_lora_adapter":
                state.load_calls.append(body)
                if body["lora_name"] in state.loaded:
                    self._send(400, {"error": {"message": "already been loaded"}})
                    return
                state.loaded.add(body["lora_name"])
                self._send(200, {})
                return
            state.bodies.append(body)
            if state.fail_next:
                self._send(state.fail_next.pop(0), {"error": {"message": "injected"}})
                return
            model = body["model"]
            if model != state.base_name and model not in state.loaded:
                self._send(404, {"error": {"message": f"model {model} not found"}})
                return
            request = ChatRequest(
                messages=[ChatMessage(**m) for m in body["messages"]],
                adapter=None if model == state.base_name else model,
                max_new_tokens=body.get("max_tokens", 16),
                sampling=Sampling(
                    temperature=body.get("temperature", 0.0),
                    top_p=body.get("top_p", 1.0),
                    seed=body.get("seed"),
                    stop=body.get("stop") or [],
                ),
            )
            c = backend.complete([request])[0]
            logprobs = None
            if body.get("logprobs") and c.mean_logprob is not None:
                # The hf backend reports the mean; spread it evenly over the tokens.
                item = {"token": "", "logprob": c.mean_logprob, "bytes": None, "top_logprobs": []}
                logprobs = {"content": [item] * c.usage.completion_tokens}
            self._send(
                200,
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": 0,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": c.finish_reason,
                            "logprobs": logprobs,
                            "message": {"role": "assistant", "content": c.text},
                        }
                    ],
                    "usage": {
                        "prompt_tokens": c.usage.prompt_tokens,
                        "completion_tokens": c.usage.completion_tokens,
                        "total_tokens": c.usage.prompt_tokens + c.usage.completion_tokens,
                    },
                },
            )

    return Handler


@pytest.fixture(scope="session")
def chat_server(hf_adapters: Any) -> Iterator[ChatServer]:
    """A chat-completions server on 127.0.0.1 over the adapters backend (``a`` preloaded)."""
    state = ChatServer(url="", base_name="tiny", api_key="sk-test-123", loaded={"a"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hf_adapters, state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
