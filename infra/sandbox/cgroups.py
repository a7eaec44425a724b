"""One cgroup per sandboxed command: its process and memory limits are its own.

RLIMIT_NPROC counts every process of a *uid*, and all sandboxes share uid 65534, so a fork
bomb in one would make fork fail in every other. A pids cgroup (pids.max = max_procs) and,
where available, a memory cgroup (limit = memory_mb, RSS + page cache + tmpfs of the whole
sandbox) belong to one command only.

Layout, always nested under the cgroup this process is in, so it never escapes our own
limits::

    <our cgroup>/patchsmith/<pid>-<uuid>     one command (pid = the patchsmith process)

cgroup v2 is used where a delegated hierarchy offers the pids controller (one directory
holds both limits); else cgroup v1 ``pids`` (+ ``memory`` if it works); else nothing, and
the backends fall back to RLIMIT_NPROC (logged once). The command joins its cgroup before
it can fork: the argv starts with a ``sh`` that writes its own pid to ``cgroup.procs`` and
then execs the rest (no preexec_fn). Groups left by a dead process (SIGKILLed campaign)
are killed and removed on the first use in a new process, like stale attempt workspaces.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from patchsmith.infra.sandbox.running import pid_alive

log = logging.getLogger(__name__)

JOIN_FAILED = 125
_JOIN_MARK = "patchsmith-cgroup:"
# sh -c JOIN sh PROCS... -- CMD...: join every cgroup, then become CMD (same pid).
_JOIN = (
    'while [ "$1" != -- ]; do echo $$ > "$1" || '
    f'{{ echo "{_JOIN_MARK} cannot join $1" >&2; exit {JOIN_FAILED}; }}; shift; done; '
    'shift; exec "$@"'
)
_SUBDIR = "patchsmith"

Mode = Literal["cgroup2", "cgroup1", "rlimit"]


@dataclass(frozen=True)
class Support:
    """Where sandbox cgroups go on this machine (``rlimit``: nowhere, see ``why``)."""

    mode: Mode
    pids: Path | None = None  # parent dir of the per-command pids groups
    memory: Path | None = None  # parent dir of the per-command memory groups (v2: == pids)
    why: str = ""


def parse_mountinfo(text: str) -> dict[str, tuple[Path, str]]:
    """Controller ("" for cgroup2) -> (mount point, cgroup path mounted there)."""
    found: dict[str, tuple[Path, str]] = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, point = fields[3], Path(fields[4].replace("\\040", " "))
        if tail[0] == "cgroup2":
            found.setdefault("", (point, root))
        elif tail[0] == "cgroup":
            for opt in tail[2].split(","):
                if opt in ("pids", "memory"):
                    found.setdefault(opt, (point, root))
    return found


def parse_membership(text: str) -> dict[str, str]:
    """Controller ("" for cgroup2) -> our cgroup path, from /proc/self/cgroup."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for ctl in parts[1].split(","):
                found[ctl] = parts[2]
    return found


def our_dir(mounts: dict[str, tuple[Path, str]], member: dict[str, str], ctl: str) -> Path | None:
    """The directory of the cgroup we are in, for ``ctl`` ("" = v2), if it is mounted."""
    if ctl not in mounts or ctl not in member:
        return None
    point, root = mounts[ctl]
    path = member[ctl]
    if root != "/" and not (path == root or path.startswith(root.rstrip("/") + "/")):
        return None  # our cgroup lies outside what is mounted here
    rel = path[len(root) :] if root != "/" else path
    return point / rel.lstrip("/")


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _make_base(parent: Path, enable: str | None = None) -> Path:
    """``parent/patchsmith`` (made once, shared by processes); v2: with ``enable`` delegated."""
    if enable:
        have = (parent / "cgroup.subtree_control").read_text().split()
        missing = [c for c in enable.split() if c not in have]
        if missing:
            _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
    base = parent / _SUBDIR
    base.mkdir(exist_ok=True)
    if enable:
        have = (base / "cgroup.subtree_control").read_text().split()
        missing = [c for c in enable.split() if c not in have]
        if missing:
            _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
    return base


def _probe(base: Path, limit_file: str, value: str) -> None:
    """Make and remove one group with a limit set: raises OSError if that does not work."""
    probe = base / f"{os.getpid()}-probe-{uuid.uuid4().hex[:8]}"
    probe.mkdir()
    try:
        _write(probe / limit_file, value)
    finally:
        probe.rmdir()


def detect(
    mountinfo: str | None = None, membership: str | None = None, test_limits: bool = True
) -> Support:
    """Find a usable hierarchy (v2 with pids, else v1 pids/memory); ``rlimit`` if none."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    if membership is None:
        membership = Path("/proc/self/cgroup").read_text()
    mounts, member = parse_mountinfo(mountinfo), parse_membership(membership)
    reasons: list[str] = []
    v2 = our_dir(mounts, member, "")
    if v2 is not None:
        try:
            ctls = (v2 / "cgroup.controllers").read_text().split()
            if "pids" not in ctls:
                raise OSError(errno.ENOENT, "no pids controller in cgroup2")
            enable = "pids memory" if "memory" in ctls else "pids"
            base = _make_base(v2, enable) if test_limits else v2 / _SUBDIR
            if test_limits:
                _probe(base, "pids.max", "64")
            return Support("cgroup2", base, base if "memory" in ctls else None)
        except OSError as exc:
            reasons.append(f"cgroup2 at {v2}: {exc.strerror or exc}")
    pids_dir = our_dir(mounts, member, "pids")
    if pids_dir is None:
        reasons.append("no cgroup v1 pids hierarchy")
        return Support("rlimit", why="; ".join(reasons))
    try:
        pids = _make_base(pids_dir) if test_limits else pids_dir / _SUBDIR
        if test_limits:
            _probe(pids, "pids.max", "64")
    except OSError as exc:
        reasons.append(f"cgroup v1 pids at {pids_dir}: {exc.strerror or exc}")
        return Support("rlimit", why="; ".join(reasons))
    memory: Path | None = None
    mem_dir = our_dir(mounts, member, "memory")
    if mem_dir is not None:
        try:
            memory = _make_base(mem_dir) if test_limits else mem_dir / _SUBDIR
            if test_limits:
                _probe(memory, "memory.limit_in_bytes", str(64 << 20))
        except OSError as exc:
            log.info("no memory cgroup for sandboxes (%s): RLIMIT_AS only", exc)
            memory = None
    return Support("cgroup1", pids, memory)


_support: Support | None = None
_support_lock = threading.Lock()


def support() -> Support:
    """:func:`detect` once per process; reaps stale groups and warns once if unsupported."""
    global _support
    with _support_lock:
        if _support is None:
            _support = detect()
            if _support.mode == "rlimit":
                log.warning(
                    "no usable cgroup for per-sandbox process limits (%s); max_procs falls "
                    "back to RLIMIT_NPROC, shared by every sandbox of the same uid (run as "
                    "root with cgroup pids, v1 or delegated v2, to fix)",
                    _support.why,
                )
            else:
                reap_stale(_support)
        return _support


def _members(group: Path) -> set[int]:
    try:
        text = (group / "cgroup.procs").read_text()
    except FileNotFoundError:
        return set()
    return {int(p) for p in text.split()}


def _kill_members(group: Path) -> None:
    """SIGKILL everything in ``group`` until it is empty (new forks are bounded by pids.max)."""
    kill_file = group / "cgroup.kill"  # v2 (5.14+): atomic
    if kill_file.exists():
        with contextlib.suppress(OSError):
            _write(kill_file, "1")
    for _ in range(200):
        pids = _members(group)
        if not pids:
            return
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue
            try:
                # pid may have been reused by an outsider before pidfd_open: kill only if
                # the process this fd names is still a member.
                if pid in _members(group):
                    with contextlib.suppress(ProcessLookupError):
                        signal.pidfd_send_signal(fd, signal.SIGKILL)
            finally:
                os.close(fd)
        time.sleep(0.005)


def _remove(group: Path) -> bool:
    """Kill what is left in ``group`` and rmdir it; False if it stays busy."""
    if not group.is_dir():
        return True
    _kill_members(group)
    for _ in range(400):  # exiting tasks keep a cgroup busy for a moment
        try:
            group.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
        time.sleep(0.005)
        _kill_members(group)
    log.warning("cgroup %s still busy; left for the next start to reap", group)
    return False


def reap_stale(found: Support) -> int:
    """Remove groups named ``<pid>-...`` whose patchsmith process is dead; how many."""
    reaped = 0
    for base in {p for p in (found.pids, found.memory) if p is not None}:
        if not base.is_dir():
            continue
        for group in base.iterdir():
            pid = group.name.split("-", 1)[0]
            if not group.is_dir() or not pid.isdigit() or pid_alive(int(pid)):
                continue
            if _remove(group):
                reaped += 1
    if reaped:
        log.info("removed %d sandbox cgroup(s) left by dead processes", reaped)
    return reaped


class SandboxCgroup:
    """The cgroup(s) of one command: made with limits set, joined via :meth:`prefix`,
    read by :meth:`limit_hit`, removed by :meth:`close` (which kills what is left)."""

    def __init__(self, found: Support, max_procs: int, memory_mb: int) -> None:
        self.mode = found.mode
        name = f"{os.getpid()}-{uuid.uuid4().hex[:16]}"
        self.groups: list[Path] = []
        assert found.pids is not None
        try:
            pids = found.pids / name
            pids.mkdir()
            self.groups.append(pids)
            _write(pids / "pids.max", str(max_procs))
            self.pids = pids
            self.memory: Path | None = None
            if found.memory is not None:
                mem = found.memory / name
                if mem != pids:
                    mem.mkdir()
                    self.groups.append(mem)
                self._limit_memory(mem, memory_mb * 1024 * 1024)
                self.memory = mem
        except BaseException:
            self.close()
            raise

    def _limit_memory(self, mem: Path, limit: int) -> None:
        if self.mode == "cgroup2":
            _write(mem / "memory.max", str(limit))
            with contextlib.suppress(FileNotFoundError):  # no swap accounting: fine
                _write(mem / "memory.swap.max", "0")
            return
        _write(mem / "memory.limit_in_bytes", str(limit))
        with contextlib.suppress(FileNotFoundError):  # memsw exists only with swap accounting
            _write(mem / "memory.memsw.limit_in_bytes", str(limit))

    def prefix(self) -> list[str]:
        """argv prefix that moves the command into its group(s) before it runs."""
        return ["sh", "-c", _JOIN, "sh", *(str(g / "cgroup.procs") for g in self.groups), "--"]

    @staticmethod
    def join_failed(exit_code: int | None, stderr: bytes) -> bool:
        """The prefix could not join the group (the command never ran)."""
        return exit_code == JOIN_FAILED and stderr.lstrip().startswith(_JOIN_MARK.encode())

    def limit_hit(self) -> Literal["memory", "procs"] | None:
        """What the kernel says was hit: an OOM kill (memory) or a refused fork (procs)."""
        if self.memory is not None:
            events = "memory.events" if self.mode == "cgroup2" else "memory.oom_control"
            if _counter(self.memory / events, "oom_kill") > 0:
                return "memory"
        if _counter(self.pids / "pids.events", "max") > 0:
            return "procs"
        return None

    def close(self) -> None:
        """Kill whatever is left and remove the group(s); safe to call twice."""
        while self.groups:
            _remove(self.groups.pop())


def _counter(path: Path, key: str) -> int:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return 0
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


def open_cgroup(max_procs: int, memory_mb: int) -> SandboxCgroup | None:
    """A fresh group for one command, or None where cgroups are not usable (rlimit mode)."""
    found = support()
    if found.mode == "rlimit":
        return None
    return SandboxCgroup(found, max_procs, memory_mb)
