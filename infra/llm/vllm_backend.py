"""The ``vllm`` backend: in-process ``vllm.LLM`` on a CUDA worker.

For GPU workers whose environment has vLLM (it pins its own torch/transformers, so it
does not live in the main environment: see FIELD_NOTES). Adapters are ``LoRARequest``\\ s
chosen per request (``enable_lora`` is on when adapters are configured); quantization is
a pre-quantized checkpoint (awq / gptq / fp8: vLLM has no bitsandbytes); ``json_schema``
becomes ``StructuredOutputsParams(json=...)``. One ``llm.chat`` call serves the batch.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from patchsmith.domain import Strict, Usage
from patchsmith.errors import ConfigError, MissingExtra
from patchsmith.infra.llm.config import ModelConfig, Sampling
from patchsmith.infra.llm.types import ChatRequest, Completion


class Options(Strict):
    """``options:`` of a vllm model."""

    gpu_memory_utilization: float = Field(
        default=0.85, gt=0, le=1, description="Share of GPU memory vLLM may take."
    )
    max_lora_rank: int = Field(default=64, gt=0, description="Largest adapter rank allowed.")
    max_loras: int = Field(default=4, gt=0, description="Adapters resident at once.")
    tensor_parallel_size: int = Field(default=1, gt=0, description="GPUs per model.")


class VLLMBackend:
    """A ``vllm.LLM`` engine in this process."""

    def __init__(self, config: ModelConfig) -> None:
        try:
            import torch
            import vllm
        except ImportError as exc:
            raise MissingExtra("the vllm model backend", "vllm") from exc
        if not torch.cuda.is_available():
            raise ConfigError("backend vllm needs a CUDA GPU: use backend: hf on this machine")
        self.config = config
        self.options = Options.model_validate(config.options)
        q = config.quantization.method
        kwargs: dict[str, Any] = {
            "model": config.model,
            "revision": config.revision,
            "max_model_len": config.max_context,
            "gpu_memory_utilization": self.options.gpu_memory_utilization,
            "tensor_parallel_size": self.options.tensor_parallel_size,
            "quantization": None if q == "none" else q,
        }
        if config.dtype != "auto":
            kwargs["dtype"] = config.dtype
        if config.adapters:
            kwargs.update(
                enable_lora=True,
                max_lora_rank=self.options.max_lora_rank,
                max_loras=self.options.max_loras,
            )
        self.llm = vllm.LLM(**kwargs)
        from vllm.lora.request import LoRARequest

        self._lora = {
            ref.name: LoRARequest(ref.name, i, ref.path)
            for i, ref in enumerate(config.adapters, start=1)
        }

    def _params(self, request: ChatRequest) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        s: Sampling = request.sampling or self.config.sampling
        return SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k if s.top_k is not None else -1,
            seed=s.seed,
            stop=s.stop or None,
            max_tokens=request.max_new_tokens,
            logprobs=0,
            structured_outputs=(
                StructuredOutputsParams(json=request.json_schema)
                if request.json_schema is not None
                else None
            ),
        )

    def complete(self, requests: list[ChatRequest]) -> list[Completion]:
        """One ``llm.chat`` call for the whole batch (vLLM schedules it)."""
        for r in requests:
            if r.adapter is not None:
                self.config.adapter(r.adapter)
        started = time.perf_counter()
        outputs = self.llm.chat(
            [[m.model_dump() for m in r.messages] for r in requests],
            sampling_params=[self._params(r) for r in requests],
            lora_request=[self._lora[r.adapter] if r.adapter else None for r in requests],
            use_tqdm=False,
        )
        elapsed = time.perf_counter() - started
        gpu_s = elapsed * self.options.tensor_parallel_size / len(requests)
        out = []
        for r, o in zip(requests, outputs, strict=True):
            gen = o.outputs[0]
            n_prompt, n_done = len(o.prompt_token_ids or []), len(gen.token_ids)
            mean = (
                gen.cumulative_logprob / n_done
                if gen.cumulative_logprob is not None and n_done
                else None
            )
            out.append(
                Completion(
                    text=gen.text,
                    usage=Usage(
                        prompt_tokens=n_prompt,
                        completion_tokens=n_done,
                        latency_s=elapsed,
                        gpu_seconds=gpu_s,
                        dollars=self.config.prices.dollars(n_prompt, n_done, gpu_s),
                    ),
                    mean_logprob=mean,
                    finish_reason="length" if gen.finish_reason == "length" else "stop",
                    model=self.config.model,
                    adapter=r.adapter,
                )
            )
        return out
