"""Tier 0 against brute force: patchsmith's search vs a naive whole-file mutation sweep.

Both get the same corpus (``bench/floor_corpus.py``: single-file programs with planted
bugs, each with its tests in three forms: pytest, unittest and a plain ``python test.py``
script) and the same wall budget per instance, with the same number of instances at once:

- patchsmith: ``patchsmith run`` on a campaign of the corpus (search tier only, the default
  sandbox, a fresh PATCHSMITH_HOME, no MLflow), every candidate screened and every fix
  verified as in production; its wall time includes the CLI's start-up;
- naive: ``bench/naive_sweep.py``: every single mutation of ``main.py`` in AST-walk order,
  a bare subprocess of the test command per mutant, no sandbox, no localization.

Printed per kind of test command: resolved, wall time, candidates tried, mean candidates to
the first fix; how patchsmith's unresolved instances ended (give-up reasons); and, over the
whole corpus, how many of the naive sweep's single mutations patchsmith's widest scope
lacks (compared as syntax trees), which must be 0 for an "exhausted" to be true.

    python bench/search_floor.py                       # all kinds, 30 s per instance
    python bench/search_floor.py --kinds script --budget 20 --limit 10
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from floor_corpus import KINDS, PROGRAMS, Program, buggy_source, write_corpus  # noqa: E402
from naive_sweep import naive_mutants, sweep  # noqa: E402

TARGET = "main.py"


@dataclass
class Side:
    resolved: int = 0
    wall_s: float = 0.0
    candidates: int = 0
    to_first_fix: list[int] | None = None
    reasons: Counter[str] | None = None
    span_s: float | None = None
    """First instance start to last instance end (the wall time without the CLI's start-up:
    imports, the store, the embedded Prefect API)."""


def _patchsmith(kind: str, projects: list[tuple[Program, Path, str]], args: argparse.Namespace,
                tmp: Path) -> Side:  # fmt: skip
    campaign = {
        "name": f"floor-{kind}",
        "instances": [
            {"id": p.name, "repo": str(d), "test_cmd": cmd, "instruction": "Fix the failing tests"}
            for p, d, cmd in projects
        ],
        "budget": {"max_attempts": 100_000, "max_wall_s": args.budget},
        "concurrency": args.slots,
        "sandbox": {"timeout_s": 30, "test_timeout_s": 5},
    }
    path = tmp / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(campaign))
    home = tmp / f"home-{kind}"
    env = {**os.environ, "PATCHSMITH_HOME": str(home)}
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/patchsmith"), "run", str(path), "--no-tracking"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.monotonic() - t0
    out = home / "runs" / f"floor-{kind}" / "outcomes.jsonl"
    if not out.is_file():
        sys.exit(f"patchsmith run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    with sqlite3.connect(home / "patchsmith.db") as db:
        first, last = db.execute("SELECT min(started), max(finished) FROM instances").fetchone()
    side = Side(wall_s=wall, to_first_fix=[], reasons=Counter(), span_s=last - first)
    assert side.to_first_fix is not None and side.reasons is not None
    for row in rows:
        side.candidates += row["attempts"]
        if row["status"] == "resolved":
            side.resolved += 1
            side.to_first_fix.append(row["attempts"])
        else:
            side.reasons[row.get("give_up") or "unknown"] += 1
            if args.verbose:
                print(f"  {kind}/{row['instance_id']}: {row['reasons'][-1][:300]}")
    return side


def _naive(projects: list[tuple[Program, Path, str]], args: argparse.Namespace) -> Side:
    side = Side(to_first_fix=[])
    assert side.to_first_fix is not None

    def one(item: tuple[Program, Path, str]) -> tuple[bool, int, int | None]:
        _, project, cmd = item
        argv = [sys.executable if w == "python" else w for w in cmd.split()]
        result = sweep(project, TARGET, argv, args.budget)
        return result.resolved, result.candidates, result.first_fix

    t0 = time.monotonic()
    with ThreadPoolExecutor(args.slots) as pool:
        for resolved, candidates, first in pool.map(one, projects):
            side.candidates += candidates
            if resolved and first is not None:
                side.resolved += 1
                side.to_first_fix.append(first)
    side.wall_s = time.monotonic() - t0
    return side


def _missing_singles(programs: list[Program]) -> tuple[int, int, list[str]]:
    """Naive single mutants (as trees) that patchsmith's whole-file scope does not hold."""
    from patchsmith.tasks.search.mutation import mutants_for

    total, missing, examples = 0, 0, []
    for p in programs:
        source = buggy_source(p)
        lines = dict.fromkeys(range(1, source.count("\n") + 2), 1.0)
        ours = {
            ast.dump(ast.parse(m.apply(source)))
            for wide in (False, True)
            for m in mutants_for(TARGET, source, lines, wide=wide)
        }
        for description, mutated in naive_mutants(source):
            total += 1
            if ast.dump(ast.parse(mutated)) not in ours:
                missing += 1
                if len(examples) < 30:
                    examples.append(f"{p.name}: {description}")
    return total, missing, examples


def _row(name: str, side: Side, count: int) -> str:
    first = side.to_first_fix or []
    mean = f"{statistics.mean(first):.1f}" if first else "-"
    span = f" (instances {side.span_s:.1f} s)" if side.span_s is not None else ""
    return (
        f"  {name:<11} resolved {side.resolved:>3}/{count}  wall {side.wall_s:7.1f} s{span}  "
        f"candidates {side.candidates:>6}  mean to first fix {mean:>6}"
    )


def _machine() -> str:
    """How fast this machine is at what both sides spend on (a Python start, Python code):
    the wall ratio moves with it (ours is Python-heavy, the sweep is process starts)."""
    starts = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        starts.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i
    loop = time.perf_counter() - t0
    return (
        f"machine: {os.cpu_count()} CPUs; python start {statistics.median(starts) * 1000:.0f} ms; "
        f"a 1e6-step Python loop {loop * 1000:.0f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    ap.add_argument("--budget", type=float, default=30.0, help="wall seconds per instance")
    ap.add_argument("--slots", type=int, default=2, help="instances at once, both sides")
    ap.add_argument("--limit", type=int, default=None, help="first N programs only")
    ap.add_argument("--only", nargs="+", default=None, help="these programs only")
    ap.add_argument("--side", choices=["both", "patchsmith", "naive"], default="both")
    ap.add_argument("--verbose", action="store_true", help="each unresolved instance's reason")
    ap.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="work in this new or empty directory and keep it: corpus, homes, stores",
    )
    args = ap.parse_args()
    programs = [p for p in PROGRAMS if args.only is None or p.name in args.only]
    programs = programs[: args.limit]
    kinds = Counter(p.kind for p in programs)
    print(f"{len(programs)} programs ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})")
    if args.keep is not None and args.keep.is_dir() and any(args.keep.iterdir()):
        ap.error(f"--keep {args.keep}: not empty; name a new or empty folder")
    print(f"budget {args.budget:g} s per instance, {args.slots} at once")
    print(_machine())
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # as patchsmith's default environment
    pytest_resolved: int | None = None
    with tempfile.TemporaryDirectory(prefix="search-floor-") as tmp_name:
        tmp = Path(tmp_name)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = args.keep
        for kind in args.kinds:
            projects = write_corpus(tmp / "corpus", kind, programs)
            print(f"\n{kind}: {projects[0][2]}")
            ours = naive = None
            if args.side in ("both", "patchsmith"):
                ours = _patchsmith(kind, projects, args, tmp)
                print(_row("patchsmith", ours, len(projects)))
                assert ours.reasons is not None
                if ours.reasons:
                    print(f"  {'':<11} unresolved by reason: {dict(ours.reasons)}")
            if args.side in ("both", "naive"):
                naive = _naive(projects, args)
                print(_row("naive", naive, len(projects)))
            if ours and naive:
                ratio = ours.wall_s / naive.wall_s if naive.wall_s else float("inf")
                inner = (ours.span_s or 0.0) / naive.wall_s if naive.wall_s else float("inf")
                print(
                    f"  target: resolved {ours.resolved} >= {naive.resolved}: "
                    f"{'yes' if ours.resolved >= naive.resolved else 'NO'}; wall ratio "
                    f"{ratio:.2f} <= 0.5: {'yes' if ratio <= 0.5 else 'NO'} "
                    f"(instances only: {inner:.2f})"
                )
            if ours and kind == "pytest":
                pytest_resolved = ours.resolved
            elif ours and pytest_resolved:
                share = ours.resolved / pytest_resolved
                print(f"  {kind} resolves {share:.0%} of what pytest resolves (target >= 90%)")
    total, missing, examples = _missing_singles(programs)
    print(f"\nnaive single mutations: {total}; missing from patchsmith's widest scope: {missing}")
    for line in examples:
        print(f"  {line}")


if __name__ == "__main__":
    main()
