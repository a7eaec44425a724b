"""A whole distributed deployment on one machine, on loopback: for tests and benchmarks.

``LocalCluster`` starts what a platform team runs on many machines (see infra/compose.yaml):
a Prefect server on PostgreSQL, an MLflow server (PostgreSQL backend, artifacts served over
HTTP), the deployments of ``prefect.yaml``, and N process workers. Each worker gets its own
``PATCHSMITH_HOME`` and ``PREFECT_HOME``: they share nothing but the servers and the store
database, as on separate machines. Every process runs in a session of its own and is
stopped by its process group; the databases are dropped at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from patchsmith.errors import PatchsmithError
from patchsmith.infra.prefect_server import free_port, healthy
from patchsmith.infra.workspace import WorkspaceManager

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "PREFECT_UI_ENABLED": "false",
}


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (any session), children first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and everything below it at once, as when its machine dies."""
    victims = [pid, *descendants(pid)]
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    return victims


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to its process group, SIGKILL after ``timeout``."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class LocalCluster:
    """Prefect server + MLflow server + store database + workers, under ``root``."""

    root: Path
    pg_admin_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    workers: int = 2
    worker_limit: int = 1
    query_s: float = 2.0
    pool: str = "patchsmith-process"
    prefix: str = field(default_factory=lambda: f"ps_cluster_{uuid.uuid4().hex[:10]}")
    services: list[Service] = field(default_factory=list)
    worker_services: list[Service] = field(default_factory=list)
    prefect_port: int = 0
    mlflow_port: int = 0

    # ----------------------------------------------------------------- addresses

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def db_url(self, which: str, driver: str = "psycopg") -> str:
        url = make_url(self.pg_admin_url).set(
            drivername=f"postgresql+{driver}", database=f"{self.prefix}_{which}"
        )
        return url.render_as_string(hide_password=False)

    def env(self, name: str = "client") -> dict[str, str]:
        """The environment of a process of this cluster (client, parent flow, worker)."""
        home = self.root / name
        return {
            **os.environ,
            **QUIET,
            "PREFECT_API_URL": self.api_url,
            "PREFECT_HOME": str(home / "prefect"),
            "PATCHSMITH_HOME": str(home / "patchsmith"),
            "PATCHSMITH_DB_URL": self.db_url("store"),
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "PATCHSMITH_REPO": str(REPO),
        }

    # ------------------------------------------------------------------- control

    def start(self) -> LocalCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self._databases("CREATE DATABASE")
        self.prefect_port, self.mlflow_port = free_port(), free_port()
        server_env = {
            **self.env("server"),
            "PREFECT_API_DATABASE_CONNECTION_URL": self.db_url("prefect", "asyncpg"),
        }
        server_env.pop("PREFECT_API_URL")
        prefect = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                   "--port", str(self.prefect_port)]  # fmt: skip
        self._spawn("prefect-server", prefect, server_env)
        mlflow = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1",
                  "--port", str(self.mlflow_port), "--workers", "1",
                  "--backend-store-uri", self.db_url("mlflow"),
                  "--artifacts-destination", str(self.root / "mlflow-artifacts")]  # fmt: skip
        self._spawn("mlflow-server", mlflow, self.env("mlflow"))
        self._wait(self.api_url, "prefect-server")
        self._wait(self.mlflow_url, "mlflow-server")
        self.cli(["patchsmith", "infra", "setup", "--prefect-yaml", str(REPO / "prefect.yaml")])
        self.cli(["prefect", "--no-prompt", "deploy", "--all"])
        for i in range(self.workers):
            self.start_worker(f"worker-{i + 1}")
        return self

    def start_worker(self, name: str) -> Service:
        argv = [str(BIN / "prefect"), "worker", "start", "--pool", self.pool, "--name", name,
                "--limit", str(self.worker_limit)]  # fmt: skip
        # poll the pool every 2 s (Prefect's default is 10 s: up to 10 s idle per instance)
        env = {**self.env(name), "PREFECT_WORKER_QUERY_SECONDS": str(self.query_s)}
        worker = self._spawn(name, argv, env)
        self.worker_services.append(worker)
        return worker

    def stop_workers(self) -> None:
        """Stop every worker (SIGTERM to its group); new ones may be started after."""
        for worker in self.worker_services:
            worker.stop()

    def kill_worker(self, worker: Service) -> list[int]:
        """The worker, its flow runs and their sandboxes, SIGKILLed together."""
        victims = kill_tree(worker.process.pid)
        worker.process.wait()
        return victims

    def worker_of(self, pid: int) -> Service | None:
        """The worker whose process tree holds ``pid``."""
        for worker in self.worker_services:
            if worker.alive() and pid in descendants(worker.process.pid):
                return worker
        return None

    def cli(self, argv: list[str], timeout: float = 120.0) -> str:
        """Run a command of this environment (``patchsmith``, ``prefect``) as a client."""
        done = subprocess.run(
            [str(BIN / argv[0]), *argv[1:]], env=self.env(), cwd=REPO,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if done.returncode != 0:
            raise PatchsmithError(
                f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-2000:]}\n"
                f"{done.stderr[-2000:]}"
            )
        return done.stdout

    def stop(self) -> None:
        for service in [*self.worker_services, *reversed(self.services)]:
            service.stop()
        for worker in self.worker_services:  # what a killed flow run left mounted
            workspaces = self.root / worker.name / "patchsmith" / "workspaces"
            if workspaces.is_dir():
                WorkspaceManager(workspaces)  # reaps the attempts of dead processes
        self._databases("DROP DATABASE IF EXISTS", " WITH (FORCE)")

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Service:
        log = self.root / f"{name}.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                argv, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink,
                start_new_session=True,
            )  # fmt: skip
        service = Service(name, process, log)
        if not name.startswith("worker"):
            self.services.append(service)
        return service

    def _wait(self, url: str, name: str, timeout: float = 90.0) -> None:
        service = next(s for s in self.services if s.name == name)
        deadline = time.monotonic() + timeout
        while not healthy(url):
            if not service.alive() or time.monotonic() > deadline:
                raise PatchsmithError(f"{name} did not start; its log ends with:\n{service.tail()}")
            time.sleep(0.25)

    def _databases(self, verb: str, suffix: str = "") -> None:
        admin = make_url(self.pg_admin_url).set(drivername="postgresql")
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as pg:
            for which in ("prefect", "mlflow", "store"):
                pg.execute(f'{verb} "{self.prefix}_{which}"{suffix}')  # type: ignore[arg-type]
