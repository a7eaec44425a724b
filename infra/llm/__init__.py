"""Model backends, found by short name.

``get_backend(config)`` imports the backend's module only when it is used; heavy
libraries (torch, transformers, peft, bitsandbytes, vllm, openai) are imported inside
the backend and fail with ``MissingExtra`` naming the extra to install.

| name     | module                 | runs                                              |
| -------- | ---------------------- | ------------------------------------------------- |
| hf       | hf.py (+ batching.py)  | transformers + bitsandbytes + peft, in process    |
| openai   | openai_backend.py      | any OpenAI-compatible server (vLLM, llama.cpp...) |
| vllm     | vllm_backend.py        | in-process ``vllm.LLM`` on a CUDA worker          |
| scripted | scripted.py            | replays given completions (tests)                 |
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from patchsmith.errors import ConfigError

if TYPE_CHECKING:
    from patchsmith.infra.llm.config import ModelConfig
    from patchsmith.infra.llm.types import ModelBackend

BACKENDS: dict[str, str] = {
    "hf": "patchsmith.infra.llm.hf:HFBackend",
    "openai": "patchsmith.infra.llm.openai_backend:OpenAIBackend",
    "vllm": "patchsmith.infra.llm.vllm_backend:VLLMBackend",
    "scripted": "patchsmith.infra.llm.scripted:ScriptedBackend",
}


def _load(name: str, attr: str | None = None) -> Any:
    if name not in BACKENDS:
        raise ConfigError(f"unknown model backend {name!r}; valid: {', '.join(sorted(BACKENDS))}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), attr or cls)


def options_class(name: str) -> type[BaseModel]:
    """The pydantic class that validates ``ModelConfig.options`` for backend ``name``."""
    cls: type[BaseModel] = _load(name, "Options")
    return cls


def get_backend(config: ModelConfig) -> ModelBackend:
    """Build the backend ``config.backend`` names (loads the model for in-process ones)."""
    backend: ModelBackend = _load(config.backend)(config)
    return backend


__all__ = ["BACKENDS", "get_backend", "options_class"]
