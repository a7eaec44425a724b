"""Per-command cost of the sandbox: `python -c pass` bare vs bwrap vs the subprocess backend,
and vs the docker backend on a private dockerd (started and stopped here) where one can run.

Run: .venv/bin/python bench/sandbox_overhead.py [--runs 30]
Prints the median wall time of each way and the extra ms per command over bare Popen.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from patchsmith.domain import SandboxConfig
from patchsmith.infra.sandbox import dockerd
from patchsmith.infra.sandbox.bwrap import BwrapSandbox
from patchsmith.infra.sandbox.docker_backend import DockerSandbox
from patchsmith.infra.sandbox.subprocess_backend import SubprocessSandbox

ARGV = [sys.executable, "-c", "pass"]


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    warnings.simplefilter("ignore", RuntimeWarning)  # the subprocess backend's no-isolation note
    config = SandboxConfig(timeout_s=60)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        if os.geteuid() == 0:
            os.chown(ws, 65534, 65534)
        ways: dict[str, Callable[[], object]] = {
            "bare Popen": lambda: subprocess.run(ARGV, cwd=ws, capture_output=True, check=True),
            "subprocess backend": lambda: SubprocessSandbox().run(ws, ARGV, config),
        }
        if shutil.which("bwrap"):
            bwrap = BwrapSandbox()
            ways["bwrap backend"] = lambda: bwrap.run(ws, ARGV, config)
        why_not = dockerd.unavailable_reason()
        if why_not is None:
            engine = stack.enter_context(dockerd.PrivateDockerd(Path(tmp) / "dockerd"))
            docker = DockerSandbox(engine.url)
            ways["docker backend"] = lambda: docker.run(ws, ARGV, config)
        else:
            print(f"docker backend: skipped ({why_not})")
        # interleave rounds so that noise from other load hits every way alike
        results: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(3):
            for name, fn in ways.items():
                results[name].append(median_ms(fn, max(10, runs // 3)))
    base = statistics.median(results["bare Popen"])
    print(f"`python -c pass`, median of {runs}+ runs per way ({os.cpu_count()} cpus)")
    print(f"{'way':<20} {'ms':>8} {'extra ms':>9}")
    for name, values in results.items():
        ms = statistics.median(values)
        print(f"{name:<20} {ms:8.1f} {ms - base:9.1f}")


if __name__ == "__main__":
    main()
