"""The in-process vllm backend: runs only on a CUDA worker with vLLM installed."""

from __future__ import annotations

import importlib.util
import os

import pytest

from patchsmith.infra.llm import get_backend
from patchsmith.infra.llm.config import ModelConfig
from patchsmith.infra.llm.types import ChatRequest


def _cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed"),
    pytest.mark.skipif(not _cuda(), reason="no CUDA GPU"),
]


def test_vllm_completes_with_usage() -> None:
    model = os.environ.get("PATCHSMITH_VLLM_TEST_MODEL")
    if not model:
        pytest.skip("set PATCHSMITH_VLLM_TEST_MODEL to a local model directory")
    backend = get_backend(ModelConfig(model=model, backend="vllm", max_context=512))
    [c] = backend.complete([ChatRequest.user("Say hi", max_new_tokens=4)])
    assert c.usage.completion_tokens >= 1 and c.usage.gpu_seconds > 0
