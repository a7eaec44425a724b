"""Docker backend (``docker`` extra): each command in a fresh container of a local image.

The container gets what a bubblewrap sandbox gets, with Docker's own isolation around it
(its default seccomp profile included)::

    network_mode none             no interface but loopback
    read_only root, user 65534    nothing writable but the workspace and a private /tmp
    cap_drop ALL + no-new-privileges
    pids_limit / mem_limit (+ swap) / nano_cpus; prlimit inside for --as --cpu --fsize
    mounts: the workspace read-write at its host path, /usr, /lib*, the Python install,
            the environment's ro_paths and a few /etc files read-only at theirs

The image is built here, never pulled: a root filesystem of empty mount points, the host's
top-level symlinks (/bin -> usr/bin) and a passwd with ``nobody``, imported as
``patchsmith/sandbox-base:<digest of that layout>`` on first use. The system and each
environment's interpreter are bound read-only rather than copied into per-environment
images: with no registry and the vfs storage driver a copied layer costs seconds and GBs
per image, a bind nothing. File descriptors cannot cross into a container, so a warm test
session (which needs one) cannot start here and its instance screens cold.

The engine is ``DOCKER_HOST`` (default ``unix:///var/run/docker.sock``);
``infra/sandbox/dockerd.py`` starts a private one for tests.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from patchsmith.domain import ExecResult, SandboxConfig
from patchsmith.errors import MissingExtra, SandboxStartError
from patchsmith.infra.sandbox.bwrap import ETC_FILES, SANDBOX_UID
from patchsmith.infra.sandbox.limits import (
    Captured,
    LimitHit,
    base_env,
    checked_inputs,
    disk_full,
    exec_result,
    prlimit_prefix,
)

REPOSITORY = "patchsmith/sandbox-base"
TOP_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
PASSWD = (
    "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def _rootfs() -> bytes:
    """The base image's filesystem: mount points, the host's top-level links, passwd."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("usr", "etc", "tmp", "proc", "dev", "sys", "root", "home"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        for top in TOP_LINKS:
            if os.path.islink(top):
                info = tarfile.TarInfo(top.lstrip("/"))
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(top)
                tar.addfile(info)
        for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _system_binds() -> list[str]:
    """Host paths bound read-only at the same place: the system and the Python install."""
    binds = ["/usr", *(t for t in ("/bin", "/sbin", "/lib", "/lib64") if os.path.isdir(t))]
    binds = [b for b in binds if not os.path.islink(b)]
    python = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix)}
    binds += sorted(p for p in python if not p.startswith("/usr/"))
    binds += [p for p in ETC_FILES if os.path.exists(p) and p not in ("/etc/passwd", "/etc/group")]
    return binds


class DockerSandbox:
    """Runs each command in a new container (see the module docstring)."""

    name = "docker"

    def __init__(self, base_url: str | None = None, cpus: float = 1.0) -> None:
        self.base_url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.cpus = cpus
        self._client: Any = None
        self._image: str | None = None
        self._lock = threading.Lock()

    def _docker(self) -> Any:
        try:
            import docker
        except ImportError as exc:
            raise MissingExtra("sandbox backend docker", "docker") from exc
        return docker

    def client(self) -> Any:
        docker = self._docker()
        with self._lock:
            if self._client is None:
                try:
                    self._client = docker.DockerClient(
                        base_url=self.base_url, version="auto", timeout=30
                    )
                except docker.errors.DockerException as exc:
                    raise SandboxStartError(
                        f"no Docker engine at {self.base_url} ({exc}): start one or set "
                        "DOCKER_HOST, or use sandbox backend bwrap"
                    ) from exc
            return self._client

    def image(self) -> str:
        """The base image's tag, imported into the engine on first use."""
        client = self.client()
        with self._lock:
            if self._image is not None:
                return self._image
            rootfs = _rootfs()
            tag = hashlib.sha256(rootfs).hexdigest()[:16]
            ref = f"{REPOSITORY}:{tag}"
            if not client.images.list(name=ref):
                client.api.import_image_from_data(rootfs, repository=REPOSITORY, tag=tag)
            self._image = ref
            return ref

    def run(
        self,
        workspace: Path,
        argv: Sequence[str],
        config: SandboxConfig,
        env: Mapping[str, str] | None = None,
        *,
        pass_fds: Sequence[int] = (),
    ) -> ExecResult:
        """Run ``argv`` in ``workspace`` in a new container; see the module docstring."""
        workspace = checked_inputs(workspace, argv, config)
        if pass_fds:
            raise SandboxStartError(
                "the docker backend cannot pass file descriptors into a container "
                "(a warm test session needs one): its candidates run cold"
            )
        docker = self._docker()
        container = self._create(workspace, argv, config, env or {})
        start = time.monotonic()
        try:
            got, code, oom = self._wait(container, config, docker)
        finally:
            container.remove(force=True)
        hit: LimitHit | None = "memory" if oom else None
        full_disk = code not in (0, None) and disk_full(workspace)
        return exec_result(self.name, argv, got, code, start, kernel_hit=hit, full=full_disk)

    def _create(
        self, workspace: Path, argv: Sequence[str], config: SandboxConfig, env: Mapping[str, str]
    ) -> Any:
        docker = self._docker()
        types = docker.types
        ws = str(workspace)
        ro = [*_system_binds(), *(os.path.realpath(p) for p in config.ro_paths)]
        mounts = [types.Mount(p, p, type="bind", read_only=True) for p in ro]
        mounts += [types.Mount(os.path.realpath(p), os.path.realpath(p), type="bind")
                   for p in config.rw_paths]  # fmt: skip
        mounts.append(types.Mount(ws, ws, type="bind"))
        tmp = f"rw,nosuid,nodev,size={config.tmp_mb}m,mode=1777"
        keep = max(config.output_kb * 2, 64)
        try:
            return self.client().containers.create(
                self.image(),
                command=[*prlimit_prefix(config, nproc=False), *argv],
                user=f"{SANDBOX_UID}:{SANDBOX_UID}",
                working_dir=ws,
                environment={**base_env(config.path_prepend), **config.env, **env},
                network_mode="host" if config.network else "none",
                read_only=True,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges:true"],
                pids_limit=config.max_procs,
                mem_limit=f"{config.memory_mb}m",
                memswap_limit=f"{config.memory_mb}m",
                nano_cpus=int(self.cpus * 1e9),
                tmpfs={"/tmp": tmp, "/dev/shm": tmp},
                mounts=mounts,
                ipc_mode="private",
                log_config=types.LogConfig(
                    type="json-file", config={"max-size": f"{keep}k", "max-file": "1"}
                ),
                labels={"patchsmith.sandbox": "1"},
            )
        except docker.errors.DockerException as exc:
            raise SandboxStartError(f"docker could not create the container: {exc}") from exc

    def _wait(
        self, container: Any, config: SandboxConfig, docker: Any
    ) -> tuple[Captured, int | None, bool]:
        import requests

        limit = config.output_kb * 1024
        try:
            container.start()
        except docker.errors.DockerException as exc:
            raise SandboxStartError(f"docker could not start the container: {exc}") from exc
        got = Captured()
        try:
            status = container.wait(timeout=config.timeout_s)
            code: int | None = int(status.get("StatusCode", -1))
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            got.timed_out, code = True, None
            container.kill()
        out = container.logs(stdout=True, stderr=False)
        err = container.logs(stdout=False, stderr=True)
        got.truncated = len(out) > limit or len(err) > limit
        got.stdout, got.stderr = out[-limit:], err[-limit:]
        container.reload()
        oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
        return got, code, oom
