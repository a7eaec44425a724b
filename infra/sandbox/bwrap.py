"""bubblewrap backend: no network, read-only system, only the workspace writable.

How one command runs (as root, the usual case for a worker)::

    sh -c 'echo $$ > cgroup.procs...; exec "$@"'    join this command's own pids (+memory)
                                                     cgroup before anything forks (cgroups.py)
    prlimit --as --cpu --fsize --core=0 --           rlimits (--nproc only without cgroups)
      bwrap --unshare-{pid,net,ipc,uts,cgroup-try}    private namespaces, no network
            --tmpfs /dev/shm, /tmp (size = tmp_mb)    private, writable (multiprocessing)
            --ro-bind /usr, /etc bits, Python ...     read-only system, same paths as host
            --ro-bind ro_paths, --bind rw_paths       extra paths at their host paths
            --bind WS WS --chdir WS                   the workspace at its host path
            --clearenv --setenv ...                   no host variables; PATH = path_prepend..
            --seccomp FD                              DENIED syscalls and CLONE_NEWUSER -> EPERM
            --cap-drop ALL --cap-add SETUID,SETGID,SETPCAP,DAC_READ_SEARCH  (setpriv, chdir)
            --remount-ro /
        setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all --bounding-set=-all
          CMD ...                                     host uid 65534, no capabilities

Why setpriv runs *inside*: bwrap run by 65534 must itself reach every bind source, and
the Python install may live under a 0700 directory (/root/.pyenv); bwrap as root with
``--unshare-user`` maps the sandbox to host uid 0, which ignores RLIMIT_NPROC and can read
root's 0600 files. So bwrap mounts as root (no user namespace) and setpriv drops to a
real unprivileged host uid; its setuid clears every capability. ``--disable-userns``
needs ``--unshare-user``, so a seccomp filter blocks new user namespaces instead.
Not root: bwrap runs unprivileged with ``--unshare-user --disable-userns`` and no setpriv.
``network: True`` (environment builds only) keeps the host network. After the run, a full
workspace (statvfs: an overlay attempt reports its tmpfs) or ENOSPC output is ``disk``.
"""

from __future__ import annotations

import os
import platform
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from patchsmith.domain import ExecResult, SandboxConfig
from patchsmith.errors import SandboxStartError
from patchsmith.infra.sandbox import running
from patchsmith.infra.sandbox.cgroups import SandboxCgroup, open_cgroup
from patchsmith.infra.sandbox.limits import (
    Captured,
    base_env,
    capture,
    checked_inputs,
    disk_full,
    exec_result,
    prlimit_prefix,
)

SANDBOX_UID = 65534

# Files from /etc that programs (Python, git, glibc's NSS) need; none holds secrets.
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/ssl",
    "/etc/gitconfig",
)

# Audit arch of each machine, and syscall numbers: (name, x86_64, aarch64); None = absent.
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_MACHINES = ("x86_64", "aarch64")
# Refused with EPERM, in the spirit of Docker's default profile: kernel attack surface
# (io_uring, bpf, perf, userfaultfd, keyrings), mounts and namespaces, host-wide state
# (clock, swap, reboot, modules, kexec, accounting, quotas, kernel log), raw I/O ports.
DENIED: tuple[tuple[str, int | None, int | None], ...] = (
    ("io_uring_setup", 425, 425),
    ("io_uring_enter", 426, 426),
    ("io_uring_register", 427, 427),
    ("bpf", 321, 280),
    ("perf_event_open", 298, 241),
    ("userfaultfd", 323, 282),
    ("keyctl", 250, 219),
    ("add_key", 248, 217),
    ("request_key", 249, 218),
    ("mount", 165, 40),
    ("umount2", 166, 39),
    ("pivot_root", 155, 41),
    ("move_mount", 429, 429),
    ("open_tree", 428, 428),
    ("fsopen", 430, 430),
    ("fsconfig", 431, 431),
    ("fsmount", 432, 432),
    ("fspick", 433, 433),
    ("mount_setattr", 442, 442),
    ("setns", 308, 268),
    ("swapon", 167, 224),
    ("swapoff", 168, 225),
    ("reboot", 169, 142),
    ("kexec_load", 246, 104),
    ("kexec_file_load", 320, 294),
    ("init_module", 175, 105),
    ("finit_module", 313, 273),
    ("delete_module", 176, 106),
    ("open_by_handle_at", 304, 265),
    ("name_to_handle_at", 303, 264),
    ("acct", 163, 89),
    ("quotactl", 179, 60),
    ("quotactl_fd", 443, 443),
    ("syslog", 103, 116),
    ("settimeofday", 164, 170),
    ("clock_settime", 227, 112),
    ("clock_adjtime", 305, 266),
    ("adjtimex", 159, 171),
    ("iopl", 172, None),
    ("ioperm", 173, None),
    ("lookup_dcookie", 212, 18),
    ("vhangup", 153, 58),
)
# Allowed only without CLONE_NEWUSER in their flags (args[0]).
_FLAG_CHECKED = (("unshare", 272, 97), ("clone", 56, 220))
# ENOSYS: its flags live in memory BPF cannot read; libc then falls back to clone.
_NOSYS = (("clone3", 435, 435),)
# personality(2) only with the personas Docker allows (query, linux, linux32, uname26).
_PERSONALITY = ("personality", 135, 92)
_PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
_CLONE_NEWUSER = 0x10000000


def syscall_numbers(machine: str) -> dict[str, int]:
    """Every syscall the filter treats specially, by name, for ``machine``."""
    col = 1 + _MACHINES.index(machine)
    rows = (*DENIED, *_FLAG_CHECKED, *_NOSYS, _PERSONALITY)
    return {str(row[0]): nr for row in rows if isinstance(nr := row[col], int)}


class BwrapConfig(BaseModel):
    """Settings of the bubblewrap backend (defaults fit a Debian worker)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bwrap: str = Field(default="bwrap", description="The bwrap executable.")
    uid: int = Field(default=SANDBOX_UID, description="Host uid/gid commands run as (root only).")
    ro_paths: list[str] = Field(
        default_factory=list, description="Extra host paths bound read-only at the same path."
    )


_LD, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL = 0x7FFF0000, 0x80000000
_EPERM, _ENOSYS = 0x00050000 | 1, 0x00050000 | 38
_Insn = tuple[int, int | str, int | str, int]


def _assemble(prog: list[_Insn | str]) -> bytes:
    """Classic BPF from instructions whose jump targets may be label names (strings)."""
    where: dict[str, int] = {}
    insns: list[_Insn] = []
    for item in prog:
        if isinstance(item, str):
            where[item] = len(insns)
        else:
            insns.append(item)
    out = []
    for i, (code, jt, jf, k) in enumerate(insns):
        offs = [where[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf)]
        if not all(0 <= o <= 255 for o in offs):
            raise ValueError(f"seccomp jump out of range at {i}")
        out.append(struct.pack("=HBBI", code, offs[0], offs[1], k))
    return b"".join(out)


def seccomp_filter(machine: str | None = None) -> bytes | None:
    """A classic-BPF seccomp program for ``machine`` (default: this one), None if unknown.

    Foreign ABIs are killed, x32 refused; the :data:`DENIED` syscalls get EPERM;
    unshare/clone with CLONE_NEWUSER get EPERM; clone3 gets ENOSYS; personality is
    limited to :data:`_PERSONAS`. Generated from the tables above.
    """
    machine = machine or platform.machine()
    if machine not in _AUDIT_ARCH:
        return None
    col = 1 + _MACHINES.index(machine)

    def nrs(rows: tuple[tuple[str, int | None, int | None], ...]) -> list[int]:
        return [nr for row in rows if isinstance(nr := row[col], int)]

    prog: list[_Insn | str] = [
        (_LD, 0, 0, 4),  # A = arch
        (_JEQ, 1, 0, _AUDIT_ARCH[machine]),
        (_RET, 0, 0, _KILL),  # foreign ABI
        (_LD, 0, 0, 0),  # A = syscall nr
        (_JGE, "eperm", 0, 0x40000000),  # x32 ABI
    ]
    prog += [(_JEQ, "eperm", 0, nr) for nr in nrs(DENIED)]
    prog += [(_JEQ, "newuser", 0, nr) for nr in nrs(_FLAG_CHECKED)]
    prog += [(_JEQ, "enosys", 0, nr) for nr in nrs(_NOSYS)]
    prog += [(_JEQ, "persona", 0, nr) for nr in nrs((_PERSONALITY,))]
    prog += [(_RET, 0, 0, _ALLOW)]
    prog += ["newuser", (_LD, 0, 0, 16), (_JSET, "eperm", "allow", _CLONE_NEWUSER)]
    prog += ["persona", (_LD, 0, 0, 16)]  # low 32 bits of args[0] (little-endian)
    prog += [(_JEQ, "allow", 0, p) for p in _PERSONAS]
    prog += ["eperm", (_RET, 0, 0, _EPERM), "enosys", (_RET, 0, 0, _ENOSYS)]
    prog += ["allow", (_RET, 0, 0, _ALLOW)]
    return _assemble(prog)


def _mount_plan() -> tuple[list[str], list[str]]:
    """(symlink args, ro-bind args) for the system: /usr, /bin, /lib*, /etc bits, Python."""
    links: list[str] = []
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            links += ["--symlink", os.readlink(top), top]
    binds = ["/usr", *(t for t in ("/bin", "/sbin", "/lib", "/lib64") if os.path.isdir(t))]
    binds = [b for b in binds if not os.path.islink(b)]
    python = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix)}
    binds += sorted(p for p in python if not p.startswith("/usr/"))
    args: list[str] = []
    for path in binds:
        args += ["--ro-bind", path, path]
    for path in ETC_FILES:
        args += ["--ro-bind-try", path, path]
    return links, args


def _dirs(paths: Sequence[str], made: set[str]) -> list[str]:
    """``--perms 0755 --dir`` for each missing ancestor (bwrap would make them 0700)."""
    args: list[str] = []
    for path in paths:
        for parent in reversed(Path(path).parents):
            p = str(parent)
            if p != "/" and p not in made:
                made.add(p)
                args += ["--perms", "0755", "--dir", p]
    return args


class BwrapSandbox:
    """Runs each command in a fresh bubblewrap sandbox as an unprivileged user."""

    name = "bwrap"

    def __init__(self, config: BwrapConfig | None = None) -> None:
        self.config = config or BwrapConfig()
        self._seccomp = seccomp_filter()

    def command(
        self,
        workspace: Path,
        argv: Sequence[str],
        config: SandboxConfig,
        env: Mapping[str, str],
        nproc: bool = True,
    ) -> list[str]:
        """The full argv (prlimit, bwrap, setpriv, command); seccomp arrives on fd ``{SECCOMP}``.

        ``nproc=False`` when a pids cgroup limits processes (see :func:`prlimit_prefix`).
        """
        root = os.geteuid() == 0
        ws = str(workspace)
        links, binds = _mount_plan()
        ro_extra = [os.path.realpath(p) for p in (*self.config.ro_paths, *config.ro_paths)]
        rw_extra = [os.path.realpath(p) for p in config.rw_paths]
        made: set[str] = {"/tmp", "/usr", "/proc", "/dev"}
        ro_dests = [b for i, b in enumerate(binds) if i % 3 == 2 and b != "/usr"]
        ns = ["--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        if not config.network:
            ns.append("--unshare-net")
        ns.append("--unshare-cgroup-try")
        if not root:
            ns += ["--unshare-user", "--disable-userns"]
        cmd = [*prlimit_prefix(config, nproc), self.config.bwrap, *ns]
        cmd += ["--die-with-parent", "--new-session", *links]
        # The private /tmp comes before the binds: a venv or interpreter that lives under /tmp
        # (a CI checkout, say) is then bound on top of it instead of being hidden by it.
        size = str(config.tmp_mb * 1024 * 1024)
        cmd += ["--proc", "/proc", "--dev", "/dev"]
        cmd += ["--perms", "1777", "--size", size, "--tmpfs", "/dev/shm"]  # multiprocessing
        cmd += ["--perms", "1777", "--size", size, "--tmpfs", "/tmp"]
        cmd += _dirs([*ro_dests, *ro_extra, *rw_extra], made) + binds
        if config.network:
            cmd += ["--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]
        for path in ro_extra:
            cmd += ["--ro-bind", path, path]
        for path in rw_extra:
            cmd += ["--bind", path, path]
        cmd += [*_dirs([ws], made), "--bind", ws, ws, "--chdir", ws, "--clearenv"]
        for key, value in {**base_env(config.path_prepend), **config.env, **env}.items():
            cmd += ["--setenv", key, value]
        if self._seccomp is not None:
            cmd += ["--seccomp", "{SECCOMP}"]
        cmd += ["--cap-drop", "ALL"]
        if root:
            # setpriv needs these to drop; DAC_READ_SEARCH lets --chdir enter a 0700 workspace
            # owned by the sandbox uid. setresuid to a non-zero uid then clears them all.
            for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_DAC_READ_SEARCH"):
                cmd += ["--cap-add", cap]
        cmd += ["--remount-ro", "/", "--"]
        if root:
            uid = str(self.config.uid)
            cmd += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
            cmd += ["--inh-caps=-all", "--bounding-set=-all", "--"]
        return [*cmd, *argv]

    def run(
        self,
        workspace: Path,
        argv: Sequence[str],
        config: SandboxConfig,
        env: Mapping[str, str] | None = None,
        *,
        pass_fds: Sequence[int] = (),
    ) -> ExecResult:
        """Run ``argv`` in ``workspace`` inside a new sandbox; see the module docstring."""
        workspace = checked_inputs(workspace, argv, config)
        if shutil.which(self.config.bwrap) is None:
            raise SandboxStartError(
                f"{self.config.bwrap!r} not found: apt-get install bubblewrap, "
                "or use sandbox backend 'subprocess'"
            )
        try:
            group = open_cgroup(config.max_procs, config.memory_mb)
        except OSError as exc:
            raise SandboxStartError(f"cannot create the sandbox's cgroup: {exc}") from exc
        try:
            full = self.command(workspace, argv, config, env or {}, nproc=group is None)
            if group is not None:
                full = [*group.prefix(), *full]
            start = time.monotonic()
            got, code = self._spawn(full, config, group, pass_fds)
            hit = group.limit_hit() if group is not None else None
        finally:
            if group is not None:
                group.close()
        full_disk = code not in (0, None) and disk_full(workspace)
        return exec_result(self.name, argv, got, code, start, kernel_hit=hit, full=full_disk)

    def _spawn(
        self,
        full: list[str],
        config: SandboxConfig,
        group: SandboxCgroup | None,
        pass_fds: Sequence[int] = (),
    ) -> tuple[Captured, int | None]:
        fds: list[int] = []
        if self._seccomp is not None:
            rfd, wfd = os.pipe()
            os.write(wfd, self._seccomp)  # a few hundred bytes: fits in the pipe buffer
            os.close(wfd)
            fds.append(rfd)
            full = [str(rfd) if a == "{SECCOMP}" else a for a in full]
        try:
            proc = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=[*fds, *pass_fds],
            )
        except OSError as exc:
            raise SandboxStartError(f"cannot start bwrap: {exc}") from exc
        finally:
            for fd in fds:
                os.close(fd)
        # bwrap leads the group; its PID-namespace init dies with it (--die-with-parent),
        # and the kernel then kills every process left in the namespace.
        with running.tracked(proc.pid):
            got = capture(
                proc, config.timeout_s, config.output_kb * 1024, lambda: running.kill(proc.pid)
            )
        code = None if got.timed_out else proc.returncode
        if group is not None and group.join_failed(code, got.stderr):
            raise SandboxStartError(got.stderr.decode(errors="replace").strip())
        if code is not None and code != 0 and _setup_failed(got.stderr):
            raise SandboxStartError(
                f"bwrap could not set up the sandbox: {got.stderr.decode(errors='replace')}"
            )
        return got, code


def _setup_failed(stderr: bytes) -> bool:
    """bwrap/setpriv's own errors (not the command's): a first line they wrote."""
    first = stderr.lstrip().split(b"\n", 1)[0]
    if first.startswith(b"bwrap: "):
        return True
    # "setpriv: failed to execute X" is the command's problem (not found, EAGAIN): a result.
    return first.startswith(b"setpriv: ") and b"failed to execute" not in first
