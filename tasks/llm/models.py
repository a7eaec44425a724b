"""Model plumbing the LLM steps share: process-wide backends, JSON replies, provenance.

Backends are built once per distinct ``ModelConfig`` (keyed by its hash) and shared by
every thread, so parallel instances feed the same hf micro-batcher. ``ask_json`` asks for
a JSON object, validates it against a pydantic schema and retries once with the
validation error before giving up (the caller records the reply as malformed).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from patchsmith.adapters.resolve import AdapterUse
from patchsmith.domain import Usage, config_hash
from patchsmith.infra.gpu_slots import GpuSlots
from patchsmith.infra.llm import get_backend
from patchsmith.infra.llm.config import ModelConfig, Sampling
from patchsmith.infra.llm.types import ChatMessage, ChatRequest, Completion, ModelBackend
from patchsmith.prompts import render

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)

_backends: dict[str, ModelBackend] = {}
_building: dict[str, threading.Lock] = {}
_lock = threading.Lock()


def backend_for(config: ModelConfig) -> ModelBackend:
    """The process-wide backend for ``config``, built on first use (thread-safe)."""
    key = config_hash(config)
    with _lock:
        if key in _backends:
            return _backends[key]
        building = _building.setdefault(key, threading.Lock())
    with building:
        with _lock:
            if key in _backends:
                return _backends[key]
        backend = _slotted(config, get_backend(config))
        with _lock:
            _backends[key] = backend
        return backend


def cached(config: ModelConfig) -> ModelBackend | None:
    """The backend already built for ``config``, if any (nothing is built here)."""
    with _lock:
        return _backends.get(config_hash(config))


def warm_up(configs: Iterable[ModelConfig]) -> list[threading.Thread]:
    """Build the in-process (``hf``) backends of ``configs`` in background threads.

    A campaign calls this at its start, so that loading a model (and converting a GGUF the
    first time, minutes on CPU) overlaps the search tier instead of following it. A backend
    that fails to build here is only logged: nothing is cached, so the tier that needs it
    builds it again and fails with the error where it is recorded. Join the threads before
    the process ends (a conversion is written atomically, but a half-loaded model is waste).
    """
    threads: list[threading.Thread] = []
    seen: set[str] = set()
    configs = [c for c in configs if c.backend == "hf"]
    if configs:
        _import_transformers()
    for config in configs:
        key = config_hash(config)
        if config.backend != "hf" or key in seen:
            continue
        seen.add(key)

        def build(config: ModelConfig = config) -> None:
            try:
                backend_for(config)
            except Exception as exc:  # reported again, and recorded, by the tier that uses it
                log.warning("loading %s in the background failed: %s", config.model, exc)

        thread = threading.Thread(target=build, name=f"warm-up {config.model}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def _import_transformers() -> None:
    """Import transformers' auto classes here, in the calling thread, before any other
    thread needs them: its lazy module is not thread-safe, and a second thread reading an
    attribute while the first is importing it gets ``AttributeError: module 'transformers'
    has no attribute 'AutoTokenizer'`` (seen with the router beside a loading model)."""
    try:
        import transformers
    except ImportError:
        return  # the backend reports the missing extra when it is built
    for name in ("AutoTokenizer", "AutoModel", "AutoModelForCausalLM"):
        getattr(transformers, name)


def _slotted(config: ModelConfig, backend: ModelBackend) -> ModelBackend:
    """A model of a GPU pool: each call holds its pool's slots, over every worker."""
    if config.gpu_pool is None:
        return backend
    return GpuSlots(backend, config.gpu_pool, config.gpu_slots)


def use_backend(config: ModelConfig, backend: ModelBackend) -> None:
    """Make ``backend`` the one ``config`` gets (a scripted fake with a reply function),
    behind the config's GPU slots as a built one would be."""
    with _lock:
        _backends[config_hash(config)] = _slotted(config, backend)


def clear_backends() -> None:
    """Forget every cached backend (tests; a worker that must reload models)."""
    with _lock:
        _backends.clear()
        _building.clear()


def total_usage(completions: Iterable[Completion]) -> Usage:
    """Sum of the completions' usage (dollars None when any price is unknown)."""
    total = Usage()
    for c in completions:
        total = total + c.usage
    return total


def provenance(
    config: ModelConfig,
    backend: ModelBackend,
    adapters: list[AdapterUse],
    sampling: Sampling,
) -> dict[str, Any]:
    """What ``Candidate.model`` says about the model that produced a candidate."""
    quant = config.quantization
    quantization = (
        quant.model_dump(mode="json") if quant.method == "bnb-4bit" else {"method": quant.method}
    )
    weights = getattr(backend, "source", None)  # hf: the GGUF file and its sha256
    threads = getattr(backend, "threads", None)  # hf: torch's CPU threads
    loaded = {k: getattr(backend, k) for k in ("dtype", "footprint_mb") if hasattr(backend, k)}
    return {
        "id": config.model,
        **({"weights": weights.provenance()} if weights and weights.provenance() else {}),
        "revision": config.revision,
        "backend": config.backend,
        "adapters": [a.provenance() for a in adapters],
        "quantization": quantization,
        "attn_implementation": getattr(backend, "attn_implementation", config.attn_implementation),
        **({"threads": threads} if isinstance(threads, int) else {}),
        **loaded,  # hf: the weights' dtype and the loaded model's memory footprint
        "sampling": sampling.model_dump(mode="json"),
    }


_FENCED = re.compile(r"```(?:json)?\s*\n(.*?)```", re.S)


def parse_json(text: str, schema: type[M], check: Callable[[M], str | None] | None = None) -> M:
    """The first JSON object in ``text`` (fences tolerated), validated; ValueError if not."""
    fenced = _FENCED.search(text)
    body = fenced.group(1) if fenced else text
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object found in the reply")
    try:
        data = json.loads(body[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc
    try:
        value = schema.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'object'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"does not match the schema: {problems}") from exc
    problem = check(value) if check else None
    if problem:
        raise ValueError(problem)
    return value


@dataclass
class JsonReply(Generic[M]):
    """A structured reply: the value (None when malformed), what went wrong, what it cost."""

    value: M | None
    error: str | None
    tries: int
    usage: Usage
    raw: str


def ask_json(
    backend: ModelBackend,
    messages: list[ChatMessage],
    schema: type[M],
    *,
    adapter: str | None,
    max_new_tokens: int,
    check: Callable[[M], str | None] | None = None,
) -> JsonReply[M]:
    """Ask for a JSON object; an invalid one is retried once with the error, then given up."""
    usage = Usage()
    error = ""
    text = ""
    for tries in (1, 2):
        request = ChatRequest(
            messages=messages,
            adapter=adapter,
            max_new_tokens=max_new_tokens,
            json_schema=schema.model_json_schema(),
        )
        (completion,) = backend.complete([request])
        usage = usage + completion.usage
        text = completion.text
        try:
            return JsonReply(parse_json(text, schema, check), None, tries, usage, text)
        except ValueError as exc:
            error = str(exc)
            if completion.finish_reason == "length":
                error += " (the reply hit the token limit)"
        messages = [
            *messages,
            ChatMessage(role="assistant", content=text),
            ChatMessage(role="user", content=render("retry_json", error=error)),
        ]
    return JsonReply(None, error, 2, usage, text)
