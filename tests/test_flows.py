"""The Prefect flows and the CLI: real Prefect (test harness), real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import make_stats_project, patch_passes_tests, write_campaign
from typer.testing import CliRunner

from patchsmith.cli import app

pytestmark = pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning")
REPO = Path(__file__).resolve().parent.parent


def test_run_campaign_flow_writes_outputs_and_artifacts(
    prefect_harness: None, home: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    from patchsmith.flows.run_campaign import run_campaign

    project = make_stats_project(tmp_path)
    campaign = write_campaign(tmp_path, name="flowtest")
    result = run_campaign(str(campaign), out=str(tmp_path / "out"), tracking=False)
    statuses = {o["instance_id"]: o["status"] for o in result["outcomes"]}
    assert statuses == {"stats-window": "resolved", "stats-describe": "unresolved"}
    assert result["status"] == "completed"
    preds = [
        json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    ]
    patch = next(p["model_patch"] for p in preds if p["instance_id"] == "stats-window")
    assert patch_passes_tests(project, patch, "tests/test_windows.py", tmp_path)
    assert "**1/2 resolved**" in (tmp_path / "out" / "summary.md").read_text()

    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()
    keys = {a.key for a in artifact}
    assert {"flowtest-summary", "flowtest-instances", "flowtest-progress"} <= keys


def test_repair_instance_flow_and_unknown_id(
    prefect_harness: None, home: Path, tmp_path: Path
) -> None:
    from patchsmith.errors import ConfigError
    from patchsmith.flows.repair_instance import repair_instance

    make_stats_project(tmp_path)
    campaign = write_campaign(tmp_path, name="single")
    outcome = repair_instance(
        str(campaign), "stats-window", out=str(tmp_path / "o"), tracking=False
    )
    assert outcome["status"] == "resolved"
    with pytest.raises(
        ConfigError, match="no instance 'nope'; known: stats-describe, stats-window"
    ):
        repair_instance(str(campaign), "nope", tracking=False)


def test_cli_rejects_bad_campaign_before_any_work(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ninstances:\n  - id: a\n    repo: missing-dir\n")
    result = CliRunner().invoke(app, ["run", str(bad)])
    assert result.exit_code == 2
    assert "instances[0].repo: 'missing-dir' does not exist" in " ".join(result.output.split())
    assert not (home / "patchsmith.db").exists(), "no work (not even a store) before validation"


def test_cli_doctor_lists_components(home: Path) -> None:
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    for name in ("bubblewrap", "workspaces", "Prefect API", "MLflow store", "CUDA"):
        assert name in result.output


def _store_counts(db: Path) -> tuple[int, int]:
    """(outcomes, attempts) in the store, read without locking out the writer."""
    if not db.exists():
        return 0, 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            outcomes = con.execute("SELECT count(*) FROM outcomes").fetchone()[0]
            attempts = con.execute("SELECT count(*) FROM attempts").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0, 0
    return outcomes, attempts


@pytest.mark.slow
def test_sigkill_mid_campaign_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    make_stats_project(tmp_path)
    path = write_campaign(tmp_path, name="resume", concurrency=1)
    data = yaml.safe_load(path.read_text())
    # Room enough that the kill lands mid-instance: a warm attempt takes tens of ms.
    data["budget"]["max_attempts"] = 60
    path.write_text(yaml.safe_dump(data))
    home = tmp_path / "home"
    env = {**os.environ, "PATCHSMITH_HOME": str(home), "CI": "true"}
    cmd = [
        sys.executable,
        "-m",
        "patchsmith.cli",
        "run",
        str(path),
        "--out",
        str(tmp_path / "out"),
        "--no-tracking",
        "--concurrency",
        "1",
    ]
    log = tmp_path / "first-run.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, env=env, cwd=REPO, start_new_session=True, stdout=sink, stderr=subprocess.STDOUT
        )
    db = home / "patchsmith.db"
    deadline = time.monotonic() + 240
    try:
        # Kill once one instance is done and the other has recorded some attempts.
        while time.monotonic() < deadline:
            outcomes, attempts = _store_counts(db)
            if (outcomes >= 1 and attempts >= outcomes + 3) or proc.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    killed_outcomes, killed_attempts = _store_counts(db)
    assert killed_outcomes == 1 and killed_attempts > 1

    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "out" / "outcomes.jsonl").read_text().splitlines()]
    assert sorted(r["instance_id"] for r in rows) == ["stats-describe", "stats-window"]

    recorded: dict[str, int] = {}
    with sqlite3.connect(db) as con:
        per_key = con.execute("SELECT key, count(*) FROM outcomes GROUP BY key").fetchall()
        assert [n for _, n in per_key] == [1, 1], "exactly one outcome per instance"
        for key, _ in per_key:
            numbers = [
                n
                for (n,) in con.execute(
                    "SELECT a.number FROM attempts a JOIN instances i ON a.instance_run_id = i.id "
                    "WHERE i.key = ? ORDER BY a.number",
                    (key,),
                )
            ]
            cands = [
                c
                for (c,) in con.execute(
                    "SELECT a.candidate_id FROM attempts a "
                    "JOIN instances i ON a.instance_run_id = i.id WHERE i.key = ?",
                    (key,),
                )
            ]
            assert numbers == list(range(1, len(numbers) + 1)), "no attempt lost or duplicated"
            assert len(cands) == len(set(cands)), "no candidate tested twice"
            recorded[key] = len(numbers)
        total = con.execute("SELECT count(*) FROM attempts").fetchone()[0]
        final = dict(con.execute("SELECT o.instance_id, o.key FROM outcomes o").fetchall())
    assert total > killed_attempts
    # The outcome counts the attempts of the killed run too, exactly as recorded.
    for row in rows:
        assert row["attempts"] == recorded[final[row["instance_id"]]]


def test_a_stop_ends_the_flow_cancelled_with_the_campaign_interrupted(
    prefect_harness: None, home: Path, tmp_path: Path
) -> None:
    from patchsmith.flows.run_campaign import run_campaign
    from patchsmith.infra.sandbox import running
    from patchsmith.infra.store import Store

    make_stats_project(tmp_path)
    campaign = write_campaign(tmp_path, name="stopped")
    running.request_stop()  # as the CLI's Ctrl-C handler does; here before any instance
    try:
        state = run_campaign(
            str(campaign), out=str(tmp_path / "out"), tracking=False, return_state=True
        )
    finally:
        running.reset()
    assert state.is_cancelled(), state
    assert "interrupted: 0/2 instance(s) finished" in (state.message or "")
    with Store.open(home=home) as store:
        [row] = store.campaign_runs("stopped")
        assert row["status"] == "interrupted"
        assert store.instance_runs(row["id"]) == [], "no instance started after the stop"
        assert store.outcomes(row["id"]) == []
