"""Clean stops of a real ``patchsmith run`` process: Ctrl-C, SIGTERM, and ``kill -9``.

Each test starts the real CLI in a subprocess with its own PATCHSMITH_HOME (store, MLflow,
Prefect), waits until the store shows recorded attempts, signals it, and then looks at what
is left: exit code, store, MLflow, processes; then runs it again and checks the resume.
Bounded waits (``timeout=``) are the failure signal; nothing asserts how long a step took.
"""

from __future__ import annotations

import contextlib
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
from helpers import make_stats_project, write_campaign

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning"),
]
REPO = Path(__file__).resolve().parent.parent
#: makes every test run in the sandbox take a second, so a stop lands mid-run
SLOW_CONFTEST = "import time\n\ntime.sleep(1.0)\n"


def _campaign(tmp_path: Path, **overrides: object) -> Path:
    project = make_stats_project(tmp_path)
    (project / "conftest.py").write_text(SLOW_CONFTEST)
    path = write_campaign(tmp_path, name="stops", concurrency=1, **overrides)
    data = yaml.safe_load(path.read_text())
    data["budget"]["max_attempts"] = 40
    path.write_text(yaml.safe_dump(data))
    return path


def _cmd(campaign: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "patchsmith.cli", "run", str(campaign), "--out", str(out),
            "--concurrency", "1", *extra]  # fmt: skip


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.pop("PATCHSMITH_DB_URL", None)
    return {**env, "PATCHSMITH_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def _query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Rows from a SQLite store, read-only (never locks out the writer); [] before tables."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []


def _wait_for(proc: subprocess.Popen[bytes], what: str, ready: object, log: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if callable(ready) and ready():
            return
        if proc.poll() is not None:
            pytest.fail(f"run ended ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"no {what} within 240 s:\n{log.read_text()[-3000:]}")


def _descendants(root: int) -> dict[int, int]:
    """pid -> start time of every process below ``root`` (by parent links in /proc)."""
    parents: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "stat").read_text()
            except OSError:
                continue
            fields = raw[raw.rindex(")") + 2 :].split()
            parents[int(entry.name)] = (int(fields[1]), int(fields[19]))
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, (ppid, start) in parents.items():
            if ppid == pid and child not in found:
                found[child] = start
                frontier.append(child)
    return found


def _still_there(pid: int, start: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[19]) == start and fields[0] != "Z"


def _server_record(home: Path) -> dict[str, int]:
    records = list((home / "run").glob("*.json"))
    assert len(records) == 1, records
    info: dict[str, int] = json.loads(records[0].read_text())
    return info


def _check_resume(db: Path) -> None:
    """One outcome per instance; attempt numbers 1..n per key; no candidate tested twice."""
    per_key = _query(db, "SELECT key, count(*) FROM outcomes GROUP BY key")
    assert sorted(n for _, n in per_key) == [1, 1], per_key
    for key, _ in per_key:
        rows = _query(
            db,
            "SELECT a.number, a.candidate_id FROM attempts a "
            "JOIN instances i ON a.instance_run_id = i.id WHERE i.key = ? ORDER BY a.number",
            key,
        )
        numbers = [n for n, _ in rows]
        cands = [c for _, c in rows]
        assert numbers == list(range(1, len(numbers) + 1)), f"gap or duplicate: {numbers}"
        assert len(cands) == len(set(cands)), "a candidate was tested twice"


def _one_done_one_started(db: Path) -> bool:
    done = {i for (i,) in _query(db, "SELECT instance_id FROM outcomes")}
    started = {
        i
        for (i,) in _query(
            db, "SELECT i.instance_id FROM attempts a JOIN instances i ON a.instance_run_id = i.id"
        )
    }
    return len(done) == 1 and bool(started - done)


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_signal_stops_cleanly_and_the_next_run_resumes(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    campaign = _campaign(tmp_path)
    home, out = tmp_path / "home", tmp_path / "out"
    db = home / "patchsmith.db"
    log = tmp_path / "first.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            _cmd(campaign, out), env=_env(home), cwd=REPO, start_new_session=True,
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        # One instance resolved, the other one has recorded attempts and is testing more
        # (with one slot, either may go first).
        _wait_for(
            proc,
            "one outcome and attempts of the other instance",
            lambda: _one_done_one_started(db),
            log,
        )
        server = _server_record(home)
        children = _descendants(proc.pid)
        assert server["server"] in children or _still_there(
            server["server"], server["server_start"]
        )
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text()
    assert proc.returncode == code, text[-3000:]
    assert "interrupted" in text and "Run the same command again to resume" in text

    assert _query(db, "SELECT status FROM campaigns") == [("interrupted",)]
    statuses = dict(_query(db, "SELECT instance_id, status FROM instances"))
    # stats-window resolves, stats-describe ends unresolved: whichever ran first is done.
    (done_id,) = [i for i, st in statuses.items() if st in ("resolved", "unresolved")]
    (stopped_id,) = [i for i, st in statuses.items() if st == "interrupted"]
    assert {done_id, stopped_id} == {"stats-window", "stats-describe"}
    assert _query(db, "SELECT instance_id FROM outcomes") == [(done_id,)]
    # A test run the stop killed is no verdict: no recorded attempt holds one. (A report with
    # no outcomes can still be a verdict: a candidate that breaks the module at import.)
    killed = {-signal.SIGKILL, 128 + signal.SIGKILL}
    for (payload,) in _query(db, "SELECT payload FROM attempts"):
        report = json.loads(str(payload)).get("report")
        assert report is None or report["outcomes"] or report["exit_code"] not in killed, (
            f"a killed test run was recorded: {report}"
        )

    leftovers = [pid for pid, start in children.items() if _still_there(pid, start)]
    assert leftovers == [], f"processes of the stopped run still there: {leftovers}"
    assert not _still_there(server["server"], server["server_start"])
    assert list((home / "run").glob("*.json")) == [], "the run's records are removed"
    mlflow_runs = _query(home / "mlflow.db", "SELECT name, status FROM runs")
    assert mlflow_runs, "tracking was on"
    assert ("stops", "KILLED") in mlflow_runs and (stopped_id, "KILLED") in mlflow_runs
    assert not [r for r in mlflow_runs if r[1] == "RUNNING"], mlflow_runs
    prefect_state = _query(home / "prefect" / "prefect.db", "SELECT state_type FROM flow_run")
    assert prefect_state == [("CANCELLED",)], prefect_state

    done = subprocess.run(
        _cmd(campaign, out), env=_env(home), cwd=REPO, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert [s for (s,) in _query(db, "SELECT status FROM campaigns ORDER BY started")] == [
        "interrupted",
        "completed",
    ]
    _check_resume(db)
    mlflow_runs = _query(home / "mlflow.db", "SELECT name, status FROM runs")
    assert not [r for r in mlflow_runs if r[1] == "RUNNING"], mlflow_runs
    # The server records task runs in batches: the last ones (the resumed instance's own task
    # ends the flow) reach the database when the CLI stops the server, not later or never.
    task_runs = _query(
        home / "prefect" / "prefect.db",
        "SELECT t.name, t.state_type FROM task_run t JOIN flow_run f ON t.flow_run_id = f.id "
        "WHERE f.state_type = 'COMPLETED'",
    )
    assert (f"repair {stopped_id}", "COMPLETED") in task_runs, task_runs
    assert {state for _, state in task_runs} == {"COMPLETED"}, task_runs


def test_after_kill_9_the_next_start_reaps_the_server_and_sandboxes(tmp_path: Path) -> None:
    # A baseline that runs for a minute, in the subprocess backend: its own session, so
    # nothing but the reaper ends it once the CLI is gone (bwrap dies with its parent).
    make_stats_project(tmp_path)
    campaign = write_campaign(
        tmp_path,
        name="orphans",
        concurrency=1,
        instances=[{"id": "sleeper", "repo": "stats",
                    "test_cmd": "python -c 'import time; time.sleep(120)'"}],
        sandbox={"backend": "subprocess", "timeout_s": 90},
    )  # fmt: skip
    home, out = tmp_path / "home", tmp_path / "out"
    ledger_groups: list[list[int]] = []

    def sandbox_running(pid: int) -> bool:
        """The baseline's sleeper is running and listed in run ``pid``'s ledger of sandboxes."""
        for ledger in (home / "run").glob(f"{pid}.sandboxes"):
            for pgid, start in json.loads(ledger.read_text() or "[]"):
                with contextlib.suppress(OSError):
                    if b"sleep(120)" in Path(f"/proc/{pgid}/cmdline").read_bytes():
                        ledger_groups[:] = [[pgid, start]]
                        return True
        return False

    log = tmp_path / "killed.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            _cmd(campaign, out, "--no-tracking"), env=_env(home), cwd=REPO,
            start_new_session=True, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for(proc, "a running sandbox", lambda: sandbox_running(proc.pid), log)
        server = _server_record(home)
        os.kill(proc.pid, signal.SIGKILL)  # the CLI alone, as the OOM killer would
        proc.wait(timeout=60)
        (pgid, start), *_ = ledger_groups
        assert _still_there(pgid, start), "the sandbox outlives the CLI until the next start"

        log2 = tmp_path / "next.log"
        with log2.open("wb") as sink:
            nxt = subprocess.Popen(
                _cmd(campaign, out, "--no-tracking"), env=_env(home), cwd=REPO,
                start_new_session=True, stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            # Its own baseline runs: it has started, reaped, and opened its workspaces.
            _wait_for(nxt, "the next run's sandbox", lambda: sandbox_running(nxt.pid), log2)
            assert not _still_there(server["server"], server["server_start"])
            assert not _still_there(pgid, start), log2.read_text()[-3000:]
            assert not (home / "run" / f"{proc.pid}.json").exists()
            assert not (home / "run" / f"{proc.pid}.sandboxes").exists()
            nxt.send_signal(signal.SIGINT)
            nxt.wait(timeout=60)
            assert nxt.returncode == 130, log2.read_text()[-3000:]
            mounts = Path("/proc/mounts").read_text()
            assert str(home) not in mounts, "an overlay of the killed or stopped run is left"
        finally:
            if nxt.poll() is None:
                os.killpg(nxt.pid, signal.SIGKILL)
                nxt.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_reaper_kills_only_a_dead_owners_real_server(tmp_path: Path) -> None:
    from patchsmith.infra import prefect_server
    from patchsmith.infra.sandbox import running

    def look_alike() -> subprocess.Popen[bytes]:
        # argv like the server's (uvicorn + Prefect's app), without starting one
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                                 "uvicorn", prefect_server.APP])  # fmt: skip

    dead_owner = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner.wait()
    server, live_owners_server = look_alike(), look_alike()
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        runs = prefect_server.runs_dir(tmp_path)
        for name, owner, proc in (
            ("1.json", dead_owner.pid, server),
            ("2.json", os.getpid(), live_owners_server),  # this process: alive
            ("3.json", dead_owner.pid, stranger),  # not a Prefect server: a reused pid
        ):
            (runs / name).write_text(json.dumps({
                "owner": owner, "owner_start": running.process_start(owner) or 1,
                "server": proc.pid, "server_start": running.process_start(proc.pid),
            }))  # fmt: skip
        assert prefect_server.reap_dead_runs(tmp_path) == [server.pid]
        assert server.wait(timeout=30) == -signal.SIGKILL
        assert live_owners_server.poll() is None and stranger.poll() is None
        assert sorted(p.name for p in runs.iterdir()) == ["2.json"]
    finally:
        for proc in (server, live_owners_server, stranger):
            proc.kill()
            proc.wait()
