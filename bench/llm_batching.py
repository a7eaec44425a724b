"""hf backend throughput: 8 concurrent requests (micro-batched) vs. one at a time.

Builds the tiny model in a temp dir (offline), then measures completion tokens/s for
8 requests sent one after another and for the same 8 sent from 8 threads at once.
Target: >= 4x. Run: ``.venv/bin/python bench/llm_batching.py [--threads-torch 1]``
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from patchsmith.infra.llm import get_backend
    from patchsmith.infra.llm.config import ModelConfig
    from patchsmith.infra.llm.tiny import build_tiny_model
    from patchsmith.infra.llm.types import ChatRequest

    torch.set_num_threads(args.torch_threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(Path(tmp) / "tiny")
        backend = get_backend(
            ModelConfig(model=str(path), device="cpu", options={"max_batch_size": args.requests})
        )
        requests = [
            ChatRequest.user(f"Fix the failing test number {i}", max_new_tokens=args.new_tokens)
            for i in range(args.requests)
        ]
        backend.complete(requests[:1])  # warm up

        def sequential() -> int:
            return sum(backend.complete([r])[0].usage.completion_tokens for r in requests)

        def concurrent() -> int:
            counts = [0] * len(requests)

            def one(i: int) -> None:
                counts[i] = backend.complete([requests[i]])[0].usage.completion_tokens

            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return sum(counts)

        rates = {}
        for name, fn in (("one at a time", sequential), ("concurrent", concurrent)):
            best = 0.0
            for _ in range(args.repeats):
                start = time.perf_counter()
                tokens = fn()
                best = max(best, tokens / (time.perf_counter() - start))
            rates[name] = best
            print(f"{name:>14}: {best:8.1f} tokens/s (best of {args.repeats})")
        print(f"batch sizes of the last run: {backend.batch_sizes[-3:]}")
        print(f"speed-up: {rates['concurrent'] / rates['one at a time']:.1f}x (target >= 4x)")


if __name__ == "__main__":
    main()
