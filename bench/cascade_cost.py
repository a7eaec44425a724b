"""The cascade against "always the strongest tier" on the example campaign.

Runs ``patchsmith run`` on variants of examples/campaign.yaml, each in a fresh
PATCHSMITH_HOME (nothing reused but the converted model), and prints per variant: resolved,
wall time, the CPU seconds of the whole run (patchsmith, its Prefect server, every
sandboxed test: the run's process tree), then ``patchsmith report``'s per-tier table
(attempts, tokens and model CPU-seconds per success):

  cascade    the example as it is: search, then the model for what search cannot fix
  search     the search tier alone
  strongest  the model tier alone, on every instance

    .venv/bin/python bench/cascade_cost.py                       # all three
    .venv/bin/python bench/cascade_cost.py --variants strongest --keep /tmp/cc

Needs the model (``patchsmith models install qwen2.5-coder-1.5b``) and the unitreg wheel
in examples/wheels (scripts/demo.sh builds both). The strongest variant is slow on CPU:
every instance costs the model ~2 calls of up to 200 tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("cascade", "search", "strongest")


def _campaign(variant: str, dest: Path) -> Path:
    """The example campaign for ``variant``, its repos and find_links made absolute."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "campaign.yaml").read_text())
    data["name"] = f"example-{variant}"  # each variant is its own MLflow experiment
    for inst in data["instances"]:
        inst["repo"] = str(ROOT / "examples" / inst["repo"])
        env = inst.get("environment") or {}
        if "find_links" in env:
            env["find_links"] = [str(ROOT / "examples" / p) for p in env["find_links"]]
    kinds = {"search": ["search"], "strongest": ["llm"], "cascade": ["search", "llm"]}[variant]
    data["tiers"] = [t for t in data["tiers"] if t["kind"] in kinds]
    path = dest / f"{variant}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _run(variant: str, tmp: Path) -> dict[str, Any]:
    campaign = _campaign(variant, tmp)
    home, out = tmp / f"home-{variant}", tmp / f"out-{variant}"
    env = {**os.environ, "PATCHSMITH_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    home.mkdir()
    cmd = [str(ROOT / ".venv/bin/patchsmith"), "run", str(campaign), "--out", str(out)]
    t0 = time.perf_counter()
    with open(tmp / f"{variant}.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{variant}: patchsmith run failed; see {tmp / f'{variant}.log'}")
    outcomes = [json.loads(line) for line in (out / "outcomes.jsonl").read_text().splitlines()]
    report = subprocess.run(
        [str(ROOT / ".venv/bin/patchsmith"), "report", str(campaign)],
        env={**env, "COLUMNS": "200"}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {
        "variant": variant,
        "resolved": sorted(o["instance_id"] for o in outcomes if o["status"] == "resolved"),
        "instances": len(outcomes),
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,  # the run and every child it waited for
        "report": report.stdout,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--keep", type=Path, help="a new or empty folder for homes, logs, outputs")
    args = ap.parse_args()
    if args.keep is not None and args.keep.is_dir() and any(args.keep.iterdir()):
        ap.error(f"--keep {args.keep}: not empty; name a new or empty folder")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="patchsmith-cascade-"))
    results = [_run(v, tmp) for v in args.variants]
    for r in results:
        head = f"{r['variant']}: {len(r['resolved'])}/{r['instances']} resolved"
        print(f"\n{head}, wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s (process tree)")
        print(r["report"].rstrip())
    by = {r["variant"]: set(r["resolved"]) for r in results}
    if "cascade" in by and "strongest" in by:
        print(f"\nresolved by the cascade only: {sorted(by['cascade'] - by['strongest'])}")
        print(f"resolved by the strongest tier only: {sorted(by['strongest'] - by['cascade'])}")
    print(f"\nhomes, logs and outputs in {tmp}")


if __name__ == "__main__":
    main()
