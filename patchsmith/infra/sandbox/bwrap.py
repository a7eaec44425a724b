"""bubblewrap backend: no network, read-only system, only the workspace writable.

How one command runs (as root, the usual case for a worker)::

    prlimit --as --nproc --cpu --core=0 --            rlimits, inherited by everything below
      bwrap --unshare-{pid,net,ipc,uts,cgroup-try}    private namespaces, no network
            --ro-bind /usr, /etc bits, Python ...     read-only system, same paths as host
            --tmpfs /tmp (size = tmp_mb)              private /tmp
            --bind WS WS --chdir WS                   the workspace at its host path
            --clearenv --setenv ...                   no host variables
            --seccomp FD                              unshare/clone(CLONE_NEWUSER) -> EPERM
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
from patchsmith.infra.sandbox.limits import (
    base_env,
    capture,
    exec_result,
    kill_group,
    prlimit_prefix,
)

SANDBOX_UID = 65534

# Files from /etc that programs (Python, git, glibc's NSS) need; none holds secrets.
_ETC_FILES = (
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

# (audit arch, unshare, clone, clone3) syscall numbers for the seccomp filter.
_SYSCALLS = {
    "x86_64": (0xC000003E, 272, 56, 435),
    "aarch64": (0xC00000B7, 97, 220, 435),
}
_CLONE_NEWUSER = 0x10000000


class BwrapConfig(BaseModel):
    """Settings of the bubblewrap backend (defaults fit a Debian worker)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bwrap: str = Field(default="bwrap", description="The bwrap executable.")
    uid: int = Field(default=SANDBOX_UID, description="Host uid/gid commands run as (root only).")
    ro_paths: list[str] = Field(
        default_factory=list, description="Extra host paths bound read-only at the same path."
    )


def seccomp_filter(machine: str | None = None) -> bytes | None:
    """A classic-BPF seccomp program refusing new user namespaces, or None if unsupported.

    unshare/clone with CLONE_NEWUSER get EPERM; clone3 gets ENOSYS (its flags live in
    memory that BPF cannot read), which makes libc fall back to clone.
    """
    nums = _SYSCALLS.get(machine or platform.machine())
    if nums is None:
        return None
    arch, unshare, clone, clone3 = nums
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, enosys = 0x00050000 | 1, 0x00050000 | 38
    prog = [
        (ld, 0, 0, 4),  # 0: A = arch
        (jeq, 1, 0, arch),  # 1: native arch -> 3
        (ret, 0, 0, kill),  # 2: foreign ABI: kill
        (ld, 0, 0, 0),  # 3: A = syscall nr
        (jge, 7, 0, 0x40000000),  # 4: x32 ABI -> 12 (EPERM)
        (jeq, 3, 0, unshare),  # 5: -> 9
        (jeq, 2, 0, clone),  # 6: -> 9
        (jeq, 5, 0, clone3),  # 7: -> 13 (ENOSYS)
        (ret, 0, 0, allow),  # 8
        (ld, 0, 0, 16),  # 9: A = low 32 bits of args[0] (flags; little-endian)
        (jset, 1, 0, _CLONE_NEWUSER),  # 10: -> 12
        (ret, 0, 0, allow),  # 11
        (ret, 0, 0, eperm),  # 12
        (ret, 0, 0, enosys),  # 13
    ]
    return b"".join(struct.pack("=HBBI", *insn) for insn in prog)


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
    for path in _ETC_FILES:
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
        self, workspace: Path, argv: Sequence[str], config: SandboxConfig, env: Mapping[str, str]
    ) -> list[str]:
        """The full argv (prlimit, bwrap, setpriv, command); seccomp arrives on fd ``{SECCOMP}``."""
        root = os.geteuid() == 0
        ws = str(workspace)
        links, binds = _mount_plan()
        ro_extra = [os.path.realpath(p) for p in self.config.ro_paths]
        made: set[str] = {"/tmp", "/usr", "/proc", "/dev"}
        ro_dests = [b for i, b in enumerate(binds) if i % 3 == 2 and b != "/usr"]
        ns = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        ns.append("--unshare-cgroup-try")
        if not root:
            ns += ["--unshare-user", "--disable-userns"]
        cmd = [*prlimit_prefix(config), self.config.bwrap, *ns]
        cmd += ["--die-with-parent", "--new-session", *links]
        # The private /tmp comes before the binds: a venv or interpreter that lives under /tmp
        # (a CI checkout, say) is then bound on top of it instead of being hidden by it.
        cmd += ["--proc", "/proc", "--dev", "/dev"]
        cmd += ["--perms", "1777", "--size", str(config.tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
        cmd += _dirs([*ro_dests, *ro_extra], made) + binds
        for path in ro_extra:
            cmd += ["--ro-bind", path, path]
        cmd += [*_dirs([ws], made), "--bind", ws, ws, "--chdir", ws, "--clearenv"]
        for key, value in {**base_env(), **config.env, **env}.items():
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
    ) -> ExecResult:
        """Run ``argv`` in ``workspace`` inside a new sandbox; see the module docstring."""
        if not argv:
            raise SandboxStartError("empty command")
        if shutil.which(self.config.bwrap) is None:
            raise SandboxStartError(
                f"{self.config.bwrap!r} not found: apt-get install bubblewrap, "
                "or use sandbox backend 'subprocess'"
            )
        workspace = Path(workspace).resolve()
        if not workspace.is_dir():
            raise SandboxStartError(f"workspace {workspace} does not exist or is not a directory")
        full = self.command(workspace, argv, config, env or {})
        fds: list[int] = []
        if self._seccomp is not None:
            rfd, wfd = os.pipe()
            os.write(wfd, self._seccomp)  # a few hundred bytes: fits in the pipe buffer
            os.close(wfd)
            fds.append(rfd)
            full = [str(rfd) if a == "{SECCOMP}" else a for a in full]
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=fds,
            )
        except OSError as exc:
            raise SandboxStartError(f"cannot start bwrap: {exc}") from exc
        finally:
            for fd in fds:
                os.close(fd)

        # bwrap leads the group; its PID-namespace init dies with it (--die-with-parent),
        # and the kernel then kills every process left in the namespace.
        got = capture(proc, config.timeout_s, config.output_kb * 1024, lambda: kill_group(proc.pid))
        code = None if got.timed_out else proc.returncode
        if code is not None and code != 0 and _setup_failed(got.stderr):
            raise SandboxStartError(
                f"bwrap could not set up the sandbox: {got.stderr.decode(errors='replace')}"
            )
        return exec_result(self.name, argv, got, code, start)


def _setup_failed(stderr: bytes) -> bool:
    """bwrap/setpriv's own errors (not the command's): a first line they wrote."""
    first = stderr.lstrip().split(b"\n", 1)[0]
    if first.startswith(b"bwrap: "):
        return True
    # "setpriv: failed to execute X" is the command's problem (not found, EAGAIN): a result.
    return first.startswith(b"setpriv: ") and b"failed to execute" not in first
