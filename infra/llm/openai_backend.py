"""The ``openai`` backend: any OpenAI-compatible chat-completions server.

Works with vLLM (``vllm serve --enable-lora``), llama.cpp, Ollama and ``transformers serve``.
A LoRA adapter is chosen by sending its name as the model; with ``runtime_lora: true``
(vLLM started with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``) adapters the server has not
loaded yet are loaded through ``/v1/load_lora_adapter`` first.

Connection errors, timeouts, 408, 429 and 5xx become ``ModelUnavailable`` (an infra
fault Prefect retries); the client itself never retries. The API key is read from the
environment variable named in ``api_key_env`` and never logged.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import Field

from patchsmith.domain import Strict, Usage
from patchsmith.errors import ConfigError, MissingExtra, ModelUnavailable
from patchsmith.infra.llm.config import ModelConfig
from patchsmith.infra.llm.types import ChatRequest, Completion


class Options(Strict):
    """``options:`` of an openai model."""

    base_url: str = Field(
        default="http://127.0.0.1:8000/v1", description="Server URL, up to and including /v1."
    )
    api_key_env: str | None = Field(
        default="OPENAI_API_KEY",
        description="Environment variable holding the key; null for servers without auth.",
    )
    served_model: str | None = Field(
        default=None, description="Model name the server knows (default: the config's model)."
    )
    max_concurrency: int = Field(default=8, gt=0, description="Requests in flight at once.")
    logprobs: bool = Field(default=True, description="Ask for token log-probabilities.")
    runtime_lora: bool = Field(
        default=False, description="Load missing adapters via /v1/load_lora_adapter (vLLM)."
    )


def _is_transient(status: int) -> bool:
    return status in (408, 429) or status >= 500


class OpenAIBackend:
    """Chat completions over HTTP, one request per completion, sent concurrently."""

    def __init__(self, config: ModelConfig) -> None:
        try:
            import openai
        except ImportError as exc:
            raise MissingExtra("the openai model backend", "openai") from exc
        self.config = config
        self.options = Options.model_validate(config.options)
        key = "EMPTY"
        if self.options.api_key_env is not None:
            found = os.environ.get(self.options.api_key_env)
            if not found:
                raise ConfigError(
                    f"no API key for {self.options.base_url}: set ${self.options.api_key_env}, "
                    "or set options.api_key_env: null for a server without auth"
                )
            key = found
        self._key = key
        self._openai = openai
        self.client = openai.OpenAI(
            base_url=self.options.base_url,
            api_key=key,
            timeout=config.request_timeout_s,
            max_retries=0,
        )
        self._loaded: set[str] = set()
        self._lock = threading.Lock()

    @property
    def served_model(self) -> str:
        """The base model's name on the server."""
        return self.options.served_model or self.config.model

    def complete(self, requests: list[ChatRequest]) -> list[Completion]:
        """Send the requests concurrently; the server batches them."""
        for r in requests:
            if r.adapter is not None:
                self._ensure_adapter(r.adapter)
        if len(requests) == 1:
            return [self._one(requests[0])]
        with ThreadPoolExecutor(min(self.options.max_concurrency, len(requests))) as pool:
            return list(pool.map(self._one, requests))

    def _one(self, request: ChatRequest) -> Completion:
        openai = self._openai
        sampling = request.sampling or self.config.sampling
        kwargs: dict[str, Any] = {
            "model": request.adapter or self.served_model,
            "messages": [m.model_dump() for m in request.messages],
            "max_tokens": request.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if sampling.seed is not None:
            kwargs["seed"] = sampling.seed
        if sampling.stop:
            kwargs["stop"] = sampling.stop
        if sampling.top_k is not None:
            kwargs["extra_body"] = {"top_k": sampling.top_k}
        if self.options.logprobs:
            kwargs["logprobs"] = True
        if request.json_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.json_schema},
            }
        started = time.perf_counter()
        try:
            response = self.client.chat.completions.create(**kwargs)
        except openai.APIConnectionError as exc:  # includes timeouts
            raise ModelUnavailable(f"{self.options.base_url}: {exc}") from exc
        except openai.APIStatusError as exc:
            raise self._status_error(exc.status_code, str(exc), kwargs["model"]) from exc
        latency = time.perf_counter() - started
        choice = response.choices[0]
        usage = response.usage
        prompt = usage.prompt_tokens if usage else 0
        done = usage.completion_tokens if usage else 0
        mean = None
        content = choice.logprobs.content if choice.logprobs else None
        if content:
            mean = sum(t.logprob for t in content) / len(content)
        return Completion(
            text=choice.message.content or "",
            usage=Usage(
                prompt_tokens=prompt,
                completion_tokens=done,
                latency_s=latency,
                dollars=self.config.prices.dollars(prompt, done, 0.0),
            ),
            mean_logprob=mean,
            finish_reason="length" if choice.finish_reason == "length" else "stop",
            model=self.config.model,
            adapter=request.adapter,
        )

    def _status_error(self, status: int, detail: str, model: str) -> Exception:
        where = f"{self.options.base_url} (model {model!r})"
        if _is_transient(status):
            return ModelUnavailable(f"{where} answered {status}: {detail}")
        if status in (401, 403):
            return ConfigError(
                f"{where} refused the API key ({status}): check ${self.options.api_key_env}"
            )
        if status == 404:
            return ConfigError(
                f"{where} does not serve {model!r} (404): check model/served_model, or "
                "start the server with this adapter (--lora-modules) or set runtime_lora: true"
            )
        return ConfigError(f"{where} rejected the request ({status}): {detail}")

    def _ensure_adapter(self, name: str) -> None:
        ref = self.config.adapter(name)
        if not self.options.runtime_lora:
            return
        with self._lock:
            if name in self._loaded:
                return
            try:
                served = {m.id for m in self.client.models.list()}
            except self._openai.APIConnectionError as exc:
                raise ModelUnavailable(f"{self.options.base_url}: {exc}") from exc
            except self._openai.APIStatusError as exc:
                raise self._status_error(exc.status_code, str(exc), name) from exc
            if name not in served:
                self._post("load_lora_adapter", {"lora_name": name, "lora_path": ref.path})
            self._loaded.add(name)

    def _post(self, path: str, body: dict[str, Any]) -> None:
        url = self.options.base_url.rstrip("/") + "/" + path
        req = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._key}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self.config.request_timeout_s) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            if exc.code == 400 and "already" in detail:
                return
            raise self._status_error(exc.code, detail, body.get("lora_name", "")) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise ModelUnavailable(f"{url}: {exc}") from exc
