"""Micro benchmark: tracking overhead per instance, MlflowTracker vs NullTracker.

Simulates instances of typical size (N attempts, each with a diff, a test-log tail, a
critique and, for LLM tiers, a model call) through ``tracking_sim.run_fake_instance`` and
prints the median wall time per instance with each tracker and the difference. The
simulation itself does no real work, so the difference *is* the tracking cost; compare it
with a real instance's wall time (seconds to minutes) for the "<= 10%" target.

    .venv/bin/python bench/tracking_overhead.py --instances 20 --attempts 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the simulator

from tracking_sim import Step, run_fake_instance

from patchsmith.config import Campaign
from patchsmith.domain import AttemptStatus, Instance
from patchsmith.infra.tracking import NullTracker, Prices, Tracker

LLM = {"model": "qwen2.5-coder-1.5b", "quantization": {"method": "bnb-4bit", "quant_type": "nf4"}}


def plan(attempts: int) -> list[Step]:
    """Half search attempts, then LLM attempts; the last one is accepted."""
    llm = Step(tier="llm", generator="hf", model=LLM, tokens_in=2000, tokens_out=300,
               gpu_seconds=2.0, prices=Prices(per_gpu_hour=2.0))  # fmt: skip
    steps = [Step() if i < attempts // 2 else llm for i in range(attempts - 1)]
    return [*steps, Step(status=AttemptStatus.accepted)]


def per_instance(tracker: Tracker, n: int, attempts: int, diff: int, log: int) -> list[float]:
    """Seconds per instance for ``n`` instances under one campaign run."""
    repo = tempfile.mkdtemp()
    instances = [Instance(instance_id=f"b{k}", repo=repo) for k in range(n)]
    campaign = Campaign(name=f"bench-{time.time_ns()}", instances=instances)
    cid = tracker.start_campaign(campaign, config_hash="bench", flow_run_id=None)
    times = []
    for inst in campaign.instances:
        t0 = time.perf_counter()
        run_fake_instance(tracker, cid, inst, plan(attempts), diff_lines=diff, log_lines=log)
        times.append(time.perf_counter() - t0)
    tracker.end_campaign(cid, [], config_yaml="")
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=20)
    ap.add_argument("--attempts", type=int, default=8)
    ap.add_argument("--diff-lines", type=int, default=40)
    ap.add_argument("--log-lines", type=int, default=200)
    ap.add_argument("--uri", default=None, help="tracking URI (default: a fresh sqlite store)")
    args = ap.parse_args()
    from patchsmith.infra.tracking_mlflow import MlflowTracker

    home = Path(tempfile.mkdtemp())
    tracker = MlflowTracker(args.uri or f"sqlite:///{home / 'mlflow.db'}")
    sizes = (args.instances, args.attempts, args.diff_lines, args.log_lines)
    per_instance(tracker, 2, *sizes[1:])  # warm-up: migration, imports, first trace
    null = statistics.median(per_instance(NullTracker(), *sizes))
    t0 = time.perf_counter()
    mlf = statistics.median(per_instance(tracker, *sizes))
    tracker.flush()
    total = time.perf_counter() - t0
    print(f"{args.instances} instances x {args.attempts} attempts, diff {args.diff_lines} lines, "
          f"log {args.log_lines} lines, store {tracker.tracking_uri}")  # fmt: skip
    print(f"null tracker : {null * 1000:8.1f} ms / instance (median)")
    print(f"mlflow       : {mlf * 1000:8.1f} ms / instance (median)")
    print(f"overhead     : {(mlf - null) * 1000:8.1f} ms / instance "
          f"({(mlf - null) * 1000 / args.attempts:.1f} ms / attempt); "
          f"campaign incl. end + trace flush {total:.1f} s; errors {tracker.errors}")  # fmt: skip


if __name__ == "__main__":
    main()
