"""Model backends by short name: the table, and loading one backend's module or Options.

Imports nothing of patchsmith's model config, so ``config.py`` can validate a backend's
options through it while ``infra/llm/__init__.py`` builds backends from a ``ModelConfig``.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel

from patchsmith.errors import ConfigError

BACKENDS: dict[str, str] = {
    "hf": "patchsmith.infra.llm.hf:HFBackend",
    "openai": "patchsmith.infra.llm.openai_backend:OpenAIBackend",
    "vllm": "patchsmith.infra.llm.vllm_backend:VLLMBackend",
    "scripted": "patchsmith.infra.llm.scripted:ScriptedBackend",
}


def load(name: str, attr: str | None = None) -> Any:
    """The backend class ``name`` (or another attribute of its module), imported now."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown model backend {name!r}; valid: {', '.join(sorted(BACKENDS))}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), attr or cls)


def options_class(name: str) -> type[BaseModel]:
    """The pydantic class that validates ``ModelConfig.options`` for backend ``name``."""
    cls: type[BaseModel] = load(name, "Options")
    return cls
