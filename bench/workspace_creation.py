"""Cost of one attempt workspace (create + tear down) by repository size and method.

Run: .venv/bin/python bench/workspace_creation.py [--sizes 1000 5000 10000] [--runs 15]
Generates repos of N files (~20 KB each: 5,000 files ~ 100 MB) in a temp dir, builds the
pristine tree once, then times `with manager.attempt(pristine): write one file` (median).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from patchsmith.domain import Instance
from patchsmith.infra.workspace import WorkspaceManager


def make_repo(path: Path, files: int) -> None:
    blob = ("x = 1  # padding\n" * 1200).encode()  # ~20 KB
    for i in range(files):
        d = path / f"pkg{i // 100}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i}.py").write_bytes(blob)


def time_attempts(manager: WorkspaceManager, pristine: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        with manager.attempt(pristine) as ws:
            (ws / "pkg0" / "mod0.py").write_text("x = 2\n")
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--copy-runs", type=int, default=2, help="copies are slow")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        root = Path(tmp)
        print(f"{'files':>6} {'MB':>6} {'overlay ms':>11} {'copy ms':>9}")
        for n in args.sizes:
            repo = root / f"repo{n}"
            make_repo(repo, n)
            mb = sum(f.stat().st_size for f in repo.rglob("*.py")) / 1e6
            inst = Instance(id=f"r{n}", repo=str(repo))
            auto = WorkspaceManager(root / "work")
            pristine = auto.pristine(inst)
            overlay = (
                f"{time_attempts(auto, pristine, args.runs):11.1f}"
                if auto.method == "overlay"
                else f"{'n/a':>11}"
            )
            copy = WorkspaceManager(root / "work", method="copy")
            print(
                f"{n:6d} {mb:6.0f} {overlay} {time_attempts(copy, pristine, args.copy_runs):9.1f}"
            )


if __name__ == "__main__":
    main()
