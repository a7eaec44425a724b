"""Sandbox backends: exit codes, timeouts, output tails, env, start failures; the CLI.

The subprocess backend warns (RuntimeWarning) that it does not isolate; its tests ignore
that warning, and one test checks in a fresh interpreter that it is emitted exactly once.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from helpers import HAVE_BWRAP, loopback_listener, needs_bwrap
from typer.testing import CliRunner

from patchsmith.cli_sandbox import sandbox_app
from patchsmith.domain import SandboxConfig
from patchsmith.errors import ConfigError, SandboxStartError
from patchsmith.infra.sandbox import Sandbox, get_sandbox
from patchsmith.infra.sandbox.bwrap import BwrapConfig, BwrapSandbox, seccomp_filter
from patchsmith.infra.sandbox.subprocess_backend import SubprocessSandbox

ignore_no_isolation = pytest.mark.filterwarnings(
    "ignore:sandbox backend 'subprocess' does NOT isolate:RuntimeWarning"
)
PY = sys.executable


def make_workspace(path: Path) -> Path:
    """A directory the sandbox user (65534 when we are root) may write."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
    return path


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


@pytest.fixture(
    params=[
        pytest.param("subprocess", marks=ignore_no_isolation),
        pytest.param("bwrap", marks=needs_bwrap),
    ]
)
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    return get_sandbox(request.param)


def test_exit_codes_and_streams(sandbox: Sandbox, ws: Path) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    r = sandbox.run(ws, [PY, "-c", code], SandboxConfig(timeout_s=30))
    assert (r.exit_code, r.timed_out, r.limit_hit) == (3, False, None)
    assert r.stdout_tail == "out\n" and r.stderr_tail == "err\n"
    assert r.backend == sandbox.name and not r.ok
    assert sandbox.run(ws, [PY, "-c", "pass"], SandboxConfig(timeout_s=30)).ok


def test_missing_command_is_a_result_not_an_infra_error(sandbox: Sandbox, ws: Path) -> None:
    r = sandbox.run(ws, ["no-such-command-xyz"], SandboxConfig(timeout_s=30))
    assert r.exit_code == 127 and "no-such-command-xyz" in r.stderr_tail


def test_timeout_kills_the_process_group(sandbox: Sandbox, ws: Path) -> None:
    # the child (same group) marks its start, then writes a file 3 s later: with a 1 s limit
    # it must be dead by then. Timed from the child's own mark, not from how long the run
    # took, so a slow sandbox start on a loaded machine does not matter.
    code = (
        "import subprocess, time;"
        "subprocess.Popen(['sh', '-c', 'touch started; sleep 3; touch late']);"
        "time.sleep(100)"
    )
    r = sandbox.run(ws, [PY, "-c", code], SandboxConfig(timeout_s=1))
    assert r.timed_out and r.exit_code is None and r.limit_hit == "timeout"
    assert (ws / "started").exists(), "the child never ran: nothing was tested"
    time.sleep(max(0.0, (ws / "started").stat().st_mtime + 3.5 - time.time()))
    assert not (ws / "late").exists()


def test_output_keeps_only_the_tail(sandbox: Sandbox, ws: Path) -> None:
    code = "import sys\nfor i in range(20000): print(i)\nsys.stderr.write('e' * 5000 + 'END')"
    r = sandbox.run(ws, [PY, "-c", code], SandboxConfig(timeout_s=30, output_kb=1))
    assert r.exit_code == 0 and r.limit_hit == "output"
    assert len(r.stdout_tail) <= 1024 and r.stdout_tail.endswith("19999\n")
    assert len(r.stderr_tail) == 1024 and r.stderr_tail.endswith("eEND")


def test_env_is_cleared_then_extended(
    sandbox: Sandbox, ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_ONLY_VARIABLE", "leak")
    code = "import os; print(os.environ.get('HOST_ONLY_VARIABLE'), os.environ['MINE'])"
    r = sandbox.run(ws, [PY, "-c", code], SandboxConfig(timeout_s=30), env={"MINE": "yes"})
    assert r.stdout_tail == "None yes\n"


def test_runs_in_the_workspace_at_its_host_path(sandbox: Sandbox, ws: Path) -> None:
    r = sandbox.run(ws, [PY, "-c", "import os; print(os.getcwd())"], SandboxConfig(timeout_s=30))
    assert r.stdout_tail.strip() == str(ws.resolve())


def test_missing_workspace_is_a_start_error(sandbox: Sandbox, tmp_path: Path) -> None:
    with pytest.raises(SandboxStartError, match="does not exist"):
        sandbox.run(tmp_path / "nope", ["true"], SandboxConfig())


def test_subprocess_backend_warns_exactly_once(tmp_path: Path) -> None:
    code = (
        "import warnings, pathlib\n"
        "from patchsmith.domain import SandboxConfig\n"
        "from patchsmith.infra.sandbox.subprocess_backend import SubprocessSandbox\n"
        "with warnings.catch_warnings(record=True) as got:\n"
        "    warnings.simplefilter('always')\n"
        "    for _ in range(3):\n"
        f"        SubprocessSandbox().run(pathlib.Path({str(tmp_path)!r}), ['true'], "
        "SandboxConfig())\n"
        "print([str(w.message)[:40] for w in got if w.category is RuntimeWarning])\n"
    )
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[\"sandbox backend 'subprocess' does NOT is\"]"


def test_registry_finds_backends_and_lists_valid_names() -> None:
    assert isinstance(get_sandbox("subprocess"), SubprocessSandbox)
    if HAVE_BWRAP:
        assert isinstance(get_sandbox("auto"), BwrapSandbox)
    with pytest.raises(ConfigError, match="choose one of: auto, bwrap, subprocess"):
        get_sandbox("chroot")


@needs_bwrap
def test_bwrap_setup_failure_raises_with_bwrap_stderr(ws: Path) -> None:
    broken = BwrapSandbox(BwrapConfig(ro_paths=["/definitely/not/here"]))
    with pytest.raises(SandboxStartError, match=r"bwrap: .*/definitely/not/here"):
        broken.run(ws, ["true"], SandboxConfig())


@needs_bwrap
def test_bwrap_tmp_is_private_and_sized(ws: Path) -> None:
    sentinel = Path(f"/tmp/patchsmith-host-only-{os.getpid()}")
    sentinel.write_text("host")
    try:
        code = (
            "import os; s = os.statvfs('/tmp'); print(s.f_blocks * s.f_frsize, os.listdir('/tmp'))"
        )
        r = BwrapSandbox().run(ws, [PY, "-c", code], SandboxConfig(tmp_mb=16))
    finally:
        sentinel.unlink()
    size, listing = r.stdout_tail.split(" ", 1)
    assert int(size) == 16 * 1024 * 1024
    # Only mount points of what is bound in (the workspace, a Python install under /tmp).
    bound = [ws, Path(sys.prefix), Path(sys.base_prefix)]
    allowed = {p.parts[2] for p in bound if p.parts[1:2] == ("tmp",) and len(p.parts) > 2}
    seen = set(ast.literal_eval(listing.strip()))
    assert sentinel.name not in seen
    assert ws.parts[2] in seen and seen <= allowed


def run_bpf(prog: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """Evaluate a classic-BPF seccomp program on one ``seccomp_data``; returns its action."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *args, *[0] * (6 - len(args)))
    insns = [struct.unpack("<HBBI", prog[i : i + 8]) for i in range(0, len(prog), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            (acc,) = struct.unpack_from("<I", data, k)
            pc += 1
        elif code == 0x06:  # BPF_RET | BPF_K
            return k
        else:
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += 1 + (jt if taken else jf)


ALLOW, KILL = 0x7FFF0000, 0x80000000
EPERM, ENOSYS = 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x00020000, 17
# Numbers from the kernel's tables, written out here rather than taken from the filter's.
SECCOMP_CASES = {
    "x86_64": (0xC000003E, dict(openat=257, mount=165, bpf=321, clone=56, unshare=272,
                                clone3=435, personality=135)),
    "aarch64": (0xC00000B7, dict(openat=56, mount=40, bpf=280, clone=220, unshare=97,
                                 clone3=435, personality=92)),
}  # fmt: skip


@pytest.mark.parametrize("machine", sorted(SECCOMP_CASES))
def test_seccomp_filter_decides_each_kind_of_call(machine: str) -> None:
    # In a real sandbox the filter is tested on this machine (test_sandbox_hostile); here
    # each machine's program is evaluated, so the one that cannot run here is checked too.
    arch, nr = SECCOMP_CASES[machine]
    prog = seccomp_filter(machine)
    assert prog is not None
    other = next(a for m, (a, _) in SECCOMP_CASES.items() if m != machine)

    def action(name: str, *args: int) -> int:
        return run_bpf(prog, nr[name], arch, args)

    assert run_bpf(prog, nr["openat"], other) == KILL  # a foreign ABI
    assert run_bpf(prog, 0x40000000 | 1, arch) == EPERM  # x32
    assert action("openat") == ALLOW
    assert action("mount") == EPERM and action("bpf") == EPERM
    assert action("clone", SIGCHLD) == ALLOW
    assert action("clone", CLONE_NEWUSER | SIGCHLD) == EPERM
    assert action("unshare", CLONE_NEWNS) == ALLOW
    assert action("unshare", CLONE_NEWUSER) == EPERM
    assert action("clone3") == ENOSYS
    assert action("personality", 0xFFFFFFFF) == ALLOW  # query
    assert action("personality", 0x0400000) == EPERM  # READ_IMPLIES_EXEC
    assert seccomp_filter("sparc") is None


# ------------------------------------------------------------------------------ CLI


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("subprocess", marks=ignore_no_isolation),
        pytest.param("bwrap", marks=needs_bwrap),
    ],
)
def test_cli_prints_result_json_and_exits_0_even_if_command_fails(
    runner: CliRunner, ws: Path, backend: str
) -> None:
    args = ["run", "--backend", backend, "--timeout", "20", "--workspace", str(ws), "--"]
    res = runner.invoke(sandbox_app, [*args, PY, "-c", "print('hi'); raise SystemExit(4)"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["exit_code"] == 4 and data["stdout_tail"] == "hi\n" and data["backend"] == backend


def test_cli_bad_input_exits_2_with_a_fix(runner: CliRunner, tmp_path: Path, ws: Path) -> None:
    res = runner.invoke(sandbox_app, ["run", "--workspace", str(tmp_path / "nope"), "--", "true"])
    assert res.exit_code == 2 and "mkdir -p" in res.stderr
    res = runner.invoke(sandbox_app, ["run", "--backend", "vm", "--workspace", str(ws), "--", "x"])
    assert res.exit_code == 2 and "choose one of" in res.stderr


def test_config_env_reaches_the_command_and_host_env_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_ONLY_SETTING", "leak")
    ws = tmp_path / "ws"
    ws.mkdir()
    ws.chmod(0o777)
    config = SandboxConfig(timeout_s=30, env={"CAMPAIGN_SETTING": "on"})
    code = (
        "import os; print(os.environ.get('CAMPAIGN_SETTING'), os.environ.get('HOST_ONLY_SETTING'))"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = get_sandbox("auto").run(ws, ["python", "-c", code], config)
    assert result.exit_code == 0, result.stderr_tail
    assert result.stdout_tail.strip() == "on None"


# ------------------------------------------- extra paths, PATH, network (SandboxConfig)


def tool_dir(path: Path) -> Path:
    """A 0755 directory holding an executable ``tool`` that prints ``tool ran``."""
    path.mkdir(mode=0o755)
    tool = path / "tool"
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)
    return path


@needs_bwrap
def test_ro_path_is_runnable_from_path_prepend_but_not_writable(ws: Path, tmp_path: Path) -> None:
    tools = tool_dir(tmp_path / "tools")
    if os.geteuid() == 0:
        os.chown(tools, 65534, 65534)  # writable by the sandbox user but for the ro bind
    code = (
        "import os, shutil, subprocess\n"
        "print(shutil.which('tool'), subprocess.run(['tool'], capture_output=True, text=True)"
        ".stdout.strip())\n"
        f"try:\n    open({str(tools / 'x')!r}, 'w')\nexcept OSError as exc:\n"
        "    print(os.strerror(exc.errno))\n"
    )
    config = SandboxConfig(timeout_s=30, ro_paths=[str(tools)], path_prepend=[str(tools)])
    r = BwrapSandbox().run(ws, [PY, "-c", code], config)
    assert r.exit_code == 0, r.stderr_tail
    assert r.stdout_tail.splitlines() == [f"{tools / 'tool'} tool ran", "Read-only file system"]
    assert not (tools / "x").exists()
    # Without the bind the directory is not there at all.
    which = "import shutil; print(shutil.which('tool'))"
    r = BwrapSandbox().run(ws, [PY, "-c", which], SandboxConfig(path_prepend=[str(tools)]))
    assert r.stdout_tail == "None\n"


@needs_bwrap
def test_rw_path_is_writable_and_the_write_reaches_the_host(ws: Path, tmp_path: Path) -> None:
    env_dir = make_workspace(tmp_path / "envdir")
    code = f"open({str(env_dir / 'built.txt')!r}, 'w').write('env')"
    r = BwrapSandbox().run(ws, [PY, "-c", code], SandboxConfig(rw_paths=[str(env_dir)]))
    assert r.exit_code == 0, r.stderr_tail
    assert (env_dir / "built.txt").read_text() == "env"


@needs_bwrap
def test_missing_extra_paths_are_start_errors(ws: Path, tmp_path: Path) -> None:
    for field in ("ro_paths", "rw_paths"):
        config = SandboxConfig(**{field: [str(tmp_path / "absent")]})  # type: ignore[arg-type]
        with pytest.raises(SandboxStartError, match=f"{field}: .*absent does not exist"):
            BwrapSandbox().run(ws, ["true"], config)


@needs_bwrap
def test_network_true_shares_the_host_network(ws: Path) -> None:
    with loopback_listener() as (listener, port):
        code = (
            "import socket\n"
            f"s = socket.create_connection(('127.0.0.1', {port}), timeout=10)\n"
            "s.sendall(b'hello'); s.close(); print('CONNECTED')\n"
        )
        r = BwrapSandbox().run(ws, [PY, "-c", code], SandboxConfig(timeout_s=30, network=True))
        listener.settimeout(10)
        conn, _ = listener.accept()
        with conn:
            assert conn.recv(16) == b"hello"
    assert r.stdout_tail.strip() == "CONNECTED", r.stderr_tail


@ignore_no_isolation
def test_subprocess_backend_honours_path_prepend(ws: Path, tmp_path: Path) -> None:
    tools = tool_dir(tmp_path / "tools")
    config = SandboxConfig(timeout_s=30, path_prepend=[str(tools)])
    r = SubprocessSandbox().run(ws, ["tool"], config)
    assert (r.exit_code, r.stdout_tail) == (0, "tool ran\n")
    path = SubprocessSandbox().run(ws, ["sh", "-c", "echo $PATH"], config).stdout_tail
    assert path.split(":")[0] == str(tools)


def test_cgroup_discovery_nests_under_our_own_cgroup() -> None:
    from patchsmith.infra.sandbox.cgroups import detect, our_dir, parse_membership, parse_mountinfo

    v1 = (
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    member = "8:pids:/\n4:memory:/process_api/abc\n0::/\n"
    mounts, mine = parse_mountinfo(v1), parse_membership(member)
    assert our_dir(mounts, mine, "memory") == Path("/sys/fs/cgroup/memory/process_api/abc")
    assert our_dir(mounts, mine, "pids") == Path("/sys/fs/cgroup/pids")
    # A mount of only part of the tree (a cgroup namespace): paths are taken relative to it,
    # and a cgroup outside what is mounted is not used at all.
    part = parse_mountinfo("9 1 0:5 /job /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    assert our_dir(part, parse_membership("0::/job/w1\n"), "") == Path("/sys/fs/cgroup/w1")
    assert our_dir(part, parse_membership("0::/other\n"), "") is None
    assert detect("", "0::/\n", test_limits=False).mode == "rlimit"  # nothing mounted
