"""Per-candidate cost on the examples vs a bare pytest of the same test file, same run.

For each fixable example instance: one plan (baseline), then, interleaved, R rounds of
  * bare      ``python -m pytest -q TEST_FILE`` in a plain copy of the project, with the
              same interpreter and environment the sandbox gets (no sandbox, no workspace);
  * rejected  ``test_step`` of a candidate that leaves the target failing (overlay
              workspace + diff + bwrap + targets-first pytest run that stops there);
  * accepted  ``test_step`` of the answer-key fix (targets, then the rest of the file).
Prints medians per instance and over all, and the extra ms of each path over bare.

    .venv/bin/python bench/candidate_cost.py [--instances N] [--rounds R]
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _diff(pristine: Path, rel: str, old: str, new: str) -> str:
    text = (pristine / rel).read_text()
    assert old in text, f"{rel}: answer line not found"
    after = text.replace(old, new, 1)
    lines = difflib.unified_diff(
        text.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{rel}", f"b/{rel}"
    )
    return "".join(lines)


def _time_instance(
    ctx: Any, inst: Any, plan: Any, pristine: Path, cands: dict[str, Any], tmp: Path, rounds: int
) -> dict[str, list[float]]:
    """Interleaved rounds of bare pytest and test_step per candidate, in ms."""
    from patchsmith.tasks import repair

    plain = tmp / f"plain-{inst.instance_id}"
    shutil.copytree(pristine, plain)
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    bare_argv = [sys.executable, *inst.test_cmd.split()[1:]]
    times: dict[str, list[float]] = {"bare": [], **{name: [] for name in cands}}
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run(bare_argv, cwd=plain, env=env, capture_output=True, check=False)
        times["bare"].append((time.perf_counter() - t0) * 1000)
        for name, cand in cands.items():
            t0 = time.perf_counter()
            repair.test_step(ctx, inst, plan, pristine, cand)
            times[name].append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PATCHSMITH_HOME"] = str(Path(tmp) / "home")
        from patchsmith.config import load_campaign
        from patchsmith.domain import Candidate
        from patchsmith.infra.sandbox import get_sandbox
        from patchsmith.infra.settings import configure
        from patchsmith.infra.workspace import WorkspaceManager
        from patchsmith.tasks import repair

        home = configure()
        campaign = load_campaign(ROOT / "examples" / "campaign.yaml")
        answers = json.loads((ROOT / "examples" / "answers.json").read_text())
        ctx = repair.RepairContext(
            campaign=campaign,
            sandbox=get_sandbox(campaign.sandbox.backend),
            workspaces=WorkspaceManager(home / "workspaces"),
        )
        fixable = [i for i in campaign.instances if "fixable" in i.tags][: args.instances]
        rows: list[tuple[str, float, float, float]] = []
        for inst in fixable:
            ans = answers[inst.instance_id]
            pristine = repair.prepare_pristine(ctx, inst)
            plan = repair.plan_step(ctx, inst, pristine)
            ctx.end_screen(inst)  # the plan's warm session: the timings start their own
            good = _diff(pristine, ans["file"], ans["buggy"], ans["fixed"])
            bad = _diff(pristine, ans["file"], ans["buggy"], ans["buggy"] + "  # no-op")
            cands = {
                name: Candidate(
                    candidate_id=Candidate.make_id(d), generator="bench", tier="search", diff=d
                )
                for name, d in (("accepted", good), ("rejected", bad))
            }
            times = _time_instance(ctx, inst, plan, pristine, cands, Path(tmp), args.rounds)
            med = {k: statistics.median(v) for k, v in times.items()}
            rows.append((inst.instance_id, med["bare"], med["rejected"], med["accepted"]))
    print(f"per-candidate wall ms, median of {args.rounds} rounds ({os.cpu_count()} cpus)")
    print(f"{'instance':<36} {'bare':>7} {'rejected':>9} {'+ms':>6} {'accepted':>9} {'+ms':>6}")
    for iid, bare, rej, acc in rows:
        print(f"{iid:<36} {bare:7.0f} {rej:9.0f} {rej - bare:6.0f} {acc:9.0f} {acc - bare:6.0f}")
    bare = statistics.median(r[1] for r in rows)
    rej = statistics.median(r[2] for r in rows)
    acc = statistics.median(r[3] for r in rows)
    print(f"{'median':<36} {bare:7.0f} {rej:9.0f} {rej - bare:6.0f} {acc:9.0f} {acc - bare:6.0f}")


if __name__ == "__main__":
    main()
