"""Refactoring campaign benchmark: one recipe over generated repositories.

Generates R repositories of F modules each (every fifth module calls ``datetime.utcnow()``,
every seventh names ``timezone.utc``; one test file per repository imports every module),
then measures:
  * patchsmith: ``run_campaign``'s steps called directly (no Prefect API, no MLflow) over
    the R refactor instances, the `utc-aware` recipe with its rewrite and ruff's UP017 fixer,
    sandboxed, verified on a fresh workspace; wall time, share of occurrences migrated by
    the codemod tier;
  * by hand: the same codemods run directly on a copy of each repository (patchsmith's
    rewrite function in process, ``ruff check --fix`` as a subprocess) plus one pytest run:
    what a person scripting it would do, without sandbox, baseline or verification.

    .venv/bin/python bench/refactor.py [--repos 20] [--files 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RECIPE = {
    "name": "utc-aware",
    "instruction": "Replace datetime.utcnow() with datetime.now(UTC), timezone.utc with UTC.",
    "goal": {
        "forbid": [
            {
                "pattern": "datetime.utcnow()",
                "rewrite": "datetime.now(UTC)",
                "imports": ["from datetime import UTC"],
            },
            {"pattern": "timezone.utc"},
        ]
    },
    "codemods": {"ruff": ["UP017"], "ruff_target": "py311"},
}


def make_repo(root: Path, index: int, files: int) -> Path:
    repo = root / f"svc{index:02d}"
    pkg = repo / f"svc{index:02d}"
    (repo / "tests").mkdir(parents=True)
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    names = []
    for i in range(files):
        body = [
            "from datetime import datetime, timezone",
            "",
            "",
            f"def value_{i}(x: int) -> int:",
            f"    return x * {i % 7 + 1} + {i}",
            "",
        ]
        if i % 5 == 0:
            body += ["", f"def stamp_{i}() -> str:", "    return f'{datetime.utcnow():%Y}'", ""]
        if i % 7 == 0:
            body += ["", f"def zone_{i}() -> str:", "    return str(timezone.utc)", ""]
        (pkg / f"mod{i:03d}.py").write_text("\n".join(body))
        names.append(f"mod{i:03d}")
    imports = "\n".join(f"from svc{index:02d} import {n}" for n in names)
    checks = "\n".join(
        f"    assert {n}.value_{i}(1) == {i % 7 + 1 + i}" for i, n in enumerate(names)
    )
    (repo / "tests" / "test_all.py").write_text(f"{imports}\n\n\ndef test_values():\n{checks}\n")
    return repo


def by_hand(repo: Path, work: Path) -> float:
    """The codemods applied directly to a copy, then the tests once: seconds."""
    from patchsmith.recipes import Goal
    from patchsmith.tasks.refactor.goal import rewrite

    goal = Goal.model_validate(RECIPE["goal"])
    t0 = time.perf_counter()
    copy = work / repo.name
    shutil.copytree(repo, copy)
    for path in copy.rglob("*.py"):
        text = path.read_text()
        new = rewrite(text, goal)
        if new != text:
            path.write_text(new)
    ruff = Path(sys.executable).parent / "ruff"
    fix = ["check", "--fix", "--exit-zero", "--no-cache", "--quiet", "--target-version", "py311"]
    subprocess.run([str(ruff), *fix, "--select", "UP017", "."], cwd=copy, check=True)
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=copy,
                   check=True, capture_output=True)  # fmt: skip
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=20)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-refactor-"))
    os.environ["PATCHSMITH_HOME"] = str(tmp / "home")
    from patchsmith.config import load_campaign
    from patchsmith.infra.settings import configure
    from patchsmith.tasks.campaign import close_session, open_session, run_instance
    from patchsmith.tasks.repair import DIRECT

    home = configure(tmp / "home")
    repos = [make_repo(tmp / "repos", i, args.files) for i in range(args.repos)]
    campaign_file = tmp / "campaign.yaml"
    recipe = {**RECIPE, "repos": [str(r) for r in repos]}
    campaign_file.write_text(yaml.safe_dump({"name": "bench-refactor", "recipes": [recipe],
                                             "concurrency": 1}))  # fmt: skip
    campaign = load_campaign(campaign_file)
    session = open_session(campaign, home=home, out_dir=tmp / "out", tracking=False)
    t0 = time.perf_counter()
    outcomes = [run_instance(session, inst, DIRECT) for inst in campaign.instances]
    wall = time.perf_counter() - t0
    close_session(session, "", interrupted=False)
    before = sum(o.goal.before for o in outcomes if o.goal)
    after = sum(o.goal.after for o in outcomes if o.goal)
    codemod = sum(o.goal.by_tier.get("codemod", 0) for o in outcomes if o.goal)
    done = sum(o.goal is not None and o.goal.state == "done" for o in outcomes)
    work = tmp / "hand"
    work.mkdir()
    hand = sum(by_hand(r, work) for r in repos)
    print(
        f"{args.repos} repositories x {args.files} files, recipe utc-aware (rewrite + ruff UP017)"
    )
    print(f"patchsmith: {wall:.1f} s wall ({wall / args.repos:.2f} s per repository), "
          f"{done}/{args.repos} done, {before - after}/{before} occurrences migrated, "
          f"{codemod} by the codemod tier ({100 * codemod / max(before, 1):.0f}%)")  # fmt: skip
    print(f"by hand (codemods + one pytest run, no sandbox, no verification): {hand:.1f} s "
          f"({hand / args.repos:.2f} s per repository)")  # fmt: skip
    print(
        f"patchsmith overhead per repository: {(wall - hand) / args.repos:.2f} s "
        "(baseline run, sandboxed tools, guard run and goal check per candidate, verify run)"
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
