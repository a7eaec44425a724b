"""Where ``patchsmith run``'s time goes: wall seconds per phase, summed over every instance.

Runs the CLI in this process with timers around the phases of an instance (plan's test
runs, the warm session's start, calibration and runs, each candidate's ``_try``, cold
verification, store writes) and prints, when the run ends, each phase's total, count and
mean. Phases nest (``_try`` holds its warm run and its store write), and instances run in
parallel slots, so totals add up to more than the wall time: compare them with each other
and with the instances' count. The timers are installed after the Prefect API is chosen
(Prefect must not be imported before).

    .venv/bin/python bench/phases.py run CAMPAIGN.yaml --no-tracking

e.g. on the corpus ``bench/search_floor.py --keep DIR`` writes (``DIR/script.yaml``).
"""

from __future__ import annotations

import atexit
import functools
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

TOTAL: defaultdict[str, float] = defaultdict(float)
COUNT: Counter[str] = Counter()


def _timed(owner: Any, name: str, label: str) -> None:
    fn: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TOTAL[label] += time.perf_counter() - t0
            COUNT[label] += 1

    setattr(owner, name, timed)


def _install() -> None:
    import patchsmith.tasks.planning as planning
    import patchsmith.tasks.repair as repair
    from patchsmith.tasks.testing.warm import WarmRunner

    for owner, name, label in (
        (repair, "_repair", "instance (all of it)"),
        (repair, "prepare_pristine", "pristine tree"),
        (repair, "check_environment", "environment preflight"),
        (planning, "run_tests", "plan: test runs (baseline, re-run)"),
        (repair, "generate_step", "generate (a round)"),
        (repair, "_try", "candidate (_try)"),
        (WarmRunner, "_start", "warm: session start"),
        (WarmRunner, "_calibrate", "warm: calibration run"),
        (WarmRunner, "run", "warm: candidate run"),
        (WarmRunner, "close", "warm: close"),
        (repair, "staged_run", "cold: candidate run"),
        (repair, "_verify", "verify (cold, fresh workspace)"),
        (repair, "_record", "record an attempt"),
    ):
        _timed(owner, name, label)


def _report() -> None:
    print(f"\n{'phase':<38} {'total s':>8} {'count':>6} {'ms each':>8}", file=sys.stderr)
    for label, total in sorted(TOTAL.items(), key=lambda kv: -kv[1]):
        each = 1000 * total / COUNT[label]
        print(f"{label:<38} {total:8.2f} {COUNT[label]:6d} {each:8.1f}", file=sys.stderr)


def main() -> None:
    import patchsmith.cli as cli

    start_api = cli.start_api

    def start_then_time(home: Any) -> Any:
        server = start_api(home)
        _install()
        return server

    cli.start_api = start_then_time
    atexit.register(_report)
    sys.argv = ["patchsmith", *sys.argv[1:]]
    cli.app()


if __name__ == "__main__":
    main()
