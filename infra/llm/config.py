"""Model configuration: which model, served how, quantized how, priced how.

One ``ModelConfig`` describes one LLM tier's model. It is validated when the campaign is
loaded; impossible combinations fail there with a message that says what to use instead::

    model: Qwen/Qwen2.5-Coder-1.5B-Instruct
    backend: hf
    quantization: {method: bnb-4bit, quant_type: nf4, double_quant: true}
    adapters: [{name: fix-py, path: adapters/fix-py, base_model: Qwen/Qwen2.5-Coder-1.5B-Instruct}]
    prices: {per_gpu_hour: 2.0}
    options: {max_batch_size: 16}        # backend-specific, validated by the backend

``quantization`` also takes a bare method name (``quantization: bnb-8bit``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from patchsmith.domain import Strict
from patchsmith.errors import ConfigError
from patchsmith.infra.llm.registry import options_class

QuantMethod = Literal["none", "bnb-8bit", "bnb-4bit", "awq", "gptq", "fp8"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]


class Quantization(Strict):
    """How the weights are quantized. bnb-* quantize at load time (hf backend only);
    awq/gptq/fp8 name pre-quantized checkpoints (vLLM's cheap tier)."""

    method: QuantMethod = Field(default="none", description="Quantization scheme.")
    quant_type: Literal["nf4", "fp4"] = Field(
        default="nf4", description="bnb-4bit data type (nf4 is the QLoRA default)."
    )
    double_quant: bool = Field(
        default=True, description="bnb-4bit: quantize the quantization constants too."
    )
    compute_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="bfloat16", description="bnb-4bit: dtype of the matmuls (float32 on CPU)."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"method": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _bnb4_fields_only_for_bnb4(self) -> Quantization:
        changed = {"quant_type", "double_quant", "compute_dtype"} & self.model_fields_set
        if changed and self.method != "bnb-4bit":
            raise ValueError(
                f"{sorted(changed)} apply to bnb-4bit only; remove them or use method: bnb-4bit"
            )
        return self


class Sampling(Strict):
    """Decoding settings. The default is greedy (temperature 0)."""

    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 = greedy.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: int | None = Field(default=None, gt=0, description="Keep the k best tokens.")
    seed: int | None = Field(default=None, description="Seed for sampled decoding.")
    stop: list[str] = Field(default_factory=list, description="Stop strings (not returned).")

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic argmax."""
        return self.temperature == 0.0


class Prices(Strict):
    """What a model costs. Unset everywhere = unknown (``Usage.dollars`` is None)."""

    per_1k_prompt: float | None = Field(default=None, ge=0, description="$ per 1k input tokens.")
    per_1k_completion: float | None = Field(
        default=None, ge=0, description="$ per 1k output tokens."
    )
    per_gpu_hour: float | None = Field(default=None, ge=0, description="$ per GPU-hour.")

    def dollars(
        self, prompt_tokens: int, completion_tokens: int, gpu_seconds: float
    ) -> float | None:
        """Cost of one call, or None when no price is configured."""
        if (
            self.per_1k_prompt is None
            and self.per_1k_completion is None
            and (self.per_gpu_hour is None)
        ):
            return None
        total = prompt_tokens / 1000 * (self.per_1k_prompt or 0.0)
        total += completion_tokens / 1000 * (self.per_1k_completion or 0.0)
        total += gpu_seconds / 3600 * (self.per_gpu_hour or 0.0)
        return total


class AdapterRef(Strict):
    """A LoRA adapter a model may use, chosen per request by ``name``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Name in requests.")
    path: str = Field(description="Local directory or hub id of the peft adapter.")
    base_model: str | None = Field(
        default=None,
        description="Base model the adapter was trained on; read from adapter_config.json "
        "when the path is a local directory.",
    )


def _adapter_base(ref: AdapterRef) -> str | None:
    if ref.base_model is not None:
        return ref.base_model
    cfg = Path(ref.path) / "adapter_config.json"
    if cfg.is_file():
        base = json.loads(cfg.read_text()).get("base_model_name_or_path")
        return str(base) if base else None
    return None


def _same_model(a: str, b: str) -> bool:
    if a == b:
        return True
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return a.rstrip("/").lower() == b.rstrip("/").lower()


class ModelConfig(Strict):
    """One model as a campaign tier uses it."""

    model: str = Field(min_length=1, description="Hub id or local path (served name for openai).")
    revision: str | None = Field(default=None, description="Hub revision (commit, tag, branch).")
    backend: Literal["hf", "openai", "vllm", "scripted"] = Field(
        default="hf", description="Backend short name (see patchsmith.infra.llm.BACKENDS)."
    )
    quantization: Quantization = Field(default_factory=Quantization)
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        default="auto", description="auto = flash_attention_2 with CUDA + flash-attn, else sdpa."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where an in-process model runs (auto = cuda if present)."
    )
    dtype: Dtype = Field(
        default="auto",
        description="Weights dtype (auto: bfloat16, on CPU too: faster than fp32 and bnb there).",
    )
    adapters: list[AdapterRef] = Field(default_factory=list, description="LoRA adapters.")
    max_context: int = Field(default=4096, gt=0, description="Prompt + completion tokens at most.")
    sampling: Sampling = Field(default_factory=Sampling)
    prices: Prices = Field(default_factory=Prices)
    request_timeout_s: float = Field(default=120.0, gt=0, description="Per-request timeout.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Backend-specific settings, validated by the backend."
    )
    gpu_pool: str | None = Field(
        default=None,
        description="A GPU pool of the campaign (gpu_pools): each call holds gpu_slots of its "
        "Prefect global concurrency limit gpu-POOL, so no more calls than the pool's slots "
        "run at once over every worker.",
    )
    gpu_slots: int = Field(default=1, gt=0, description="Slots of gpu_pool one call occupies.")

    @field_validator("adapters")
    @classmethod
    def _unique_adapter_names(cls, value: list[AdapterRef]) -> list[AdapterRef]:
        names = [a.name for a in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"adapter names must be unique; repeated: {dupes}")
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> ModelConfig:
        q = self.quantization.method
        if self.backend == "vllm" and q.startswith("bnb"):
            raise ValueError(
                f"quantization {q} is not available on vLLM (it has no bitsandbytes): use an "
                "AWQ/GPTQ/fp8 checkpoint (quantization: awq | gptq | fp8), or backend: hf"
            )
        if self.backend == "vllm" and self.attn_implementation != "auto":
            raise ValueError(
                "vLLM picks its own attention kernels: use attn_implementation: auto with "
                "backend: vllm"
            )
        if self.device == "cpu" and self.attn_implementation == "flash_attention_2":
            raise ValueError(
                "flash_attention_2 needs a CUDA GPU: use attn_implementation: sdpa (or auto) "
                "on device: cpu"
            )
        if self.device == "cpu" and q in ("fp8", "awq", "gptq"):
            raise ValueError(
                f"quantization {q} needs a CUDA GPU: use bnb-8bit or bnb-4bit on device: cpu"
            )
        if self.device == "cpu" and self.backend == "vllm":
            raise ValueError("backend vllm needs a CUDA GPU: use backend: hf on device: cpu")
        for ref in self.adapters:
            base = _adapter_base(ref)
            if base is not None and self.backend != "openai" and not _same_model(base, self.model):
                raise ValueError(
                    f"adapter {ref.name!r} was trained on {base!r}, not on {self.model!r}: "
                    f"use an adapter trained on {self.model!r}, or set model: {base}"
                )
        options_class(self.backend).model_validate(self.options)
        return self

    def adapter(self, name: str) -> AdapterRef:
        """The adapter called ``name``; a ConfigError lists the configured ones."""
        for ref in self.adapters:
            if ref.name == name:
                return ref
        known = [a.name for a in self.adapters] or "none"
        raise ConfigError(f"unknown adapter {name!r} for model {self.model!r}; configured: {known}")
