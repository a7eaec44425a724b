"""Pieces shared by sandbox backends: rlimits, the cleared environment, output tails.

Output is read from pipes as it comes and only the last ``output_kb`` of each stream is
kept, so a command that prints gigabytes costs neither memory nor disk.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from patchsmith.domain import ExecResult, SandboxConfig
from patchsmith.errors import SandboxStartError

LimitHit = Literal["timeout", "memory", "procs", "file_size", "disk", "output"]

# What a process prints when RLIMIT_AS refused memory (Python, C, C++, bash, node, java).
_MEMORY_SIGNS = re.compile(
    rb"MemoryError|Cannot allocate memory|std::bad_alloc|out of memory|"
    rb"failed to allocate|OutOfMemoryError|memory exhausted",
    re.IGNORECASE,
)
# What fork/clone/thread creation reports when RLIMIT_NPROC is reached (EAGAIN).
_FSIZE_SIGNS = re.compile(rb"File too large|EFBIG")
_PROCS_SIGNS = re.compile(
    rb"Resource temporarily unavailable|BlockingIOError|can't start new thread|"
    rb"fork: retry|EAGAIN|cannot fork|Cannot fork",
)
# What a write reports when the attempt's tmpfs (or the private /tmp) is full.
_DISK_SIGNS = re.compile(rb"No space left on device|ENOSPC|Disk quota exceeded|EDQUOT")


def python_bin_dirs() -> list[str]:
    """bin directories of the running interpreter (venv first), for PATH in the sandbox."""
    dirs = [str(Path(sys.executable).parent)]
    base = str(Path(sys.base_prefix) / "bin")
    if base not in dirs:
        dirs.append(base)
    return dirs


def sandbox_path(prepend: Sequence[str] = ()) -> str:
    """PATH inside the sandbox: ``prepend``, the interpreter's bin dirs, then the system's."""
    return os.pathsep.join([*prepend, *python_bin_dirs(), "/usr/local/bin", "/usr/bin", "/bin"])


def base_env(prepend: Sequence[str] = ()) -> dict[str, str]:
    """A cleared environment: no host variables (and so no credentials) leak in."""
    return {
        "PATH": sandbox_path(prepend),
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }


def prlimit_prefix(config: SandboxConfig, nproc: bool = True) -> list[str]:
    """argv prefix applying memory/process/cpu limits with util-linux prlimit.

    ``nproc=False`` where a pids cgroup limits processes: RLIMIT_NPROC counts the whole
    (shared) uid, so it is left as inherited (raising it needs CAP_SYS_RESOURCE, which a
    container's root often lacks), never set to max_procs.
    """
    mem = config.memory_mb * 1024 * 1024
    cpu = int(config.timeout_s) + 1
    procs = [f"--nproc={config.max_procs}"] if nproc else []
    return [
        "prlimit",
        f"--as={mem}",
        *procs,
        f"--cpu={cpu}",
        f"--fsize={config.file_mb * 1024 * 1024}",
        "--core=0",
        "--",
    ]


def tail(data: bytes, limit: int) -> str:
    """Last ``limit`` bytes, decoded leniently."""
    return data[-limit:].decode("utf-8", errors="replace")


@dataclass
class Captured:
    """Tails of both streams and what stopped the command."""

    stdout: bytes = b""
    stderr: bytes = b""
    truncated: bool = False
    timed_out: bool = False


def capture(
    proc: subprocess.Popen[bytes],
    timeout_s: float,
    limit: int,
    kill: Callable[[], None],
    grace_s: float = 0.5,
) -> Captured:
    """Read ``proc``'s stdout/stderr pipes until EOF, keeping the last ``limit`` bytes of each.

    Calls ``kill`` at the deadline. Once ``proc`` itself has exited, waits at most
    ``grace_s`` for the pipes to close (a daemonized grandchild may hold them) and then
    calls ``kill`` too, so this never blocks past the deadline.
    """
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    bufs = {out_fd: bytearray(), err_fd: bytearray()}
    out = Captured()
    deadline = time.monotonic() + timeout_s
    exited_at: float | None = None
    with selectors.DefaultSelector() as sel:
        for stream in (proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
            sel.register(stream.fileno(), selectors.EVENT_READ)
        killed = False
        while sel.get_map():
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > grace_s:
                kill()
                break
            if now >= deadline:
                if killed:
                    break
                out.timed_out = exited_at is None
                kill()
                killed = True
                deadline = now + grace_s  # drain what is left, then give up
            for key, _ in sel.select(timeout=min(0.05, max(0.0, deadline - now))):
                fd = int(key.fd)
                chunk = os.read(fd, 65536)
                if not chunk:
                    sel.unregister(fd)
                    continue
                buf = bufs[fd]
                buf += chunk
                if len(buf) > limit:
                    out.truncated = True
                    del buf[: len(buf) - limit]
    proc.stdout.close()
    proc.stderr.close()
    try:
        proc.wait(timeout=max(grace_s, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        out.timed_out = True
        kill()
        proc.wait()
    out.stdout, out.stderr = bytes(bufs[out_fd]), bytes(bufs[err_fd])
    return out


def classify(
    captured: Captured,
    exit_code: int | None,
    kernel_hit: LimitHit | None = None,
    full: bool = False,
) -> LimitHit | None:
    """Which limit (if any) explains how the command ended, as reliably as output allows.

    A timeout is certain. ``kernel_hit`` is what the sandbox's cgroup counted (an OOM kill,
    a refused fork) and ``full`` what statvfs of the workspace says; both count only
    with a non-zero exit. Otherwise limits are inferred from what the failing program
    printed (MemoryError, EAGAIN, ENOSPC) together with a non-zero exit.
    """
    if captured.timed_out:
        return "timeout"
    if exit_code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
        return "file_size"
    if exit_code not in (0, None):
        if kernel_hit is not None:
            return kernel_hit
        text = captured.stderr + captured.stdout
        if _FSIZE_SIGNS.search(text):  # programs that ignore SIGXFSZ (Python) get EFBIG
            return "file_size"
        if full or _DISK_SIGNS.search(text):
            return "disk"
        if _PROCS_SIGNS.search(text):
            return "procs"
        if _MEMORY_SIGNS.search(text):
            return "memory"
    if captured.truncated:
        return "output"
    return None


def disk_full(workspace: Path) -> bool:
    """No room left where ``workspace`` lives (an overlay reports its upper fs: the
    attempt's tmpfs): under 1% of its blocks or inodes free."""
    try:
        st = os.statvfs(workspace)
    except OSError:  # the workspace went away: nothing to say
        return False
    low_blocks = st.f_blocks > 0 and st.f_bavail * 100 < st.f_blocks
    low_inodes = st.f_files > 0 and st.f_favail * 100 < st.f_files
    return low_blocks or low_inodes


def exec_result(
    backend: str,
    argv: Sequence[str],
    got: Captured,
    code: int | None,
    start: float,
    kernel_hit: LimitHit | None = None,
    full: bool = False,
) -> ExecResult:
    """The ExecResult of a finished (or killed) command, with its limit classified."""
    return ExecResult(
        argv=list(argv),
        exit_code=code,
        timed_out=got.timed_out,
        limit_hit=classify(got, code, kernel_hit, full),
        duration_s=time.monotonic() - start,
        stdout_tail=tail(got.stdout, len(got.stdout)),
        stderr_tail=tail(got.stderr, len(got.stderr)),
        backend=backend,
    )


def checked_inputs(workspace: Path, argv: Sequence[str], config: SandboxConfig) -> Path:
    """The workspace, resolved, once the command, it and the extra binds are usable;
    SandboxStartError says which is not."""
    if not argv:
        raise SandboxStartError("empty command")
    workspace = Path(workspace).resolve()
    if not workspace.is_dir():
        raise SandboxStartError(f"workspace {workspace} does not exist or is not a directory")
    for kind, paths in (("ro_paths", config.ro_paths), ("rw_paths", config.rw_paths)):
        for path in paths:
            if not os.path.exists(path):
                raise SandboxStartError(f"sandbox {kind}: {path} does not exist")
    return workspace
