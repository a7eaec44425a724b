"""LoRA adapter switching on the hf backend: load once, then switch per request.

Reports adapter load time, then per-request latency when consecutive requests alternate
between adapters (a, b, base) vs. stay on one adapter, and a mixed-adapter batch vs.
the same requests one adapter at a time. Run: ``.venv/bin/python bench/adapter_switch.py``
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    import torch

    from patchsmith.infra.llm import get_backend
    from patchsmith.infra.llm.config import ModelConfig
    from patchsmith.infra.llm.tiny import build_tiny_adapter, build_tiny_model
    from patchsmith.infra.llm.types import ChatRequest

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = build_tiny_model(root / "tiny")
        adapters = [
            {"name": n, "path": str(build_tiny_adapter(path, root / n, seed=i))}
            for i, n in enumerate(["a", "b"], start=1)
        ]
        start = time.perf_counter()
        plain = get_backend(ModelConfig(model=str(path), device="cpu"))
        t_plain = time.perf_counter() - start
        start = time.perf_counter()
        backend = get_backend(ModelConfig(model=str(path), device="cpu", adapters=adapters))
        t_adapters = time.perf_counter() - start
        print(f"load: base {t_plain:.2f}s, base + 2 adapters {t_adapters:.2f}s")
        del plain

        def latency(names: list[str | None]) -> float:
            times = []
            for name in names:
                request = ChatRequest.user("Fix the failing test", adapter=name, max_new_tokens=16)
                s = time.perf_counter()
                backend.complete([request])
                times.append(time.perf_counter() - s)
            return statistics.median(times)

        latency(["a"] * 3)  # warm up
        same = latency(["a"] * 30)
        switching = latency(["a", "b", None] * 10)
        print(
            f"per request, same adapter: {same * 1000:.1f} ms; switching each request: "
            f"{switching * 1000:.1f} ms; switch cost ~ {(switching - same) * 1000:+.1f} ms"
        )
        mixed = [
            ChatRequest.user(f"Fix test {i}", adapter=n, max_new_tokens=16)
            for i, n in enumerate(["a", "b", None] * 4)
        ]
        s = time.perf_counter()
        backend.complete(mixed)
        t_mixed = time.perf_counter() - s
        s = time.perf_counter()
        for name in ["a", "b", None]:
            backend.complete([r for r in mixed if r.adapter == name])
        t_grouped = time.perf_counter() - s
        print(
            f"12 requests over 3 adapters: one mixed batch {t_mixed * 1000:.0f} ms, "
            f"three single-adapter batches {t_grouped * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
