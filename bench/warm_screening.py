"""Warm vs cold screening of the same candidates, in the same run.

For each instance (the 20 single-file programs of ``bench/programs.py`` and/or the example
campaign), the real pipeline plans it (baseline + coverage in the sandbox), mutation search
proposes up to ``--per-instance`` candidates, and each candidate is screened twice:

- cold: what ``test_step`` did before warm screening (a fresh overlay workspace, the diff
  applied, ``staged_run`` in a new sandbox: targets first, then the rest);
- warm: ``WarmRunner.run`` (a fork of one sandboxed pytest session per instance).

Printed: candidates/s each way and the speedup; the warm path's overhead per candidate over
the time its tests took inside the session (``duration - tests_s``, medians); how often the
two agree (same target outcomes, same critique verdict); warm session start-up.

    python bench/warm_screening.py --set programs --per-instance 30
    python bench/warm_screening.py --set examples
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def _programs_campaign(tmp: Path) -> Path:
    from programs import write_programs

    projects = write_programs(tmp / "programs")
    data = {
        "name": "programs",
        "instances": [
            {"id": p.name, "repo": str(p), "test_cmd": "python -m pytest -q tests/test_prog.py"}
            for p in projects
        ],
        "sandbox": {"timeout_s": 60, "env": {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}},
    }
    path = tmp / "programs.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=["programs", "examples", "both"], default="both")
    ap.add_argument("--per-instance", type=int, default=30)
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    from patchsmith.config import load_campaign
    from patchsmith.domain import TestOutcome
    from patchsmith.infra.sandbox import get_sandbox
    from patchsmith.infra.workspace import WorkspaceManager
    from patchsmith.tasks.critique import critique
    from patchsmith.tasks.edits.diff import apply_diff
    from patchsmith.tasks.repair import (
        RepairContext,
        candidate_limits,
        plan_step,
        prepare_pristine,
        sandbox_config,
    )
    from patchsmith.tasks.search.mutation import MutationSearch
    from patchsmith.tasks.testing.precheck import new_sources, present
    from patchsmith.tasks.testing.run import staged_run
    from patchsmith.tasks.testing.warm import WarmRunner

    tmp = Path(tempfile.mkdtemp(prefix="warm-bench-"))
    sets = ["programs", "examples"] if args.set == "both" else [args.set]
    sandbox = get_sandbox("auto")
    print(f"sandbox: {sandbox.name}; up to {args.per_instance} candidates per instance")
    for which in sets:
        path = _programs_campaign(tmp) if which == "programs" else ROOT / "examples/campaign.yaml"
        campaign = load_campaign(path)
        ctx = RepairContext(campaign=campaign, sandbox=sandbox,
                            workspaces=WorkspaceManager(tmp / f"ws-{which}"))  # fmt: skip
        cold_s = warm_s = 0.0
        n = fallbacks = agree = skipped = 0
        overheads: list[float] = []
        cold_each: list[float] = []
        warm_each: list[float] = []
        limited = 0
        starts: list[float] = []
        refuted = warm_pass = same_verdict = 0
        for inst in campaign.instances:
            try:
                pristine = prepare_pristine(ctx, inst)
                config = sandbox_config(ctx, inst, pristine)
            except Exception as exc:  # an instance whose environment cannot build here
                print(f"  {inst.instance_id}: skipped ({type(exc).__name__}: {exc})")
                skipped += 1
                continue
            plan = plan_step(ctx, inst, pristine)
            ctx.end_screen(inst)  # the plan's warm session: this bench starts its own
            if not plan.fail_to_pass:
                skipped += 1
                continue
            limits = candidate_limits(config, plan)
            candidates = MutationSearch(max_order=1).propose(
                pristine, plan, set(), args.per_instance, tier="search"
            )
            runner = WarmRunner(sandbox, ctx.workspaces, pristine, inst.test_cmd, limits,
                                lifetime_s=3600, targets=plan.fail_to_pass,
                                guards=plan.pass_to_pass)  # fmt: skip
            t0 = time.perf_counter()
            runner.ensure_started()
            starts.append(time.perf_counter() - t0)
            for cand in candidates:
                if runner.why_cold(cand.diff, plan.fail_to_pass) is not None:
                    fallbacks += 1
                    continue
                t0 = time.perf_counter()
                with ctx.workspaces.attempt(pristine) as ws:
                    apply_diff(ws, cand.diff)
                    cold = staged_run(sandbox, ws, inst.test_cmd, limits, plan.fail_to_pass)
                t1 = time.perf_counter()
                files = present(new_sources(pristine, cand.diff))
                warm = runner.run(files, plan.fail_to_pass, limits)
                t2 = time.perf_counter()
                if warm is None:
                    fallbacks += 1
                    continue
                n += 1
                cold_s += t1 - t0
                warm_s += t2 - t1
                if TestOutcome.timeout in cold.outcomes.values() or cold.timed_out:
                    limited += 1  # a looping mutant: both paths wait for the per-test limit
                else:
                    cold_each.append(t1 - t0)
                    warm_each.append(t2 - t1)
                tests_s = runner.last_answer.get("tests_s")
                if isinstance(tests_s, int | float):
                    overheads.append((t2 - t1) - tests_s)
                v_cold = critique(plan, cold, cand.diff).verdict
                v_warm = critique(plan, warm, cand.diff).verdict
                targets_same = all(cold.outcomes.get(t) == warm.outcomes.get(t)
                                   for t in plan.fail_to_pass)  # fmt: skip
                agree += int(v_cold == v_warm and targets_same)
                same_verdict += int(v_cold == v_warm)
                if not (v_cold == v_warm and targets_same):
                    print(f"  differs: {inst.instance_id}: {cand.description}: cold "
                          f"{v_cold.value} {[cold.outcomes.get(t) for t in plan.fail_to_pass]}"
                          f" warm {v_warm.value} "
                          f"{[warm.outcomes.get(t) for t in plan.fail_to_pass]}")  # fmt: skip
                if v_warm.value == "accept":
                    warm_pass += 1
                    refuted += int(v_cold.value != "accept")
            runner.close()
        if not n:
            print(f"[{which}] no candidates screened")
            continue
        print(f"[{which}] {len(campaign.instances) - skipped} instances, {n} candidates "
              f"screened both ways, {fallbacks} cold-only, {skipped} skipped")  # fmt: skip
        print(f"  cold: {n / cold_s:6.1f} candidates/s ({1000 * cold_s / n:.0f} ms each)")
        print(f"  warm: {n / warm_s:6.1f} candidates/s ({1000 * warm_s / n:.0f} ms each)"
              f"  -> {cold_s / warm_s:.1f}x")  # fmt: skip
        if overheads:
            p90 = sorted(overheads)[int(0.9 * (len(overheads) - 1))]
            print(
                f"  warm overhead over the tests' own time in the session: median "
                f"{1000 * statistics.median(overheads):.1f} ms, p90 {1000 * p90:.1f} ms"
            )
        if warm_each:
            c_med, w_med = statistics.median(cold_each), statistics.median(warm_each)
            print(f"  without the {limited} that ran into a time limit: median cold "
                  f"{1000 * c_med:.0f} ms, warm {1000 * w_med:.0f} ms -> {c_med / w_med:.1f}x; "
                  f"{len(warm_each) / sum(warm_each):.1f} vs {len(cold_each) / sum(cold_each):.1f}"
                  " candidates/s")  # fmt: skip
        print(f"  warm session start-up: median {statistics.median(starts):.2f} s")
        print(
            f"  agreement warm vs cold: same verdict {same_verdict}/{n}, same verdict and "
            f"target outcomes {agree}/{n}"
        )
        print(f"  warm 'accept' verdicts the cold run refutes: {refuted}/{warm_pass}")


if __name__ == "__main__":
    main()
