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

from typing import TYPE_CHECKING

from patchsmith.infra.llm.registry import BACKENDS, load, options_class

if TYPE_CHECKING:
    from patchsmith.infra.llm.config import ModelConfig
    from patchsmith.infra.llm.types import ModelBackend


def get_backend(config: ModelConfig) -> ModelBackend:
    """Build the backend ``config.backend`` names (loads the model for in-process ones)."""
    backend: ModelBackend = load(config.backend)(config)
    return backend


__all__ = ["BACKENDS", "get_backend", "options_class"]
