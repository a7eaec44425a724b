"""The ``hf`` backend: transformers in process, bitsandbytes quantization, peft adapters.

Concurrent ``complete`` calls from many threads are gathered by a ``MicroBatcher`` into
one left-padded ``generate`` call (bounded wait), and one batch may mix adapters (peft's
``adapter_names``; ``"__base__"`` = no adapter). Each completion carries token counts and
the mean log-probability of its tokens under the model (raw logits, before sampling
processors). ``json_schema`` is not enforced here: callers validate the text.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any, Literal

from pydantic import Field

from patchsmith.domain import Strict, Usage
from patchsmith.errors import ConfigError, MissingExtra
from patchsmith.infra.llm import gguf
from patchsmith.infra.llm.batching import MicroBatcher
from patchsmith.infra.llm.config import ModelConfig, Quantization, Sampling
from patchsmith.infra.llm.types import ChatRequest, Completion

BASE = "__base__"


class Options(Strict):
    """``options:`` of an hf model."""

    # Batching pays on CPU too (Qwen2.5-Coder-1.5B bf16, 2 cores, greedy): two different
    # ~600-token prompts decode 5.60 tok/s batched vs 3.41 in turn; four short identical
    # ones 18.9 vs 4.8 (bench/model_speed.py). Set 1 to run requests one at a time.
    max_batch_size: int = Field(default=16, gt=0, description="Requests per generate call.")
    batch_wait_ms: float = Field(
        default=10.0, ge=0, description="How long the first request waits for others to join."
    )
    logprobs: bool = Field(default=True, description="Compute mean token log-probabilities.")
    threads: int | None = Field(
        default=None, gt=0, description="CPU threads for torch (default: torch's, one per core)."
    )


def resolve_device(choice: str, cuda_available: bool) -> str:
    """``auto`` → cuda when available, else cpu; an explicit cuda without CUDA fails."""
    if choice == "auto":
        return "cuda" if cuda_available else "cpu"
    if choice == "cuda" and not cuda_available:
        raise ConfigError("device: cuda, but torch sees no CUDA GPU: use device: cpu (or auto)")
    return choice


def resolve_attention(choice: str, device: str, flash_attn_installed: bool) -> str:
    """The ``attn_implementation`` to pass to transformers.

    auto = flash_attention_2 when on CUDA with flash-attn installed, else sdpa. transformers
    raises (no fallback) when flash-attn is asked for and missing, so decide here.
    """
    if choice == "auto":
        return "flash_attention_2" if device == "cuda" and flash_attn_installed else "sdpa"
    if choice == "flash_attention_2":
        if device != "cuda":
            raise ConfigError("flash_attention_2 needs a CUDA GPU: use attn_implementation: sdpa")
        if not flash_attn_installed:
            raise MissingExtra("attn_implementation: flash_attention_2", "gpu")
    return choice


def bnb_config(quant: Quantization) -> Any:
    """A ``BitsAndBytesConfig`` for bnb-8bit / bnb-4bit, None for other methods."""
    if not quant.method.startswith("bnb"):
        return None
    try:
        import bitsandbytes  # noqa: F401
        import torch
        from transformers import BitsAndBytesConfig
    except ImportError as exc:
        raise MissingExtra(f"quantization {quant.method}", "hf") from exc
    if quant.method == "bnb-8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant.quant_type,
        bnb_4bit_use_double_quant=quant.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, quant.compute_dtype),
    )


class HFBackend:
    """A transformers model (optionally quantized, with LoRA adapters) in this process."""

    def __init__(self, config: ModelConfig) -> None:
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise MissingExtra("the hf model backend", "hf") from exc
        self.config = config
        self.options = Options.model_validate(config.options)
        if self.options.threads is not None:
            torch.set_num_threads(self.options.threads)
        self.threads = torch.get_num_threads()
        self.device = resolve_device(config.device, torch.cuda.is_available())
        self.attn_implementation = resolve_attention(
            config.attn_implementation,
            self.device,
            importlib.util.find_spec("flash_attn") is not None,
        )
        # auto = bf16 on CPU too: decoding is memory-bound, and on this project's 2-core
        # AVX2 machines bf16 decodes 2.7x faster than fp32 and 12x faster than bnb nf4
        # (Qwen2.5-Coder-1.5B, one greedy request: 4.6 vs 1.73 vs 0.39 tok/s; rerun with
        # bench/model_speed.py --quant bf16 fp32 nf4).
        dtype_name = "bfloat16" if config.dtype == "auto" else config.dtype
        self.dtype = dtype_name
        # A catalog name or a GGUF file loads from its converted folder (made once).
        self.source = gguf.resolve(config.model)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            self.source.path, revision=config.revision
        )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = transformers.AutoModelForCausalLM.from_pretrained(
            self.source.path,
            revision=config.revision,
            dtype=getattr(torch, dtype_name),
            attn_implementation=self.attn_implementation,
            quantization_config=bnb_config(config.quantization),
            device_map={"": self.device},
        )
        model.eval()
        self.footprint_mb = round(model.get_memory_footprint() / 2**20, 1)
        self.base_model = model
        self.model = self._load_adapters(model)
        self._batcher: MicroBatcher[ChatRequest, Completion] = MicroBatcher(
            self._complete_batch,
            max_batch=self.options.max_batch_size,
            max_wait_s=self.options.batch_wait_ms / 1000,
        )

    def _load_adapters(self, model: Any) -> Any:
        if not self.config.adapters:
            return model
        try:
            from peft import PeftModel
        except ImportError as exc:
            raise MissingExtra("LoRA adapters", "hf") from exc
        first, *rest = self.config.adapters
        peft_model = PeftModel.from_pretrained(model, first.path, adapter_name=first.name)
        for ref in rest:
            peft_model.load_adapter(ref.path, adapter_name=ref.name)
        peft_model.eval()
        return peft_model

    @property
    def batch_sizes(self) -> list[int]:
        """Sizes of the generate calls made so far."""
        return self._batcher.batch_sizes

    def complete(self, requests: list[ChatRequest]) -> list[Completion]:
        """Complete ``requests``; concurrent callers share generate calls."""
        for r in requests:
            if r.adapter is not None:
                self.config.adapter(r.adapter)
        return self._batcher.submit(requests)

    def _complete_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            key = (r.sampling or self.config.sampling).model_dump_json()
            groups.setdefault(key, []).append(i)
        out: list[Completion | None] = [None] * len(requests)
        for indices in groups.values():
            sampling = requests[indices[0]].sampling or self.config.sampling
            for i, c in zip(
                indices, self._generate([requests[i] for i in indices], sampling), strict=True
            ):
                out[i] = c
        return [c for c in out if c is not None]

    def _generate(self, requests: list[ChatRequest], sampling: Sampling) -> list[Completion]:
        import torch

        # torch's intra-op thread count is per calling thread (OpenMP keeps it per thread):
        # the thread that loaded the model (a campaign's background warm-up) is not the
        # one generating, so it is set again here, and the count this call ran with kept.
        if self.options.threads is not None:
            torch.set_num_threads(self.options.threads)
        self.threads = torch.get_num_threads()
        started, cpu_started = time.perf_counter(), time.process_time()
        tok = self.tokenizer
        prompts = [
            tok.apply_chat_template(
                [m.model_dump() for m in r.messages], add_generation_prompt=True, tokenize=False
            )
            for r in requests
        ]
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        budgets = [
            min(r.max_new_tokens, self.config.max_context - len(x))
            for r, x in zip(requests, ids, strict=True)
        ]
        live = [i for i, b in enumerate(budgets) if b > 0]
        results: dict[int, tuple[list[int], list[float]]] = {
            i: ([], []) for i in range(len(requests))
        }
        if live:
            enc = tok.pad({"input_ids": [ids[i] for i in live]}, return_tensors="pt").to(
                self.device
            )
            kwargs: dict[str, Any] = {
                "max_new_tokens": max(budgets[i] for i in live),
                "return_dict_in_generate": True,
                "output_logits": self.options.logprobs,
                "pad_token_id": tok.pad_token_id,
                "eos_token_id": tok.eos_token_id,
            }
            if sampling.greedy:
                kwargs["do_sample"] = False
            else:
                kwargs.update(
                    do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p
                )
                if sampling.top_k is not None:
                    kwargs["top_k"] = sampling.top_k
                if sampling.seed is not None:
                    torch.manual_seed(sampling.seed)
            if sampling.stop:
                kwargs.update(stop_strings=sampling.stop, tokenizer=tok)
            if self.model is not self.base_model:
                kwargs["adapter_names"] = [requests[i].adapter or BASE for i in live]
            with torch.inference_mode():
                out = self.model.generate(**enc, **kwargs)
            new = out.sequences[:, enc["input_ids"].shape[1] :]
            logps = None
            if self.options.logprobs:
                logps = torch.stack(
                    [
                        torch.log_softmax(step.float(), dim=-1)
                        .gather(1, new[:, t : t + 1])
                        .squeeze(1)
                        for t, step in enumerate(out.logits)
                    ],
                    dim=1,
                ).cpu()
            new = new.cpu()
            for row, i in enumerate(live):
                tokens = new[row, : budgets[i]].tolist()
                if tok.eos_token_id in tokens:
                    tokens = tokens[: tokens.index(tok.eos_token_id) + 1]
                lp = logps[row, : len(tokens)].tolist() if logps is not None else []
                results[i] = (tokens, lp)
        elapsed = time.perf_counter() - started
        share = (time.process_time() - cpu_started) / len(requests)
        gpu_s = elapsed / len(requests) if self.device == "cuda" else 0.0
        return [
            self._completion(r, ids[i], *results[i], budgets[i], sampling, elapsed, gpu_s, share)
            for i, r in enumerate(requests)
        ]

    def _completion(
        self,
        request: ChatRequest,
        prompt: list[int],
        tokens: list[int],
        logprobs: list[float],
        budget: int,
        sampling: Sampling,
        latency: float,
        gpu_s: float,
        cpu_s: float,
    ) -> Completion:
        tok = self.tokenizer
        finish: Literal["stop", "length"] = "length"
        if tokens and tokens[-1] == tok.eos_token_id:
            finish = "stop"
        text = str(tok.decode(tokens, skip_special_tokens=True))
        cuts = [text.find(s) for s in sampling.stop if s in text]
        if cuts:
            text, finish = text[: min(cuts)], "stop"
        if budget <= 0:
            finish = "length"
        usage = Usage(
            prompt_tokens=len(prompt),
            completion_tokens=len(tokens),
            latency_s=latency,
            gpu_seconds=gpu_s,
            cpu_seconds=cpu_s,
            dollars=self.config.prices.dollars(len(prompt), len(tokens), gpu_s),
        )
        return Completion(
            text=text,
            usage=usage,
            mean_logprob=sum(logprobs) / len(logprobs) if logprobs else None,
            finish_reason=finish,
            model=self.config.model,
            adapter=request.adapter,
        )
