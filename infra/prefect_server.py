"""The CLI's own ephemeral Prefect API server, and cleaning up after a run killed with -9.

Left to itself Prefect 3.8 starts its ephemeral server (``SubprocessASGIServer``: a
``python -m uvicorn … prefect.server.api.server:create_app`` child) in the CLI's process
group and stops it in an ``atexit`` hook. Then a Ctrl-C in the terminal reaches the server
too (it dies while the flow still needs it to record the final state), and after
``kill -9`` nothing stops it. So ``patchsmith run`` starts the same command itself, in a
session of its own, points ``PREFECT_API_URL`` at it, and stops it on the way out.

Each run leaves a record under ``$PATCHSMITH_HOME/run/``: ``<pid>.json`` (the owning CLI
and its server) and ``<pid>.sandboxes`` (the sandbox groups running now, kept by
``sandbox.running``). :func:`reap_dead_runs` kills the server and sandboxes of runs whose
owner is gone, after checking that each process is really the one recorded (same start
time; for the server, the uvicorn command line).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from patchsmith.errors import PatchsmithError
from patchsmith.infra import prefect_db
from patchsmith.infra.sandbox import running

log = logging.getLogger(__name__)
APP = "prefect.server.api.server:create_app"
#: The task-run recorder writes each client event in a transaction of its own by default
#: (batch size 1): on a campaign of small instances that is ~100 ms of the server's CPU per
#: task run, taken from the sandboxes on a small machine. In batches of up to 100, flushed
#: every second and on shutdown, the same rows cost ~40% less, and the UI shows a state at
#: most a second late. Variables the user set win.
RECORDER_BATCHING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}
STARTUP_TIMEOUT_S = 60.0


def runs_dir(home: Path) -> Path:
    """Where live runs keep their records."""
    path = home / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_prefect_server(pid: int) -> bool:
    """True when ``pid`` runs the ephemeral Prefect API (uvicorn with Prefect's app)."""
    argv = _cmdline(pid)
    return "uvicorn" in argv and APP in argv


def alive(pid: int, started: int | None) -> bool:
    """The process ``pid`` that started at ``started`` is still there (not a reused pid)."""
    now = running.process_start(pid)
    return now is not None and (started is None or now == started)


@dataclass
class Server:
    """An ephemeral Prefect API server this process started (see the module docstring)."""

    process: subprocess.Popen[bytes]
    port: int
    record: Path
    ledger: Path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; forget the run's records."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.forget()

    def kill(self) -> None:
        """SIGKILL at once (the second Ctrl-C); forget the run's records."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.forget()

    def forget(self) -> None:
        running.keep_ledger(None)
        for path in (self.record, self.ledger):
            path.unlink(missing_ok=True)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def healthy(url: str) -> bool:
    """The API (or any server with a ``/health`` route) at ``url`` answers 200."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


#: Runs first in the server's process, then execs uvicorn: the kernel kills the server when
#: its owner dies (PR_SET_PDEATHSIG survives exec), even by ``kill -9``. An owner that died
#: before the prctl is caught by the getppid check; the reaper is the last line.
_DIE_WITH_OWNER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
    "os.getppid() == int(sys.argv[1]) or os._exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def start(home: Path, meanwhile: Callable[[], object] | None = None) -> Server:
    """Reap dead runs, start the server in its own session, record it; wait until healthy.

    Call before Prefect is imported: this sets ``PREFECT_API_URL`` to ``api_url`` as soon
    as the port is chosen, then runs ``meanwhile`` while the server boots (the CLI imports
    its flow, and so Prefect, in the seconds the server needs anyway).
    """
    reap_dead_runs(home)
    spec = importlib.util.find_spec("prefect")
    if spec is None or not spec.submodule_search_locations:
        raise PatchsmithError("prefect is not installed: pip install -e .")
    app_dir = str(Path(next(iter(spec.submodule_search_locations))).parent)
    env = {
        **RECORDER_BATCHING,
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    env.pop("PREFECT_API_URL", None)
    db = prefect_db.database(env)
    new = db is not None and not db.exists()
    seeded = new and prefect_db.seed(env)
    fresh = new and not seeded  # not started from the kept copy: keep one once migrated
    if seeded:
        # The kept copy is this Prefect version's database, migrated and with its block
        # types registered: the server need not redo either (~0.6 s of a 3-4 s start).
        env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] = "false"
        env["PREFECT_SERVER_REGISTER_BLOCKS_ON_START"] = "false"
    folder = runs_dir(home)
    me = os.getpid()
    log_path = folder / f"{me}.server.log"
    port = free_port()
    argv = [sys.executable, "-c", _DIE_WITH_OWNER, str(me),
            sys.executable, "-m", "uvicorn", "--app-dir", app_dir, "--factory", APP,
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "error",
            "--lifespan", "on"]  # fmt: skip
    with log_path.open("wb") as sink:
        process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink,
            start_new_session=True,  # a terminal's Ctrl-C must not reach it
        )  # fmt: skip
    server = Server(process, port, folder / f"{me}.json", folder / f"{me}.sandboxes")
    server.record.write_text(
        json.dumps(
            {
                "owner": me,
                "owner_start": running.process_start(me),
                "server": process.pid,
                "server_start": running.process_start(process.pid),
                "port": port,
            }
        )
    )
    running.keep_ledger(server.ledger)
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        if meanwhile is not None:
            meanwhile()
    except BaseException:
        server.stop()
        raise
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not healthy(f"http://127.0.0.1:{port}/api"):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            tail = log_path.read_text(errors="replace")[-2000:]
            raise PatchsmithError(
                f"the ephemeral Prefect API did not start (exit {process.returncode}); "
                f"its log ({log_path}) ends with:\n{tail}\n"
                "Set PREFECT_API_URL to use a running Prefect server instead."
            )
        time.sleep(0.1)
    log_path.unlink(missing_ok=True)
    if fresh:
        prefect_db.keep(env)  # its migrations, for the next fresh home
    return server


def reap_dead_runs(home: Path) -> list[int]:
    """Kill the servers and sandboxes of runs whose owner died; returns server pids killed."""
    killed: list[int] = []
    for record in sorted(runs_dir(home).glob("*.json")):
        try:
            info = json.loads(record.read_text())
            owner, owner_start = int(info["owner"]), info.get("owner_start")
            pid, started = int(info["server"]), info.get("server_start")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if alive(owner, owner_start):
            continue  # a live run (another campaign in the same home): leave it be
        if alive(pid, started) and is_prefect_server(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        ledger = record.with_suffix(".sandboxes")
        reaped = running.reap_ledger(ledger)
        if killed or reaped:
            log.warning(
                "reaped what a killed run (pid %d) left behind: %s server, %d sandbox "
                "process(es)", owner, "its Prefect" if pid in killed else "no", reaped,
            )  # fmt: skip
        for path in (record, ledger, record.with_suffix(".server.log")):
            path.unlink(missing_ok=True)
    return killed
