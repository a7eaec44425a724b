"""Real-model speed on this machine: tokens/s and memory of a catalog model via the hf backend.

For each weights setting (fp32 = the converted folder as is, bf16 = the hf backend's default,
bnb 8-bit, bnb 4-bit nf4 with bf16 or fp32 compute), in a fresh process each (peak RSS is
per process): load time, the model's footprint, resident memory after load, and greedy
decode speed for 1 request and for N concurrent requests (the backend's micro-batcher puts
them in one generate call).

    python bench/model_speed.py                                  # qwen2.5-coder-1.5b
    python bench/model_speed.py --model qwen2.5-coder-0.5b --quant bf16 nf4 --concurrent 8
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

QUANT: dict[str, dict[str, Any]] = {  # ModelConfig fields of each row
    "fp32": {"dtype": "float32"},
    "bf16": {"dtype": "bfloat16"},
    "bnb-8bit": {"quantization": {"method": "bnb-8bit"}},
    "nf4": {"quantization": {"method": "bnb-4bit", "quant_type": "nf4",
                             "compute_dtype": "bfloat16"}},
    "nf4-fp32": {"dtype": "float32", "quantization": {"method": "bnb-4bit", "quant_type": "nf4",
                                                      "compute_dtype": "float32"}},
}  # fmt: skip
PROMPT = (
    "Fix the bug with a SEARCH/REPLACE block.\n\nmain.py\n```python\n"
    "def is_even(n):\n    return n % 2 == 1\n```\n"
)


def _one(model: str, quant: str, concurrent: int, tokens: int) -> dict[str, float]:
    from patchsmith.infra.llm.config import ModelConfig
    from patchsmith.infra.llm.types import ChatMessage, ChatRequest
    from patchsmith.tasks.llm.models import backend_for

    t0 = time.monotonic()
    config = ModelConfig.model_validate(
        {"model": model, "backend": "hf", "device": "cpu", **QUANT[quant],
         "options": {"batch_wait_ms": 50}}
    )  # fmt: skip
    backend = backend_for(config)
    loaded = time.monotonic() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    request = ChatRequest(
        messages=[ChatMessage(role="user", content=PROMPT)], max_new_tokens=tokens
    )
    footprint = float(getattr(backend, "footprint_mb", 0))
    out = {"load_s": loaded, "rss_after_load_mb": rss_mb, "footprint_mb": footprint}
    for n in (1, concurrent):
        t1 = time.monotonic()
        with ThreadPoolExecutor(n) as pool:
            done = list(pool.map(lambda _: backend.complete([request])[0], range(n)))
        spent = time.monotonic() - t1
        generated = sum(c.usage.completion_tokens for c in done)
        out[f"tok_s_{n}"] = generated / spent
        out[f"tokens_{n}"] = generated
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["threads"] = float(getattr(backend, "threads", 0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--quant", nargs="+", choices=list(QUANT), default=list(QUANT))
    ap.add_argument("--concurrent", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        result = _one(args.model, args.child, args.concurrent, args.tokens)
        print("RESULT " + json.dumps(result))
        return
    print(f"{args.model}: greedy, {args.tokens} new tokens per request, cpu")
    for quant in args.quant:
        cmd = [sys.executable, __file__, "--model", args.model, "--child", quant,
               "--concurrent", str(args.concurrent), "--tokens", str(args.tokens)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"  {quant:<8} failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
            continue
        r = json.loads(line[7:])
        print(
            f"  {quant:<8} load {r['load_s']:5.1f} s  model {r['footprint_mb']:6.0f} MB  "
            f"rss {r['rss_after_load_mb']:6.0f} MB "
            f"(peak {r['peak_rss_mb']:6.0f})  1 request {r['tok_s_1']:5.2f} tok/s  "
            f"{args.concurrent} at once {r[f'tok_s_{args.concurrent}']:5.2f} tok/s  "
            f"threads {r['threads']:.0f}"
        )


if __name__ == "__main__":
    main()
