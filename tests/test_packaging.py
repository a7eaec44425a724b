"""The installed package: the card's root folders install as ``patchsmith.flows`` & co.

``flows/ tasks/ adapters/ infra/`` sit at the repository root and pyproject's
``package-dir`` maps them under ``patchsmith``. The listing is explicit, so the first test
fails when a new package folder or data file is not listed. The second builds a wheel,
installs it into a fresh venv and runs a real campaign from there, away from the
checkout, so nothing works only because the repository happens to be on the path.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
import yaml
from helpers import make_stats_project, write_campaign

ROOT = Path(__file__).resolve().parent.parent
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_folders() -> dict[str, Path]:
    """Every package the mapped folders hold, by dotted name (nested maps win)."""
    found: dict[str, Path] = {}
    for name, folder in sorted(SETUPTOOLS["package-dir"].items()):
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            found[".".join([name, *rel])] = init.parent
    return found


def test_every_package_and_data_file_is_listed() -> None:
    folders = _package_folders()
    assert set(SETUPTOOLS["package-dir"]) == {
        "patchsmith", "patchsmith.flows", "patchsmith.tasks", "patchsmith.adapters",
        "patchsmith.infra",
    }  # fmt: skip
    assert set(SETUPTOOLS["packages"]) == set(folders), (
        "pyproject [tool.setuptools] packages must list every package folder: "
        f"missing {sorted(set(folders) - set(SETUPTOOLS['packages']))}, "
        f"stale {sorted(set(SETUPTOOLS['packages']) - set(folders))}"
    )
    data = SETUPTOOLS["package-data"]
    for name, folder in folders.items():
        for path in folder.iterdir():
            if path.is_file() and path.suffix not in {".py", ".pyc"}:
                globs = data.get(name, [])
                assert any(fnmatch.fnmatch(path.name, g) for g in globs), (
                    f"{path.relative_to(ROOT)} would be left out of the wheel: add it to "
                    f'[tool.setuptools.package-data] "{name}"'
                )


def _build_wheel(tmp_path: Path) -> Path:
    """A wheel built from a copy of the package's files (the checkout is not written to)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in set(SETUPTOOLS["package-dir"].values()):
        shutil.copytree(
            ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = dist.glob("patchsmith-*.whl")
    return wheel


def _fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    """A venv with only the wheel installed; dependencies are read from this venv's
    site-packages through a plain path entry, so this venv's editable patchsmith (a
    finder activated by a ``.pth`` there) is not seen."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    from uv import find_uv_bin

    subprocess.run(
        [
            find_uv_bin(),
            "pip",
            "install",
            "-q",
            "--offline",
            "--no-deps",
            "--python",
            str(python),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "UV_NO_CONFIG": "1"},
    )
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


IMPORT_ALL = """
import importlib, json, pkgutil, patchsmith
names = ["patchsmith"] + [m.name for m in pkgutil.walk_packages(patchsmith.__path__, "patchsmith.")]
# Alembic's scripts run only inside alembic (env.py reads alembic.context.config).
names = [n for n in names if not n.startswith("patchsmith.infra.store.migrations.")]
# The pytest plugins and fork servers run on the repository's Python with their folder on
# sys.path, as top-level modules (the way ``-p`` loads them), never as patchsmith's submodules.
plugin = "patchsmith.tasks.testing.pytest_plugin."
plugins = [n[len(plugin):] for n in names if n.startswith(plugin)]
names = [n for n in names if not n.startswith(plugin)]
files = {n: importlib.import_module(n).__file__ for n in names}
import os, sys
sys.path.insert(0, os.path.dirname(files["patchsmith.tasks.testing.pytest_plugin"]))
files.update({plugin + n: importlib.import_module(n).__file__ for n in plugins})
from patchsmith.prompts import prompt_hash
from patchsmith.infra.store.migrate import MIGRATIONS
print(json.dumps({"files": files, "prompt": len(prompt_hash("planner_system")),
                  "mako": (MIGRATIONS / "script.py.mako").is_file()}))
"""


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_imports_everything_and_runs_a_campaign(tmp_path: Path) -> None:
    venv = _fresh_venv(tmp_path, _build_wheel(tmp_path))
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.pop("PATCHSMITH_DB_URL", None)
    env.update(
        PATCHSMITH_HOME=str(tmp_path / "home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONPATH="",
    )

    probe = subprocess.run(
        [venv / "bin" / "python", "-c", IMPORT_ALL],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout)
    installed = str(venv / "lib")
    assert {
        "patchsmith.flows.run_campaign",
        "patchsmith.tasks.testing.run",
        "patchsmith.tasks.search.mutation",
        "patchsmith.infra.sandbox.bwrap",
        "patchsmith.adapters.registry",
        "patchsmith.tasks.testing.pytest_plugin.patchsmith_warm",
    } <= set(found["files"])
    elsewhere = {n: f for n, f in found["files"].items() if not f.startswith(installed)}
    assert not elsewhere, f"imported from outside the fresh venv: {elsewhere}"
    assert found["prompt"] > 0 and found["mako"]

    # A real campaign with the wheel's patchsmith. The repository's tests run under this
    # venv's interpreter (an ``environment: python:``), which has pytest; the orchestrator,
    # the guard plugin and the migrations all come from the fresh venv.
    make_stats_project(work)
    campaign = write_campaign(
        work, name="wheel", concurrency=1, environment={"python": sys.executable}
    )
    data = yaml.safe_load(campaign.read_text())
    data["instances"] = data["instances"][:1]  # stats-window: fixable by mutation
    campaign.write_text(yaml.safe_dump(data, sort_keys=False))
    run = subprocess.run(
        [
            venv / "bin" / "patchsmith",
            "run",
            str(campaign),
            "--out",
            str(work / "out"),
            "--no-tracking",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    (outcome,) = [json.loads(line) for line in (work / "out" / "outcomes.jsonl").open()]
    assert outcome["instance_id"] == "stats-window"
    assert outcome["status"] == "resolved", outcome
