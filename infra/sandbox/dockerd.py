"""A private Docker engine for tests and benchmarks: started here, stopped by its pid.

``dockerd`` from Debian's ``docker.io`` runs on these machines with no bridge and no
iptables rules (containers get ``network_mode="none"`` anyway), the ``vfs`` storage driver
and every directory under one root, so it touches nothing of the host's and leaves
nothing running: :meth:`PrivateDockerd.stop` signals the pid it started and waits.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from patchsmith.errors import SandboxStartError

_MNT_DETACH = 2


def unavailable_reason() -> str | None:
    """None when a private dockerd can be started here, else why not."""
    if shutil.which("dockerd") is None:
        return "dockerd is not installed (apt-get install docker.io)"
    if os.geteuid() != 0:
        return "a private dockerd needs root"
    try:
        import docker  # noqa: F401
    except ImportError:
        return "the docker SDK is missing: pip install 'patchsmith[docker]'"
    return None


@dataclass
class PrivateDockerd:
    """One dockerd under ``root`` (socket ``root/docker.sock``)."""

    root: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    def start(self, timeout: float = 60.0) -> PrivateDockerd:
        reason = unavailable_reason()
        if reason:
            raise SandboxStartError(reason)
        self.root.mkdir(parents=True, exist_ok=True)
        argv = ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none",
                "--storage-driver=vfs", "--data-root", str(self.root / "data"),
                "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "pid"),
                "-H", self.url]  # fmt: skip
        log = (self.root / "dockerd.log").open("ab")
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.root / "dockerd.log").read_text(errors="replace")[-2000:]
                raise SandboxStartError(f"dockerd did not start; its log ends with:\n{tail}")
            time.sleep(0.2)
        return self

    def _answers(self) -> bool:
        import docker

        if not (self.root / "docker.sock").exists():
            return False
        try:
            client = docker.DockerClient(base_url=self.url, version="auto", timeout=5)
        except docker.errors.DockerException:
            return False
        with contextlib.closing(client):
            return bool(client.ping())

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the dockerd this started (its containerd goes with it), then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for mount in _mounts_under(self.root):  # e.g. exec/netns/default, left mounted
            _detach(mount)

    def __enter__(self) -> PrivateDockerd:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _mounts_under(root: Path) -> list[str]:
    """Mount points below ``root``, deepest first."""
    prefix = f"{root.resolve()}/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _detach(point: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(point.encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {point}: {os.strerror(err)}")
