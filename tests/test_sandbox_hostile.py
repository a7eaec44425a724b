"""Hostile programs in the bwrap sandbox: each is contained, reported as the right failure,
and the host is unaffected. Network tests only ever target a listener this test starts on
127.0.0.1.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from helpers import host_pids_with, loopback_listener, needs_bwrap

from patchsmith.domain import ExecResult, SandboxConfig
from patchsmith.infra.sandbox import cgroups
from patchsmith.infra.sandbox.bwrap import DENIED, BwrapSandbox, syscall_numbers

pytestmark = needs_bwrap
PY = sys.executable


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
    return path


def run(ws: Path, code: str, **limits: float) -> ExecResult:
    config = SandboxConfig(**{"timeout_s": 30, **limits})  # type: ignore[arg-type]
    return BwrapSandbox().run(ws, [PY, "-c", code], config)


def test_runs_as_nobody_without_capabilities_or_user_namespaces(ws: Path) -> None:
    code = (
        "import os, subprocess\n"
        "caps = [l for l in open('/proc/self/status') if l.startswith('CapEff')]\n"
        "print(os.getresuid(), os.getgroups(), caps[0].split()[1])\n"
        "print(subprocess.run(['unshare', '-U', 'true']).returncode)\n"
    )
    r = run(ws, code)
    assert r.stdout_tail.splitlines() == ["(65534, 65534, 65534) [] 0000000000000000", "1"]


def test_private_workspace_0700_is_usable_and_caps_are_gone(tmp_path: Path) -> None:
    ws = tmp_path / "private"
    ws.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(ws, 65534, 65534)
    code = (
        "open('f', 'w').write('1')\n"
        "print({l.split()[1] for l in open('/proc/self/status') if l.startswith('Cap')})"
    )
    r = run(ws, code)
    assert r.exit_code == 0 and r.stdout_tail == "{'0000000000000000'}\n"  # no capability at all


def test_fork_bomb_hits_procs_and_leaves_nothing(ws: Path) -> None:
    marker = f"forkbomb-{uuid.uuid4().hex}"
    code = (
        f"import os, time  # {marker}\nwhile True:\n    if os.fork() == 0:\n        time.sleep(60)"
    )
    r = run(ws, code, max_procs=40)
    assert r.limit_hit == "procs" and r.exit_code not in (0, None)
    assert "Resource temporarily unavailable" in r.stderr_tail
    assert host_pids_with(marker) == []
    assert subprocess.run(["true"]).returncode == 0  # the host can still fork


def test_memory_bomb_hits_memory(ws: Path) -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(10_000_000))"
    r = run(ws, code, memory_mb=300)
    assert r.limit_hit == "memory" and r.exit_code == 1
    assert "MemoryError" in r.stderr_tail


def test_timeout_kills_a_setsid_grandchild(ws: Path) -> None:
    marker = f"orphan-{uuid.uuid4().hex}"
    grandchild = "import os, time; open('pid', 'w').write(str(os.getpid())); time.sleep(1000)"
    code = (  # the marker is spelled backwards here so that only the grandchild's argv has it
        "import subprocess\n"
        f"subprocess.Popen(['setsid', {PY!r}, '-c', {grandchild!r}, {marker[::-1]!r}[::-1]])\n"
        "while True:\n    pass\n"
    )
    seen: list[int] = []

    def watch() -> None:  # catch the grandchild's host pid while it runs
        for _ in range(100):
            seen.extend(host_pids_with(marker))
            if seen:
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    r = run(ws, code, timeout_s=3)
    watcher.join()
    assert r.timed_out and r.limit_hit == "timeout" and r.exit_code is None
    assert (ws / "pid").read_text().isdigit()  # it did start (pid inside its namespace)
    assert seen, "the grandchild was never seen running"
    time.sleep(0.2)
    survivors = {
        p: Path(f"/proc/{p}/cmdline").read_bytes() for p in seen if Path(f"/proc/{p}").exists()
    }
    assert survivors == {}
    assert host_pids_with(marker) == []


def test_no_network_even_to_a_host_listener_on_loopback(ws: Path) -> None:
    with loopback_listener() as (listener, port):
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
            "    print('CONNECTED')\n"
            "except OSError as exc:\n"
            "    print(type(exc).__name__)\n"
        )
        r = run(ws, code)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever arrived
    assert r.stdout_tail.strip() in ("ConnectionRefusedError", "OSError")


def test_writes_outside_the_workspace_fail_or_vanish(ws: Path) -> None:
    name = f"escape-{uuid.uuid4().hex}"
    code = (
        "import os\n"
        f"for d in ['/etc', '/usr', '/root', '/', os.path.dirname(os.getcwd())]:\n"
        "    try:\n"
        f"        open(os.path.join(d, {name!r}), 'w').write('x'); print('WROTE', d)\n"
        "    except OSError as exc:\n"
        "        print('refused', d, exc.errno)\n"
        f"open('/tmp/{name}', 'w').write('x'); open(os.path.expanduser('~/{name}'), 'w')\n"
        f"open({name!r}, 'w').write('ok')\n"
    )
    r = run(ws, code)
    assert r.exit_code == 0, r.stderr_tail
    assert "WROTE" not in r.stdout_tail and r.stdout_tail.count("refused") == 5
    for d in ("/etc", "/usr", "/root", "/", "/tmp", str(ws.parent)):
        assert not Path(d, name).exists()
    assert (ws / name).read_text() == "ok"  # the workspace is the one writable place


def test_secret_files_are_neither_visible_nor_readable(ws: Path) -> None:
    outside = ws.parent / "secret.txt"
    inside = ws / "root-only.txt"
    for secret in (outside, inside):
        secret.write_text("hunter2")
        os.chmod(secret, 0o600)
    code = (
        f"for p in [{str(outside)!r}, {str(inside)!r}]:\n"
        "    try:\n"
        "        print(open(p).read())\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
    )
    r = run(ws, code)
    assert r.stdout_tail.splitlines() == ["FileNotFoundError", "PermissionError"]


def test_host_environment_secrets_do_not_leak(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_PROVIDER_API_KEY", "sk-test-0123456789")
    r = BwrapSandbox().run(ws, ["env"], SandboxConfig(timeout_s=30))
    assert r.exit_code == 0 and "PATH=" in r.stdout_tail
    assert "sk-test-0123456789" not in r.stdout_tail and "FAKE_PROVIDER" not in r.stdout_tail


EVIL_TEST = """
import os
import shutil


def test_swap_report_dir_for_a_symlink():
    shutil.rmtree(".patchsmith", ignore_errors=True)
    os.symlink({victim!r}, ".patchsmith")
"""


def test_report_dir_swapped_for_a_symlink_is_never_followed_by_root(tmp_path: Path) -> None:
    from patchsmith.domain import Instance
    from patchsmith.infra.workspace import WorkspaceManager
    from patchsmith.tasks.testing.run import run_tests

    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    planted = '<testsuite><testcase classname="x" name="stolen" file="x.py"/></testsuite>'
    (victim / "junit.xml").write_text(planted)
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "test_evil.py").write_text(EVIL_TEST.format(victim=str(victim)))
    manager = WorkspaceManager(tmp_path / "ws")
    pristine = manager.pristine(Instance(id="evil", repo=str(repo)))
    config = SandboxConfig(timeout_s=60, env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    with manager.attempt(pristine) as ws:
        first = run_tests(BwrapSandbox(), ws, "python -m pytest -q tests", config)
        assert (ws / ".patchsmith").is_symlink(), "the tested code did plant its link"
        second = run_tests(BwrapSandbox(), ws, "python -m pytest -q tests", config)
    for report in (first, second):
        assert not any("stolen" in test for test in report.outcomes)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o700, "root chmod-ed through the link"
    assert (victim / "junit.xml").read_text() == planted, "root deleted through the link"


def test_disk_filler_is_stopped_at_the_file_size_limit(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    ws.chmod(0o777)
    code = "f = open('big.bin', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))\n"
    result = BwrapSandbox().run(ws, [sys.executable, "-c", code], SandboxConfig(file_mb=8))
    assert result.limit_hit == "file_size", result
    assert (ws / "big.bin").stat().st_size <= 8 * 1024 * 1024


# ------------------------------------------------------------ per-sandbox cgroups

needs_cgroups = pytest.mark.skipif(
    cgroups.support().mode == "rlimit", reason="no usable pids cgroup (needs root + cgroups)"
)


def wait_for(path: Path, limit_s: float = 25) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.02)
    return False


@needs_cgroups
def test_a_fork_bomb_does_not_starve_a_concurrent_sandbox(tmp_path: Path) -> None:
    # Both run as uid 65534. With RLIMIT_NPROC (per uid) the bomb's 40 processes would make
    # the other sandbox's forks fail; with a pids cgroup each sandbox has its own 40.
    bomb_ws, other_ws = (tmp_path / "bomb", tmp_path / "other")
    for path in (bomb_ws, other_ws):
        path.mkdir()
        os.chown(path, 65534, 65534)
    bomb = (
        "import os, sys, time\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "except OSError as exc:\n"
        "    open('full', 'w').close()\n"  # holds its processes until the host says so
        "    while not os.path.exists('release'):\n"
        "        time.sleep(0.02)\n"
        "    sys.exit(f'fork: {exc}')\n"
    )
    ordinary = (
        "import subprocess, threading\n"
        "procs = [subprocess.Popen(['sh', '-c', 'echo $$']) for _ in range(5)]\n"
        "threads = [threading.Thread(target=sum, args=([1],)) for _ in range(5)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(sum(p.wait() == 0 for p in procs))\n"
    )
    config = SandboxConfig(timeout_s=60, max_procs=40)
    got: dict[str, ExecResult] = {}
    thread = threading.Thread(
        target=lambda: got.setdefault("bomb", BwrapSandbox().run(bomb_ws, [PY, "-c", bomb], config))
    )
    thread.start()
    try:
        assert wait_for(bomb_ws / "full"), "the bomb never reached its limit"
        other = BwrapSandbox().run(other_ws, [PY, "-c", ordinary], config)
    finally:
        (bomb_ws / "release").touch()
        thread.join()
    assert other.exit_code == 0 and other.stdout_tail.splitlines()[-1] == "5", other
    assert got["bomb"].limit_hit == "procs" and got["bomb"].exit_code not in (0, None)
    assert "Resource temporarily unavailable" in got["bomb"].stderr_tail


@needs_cgroups
@pytest.mark.skipif(cgroups.support().memory is None, reason="no memory cgroup")
def test_memory_spread_over_processes_hits_the_sandbox_memory_cgroup(ws: Path) -> None:
    # Each child stays under RLIMIT_AS (200 MB per process); together they pass the
    # sandbox's 200 MB memory cgroup, which OOM-kills one: limit_hit is "memory".
    child = "import time; b = b'x' * 120_000_000; time.sleep(30)"
    code = (
        "import subprocess, sys\n"
        f"ps = [subprocess.Popen([sys.executable, '-c', {child!r}]) for _ in range(4)]\n"
        "sys.exit(max(abs(p.wait()) for p in ps))\n"
    )
    r = run(ws, code, memory_mb=200, timeout_s=60)
    assert r.limit_hit == "memory" and r.exit_code not in (0, None), r


@needs_cgroups
def test_cgroups_of_a_killed_process_are_reaped_and_live_ones_kept(tmp_path: Path) -> None:
    # A child makes a sandbox cgroup, starts a process in it and is SIGKILLed.
    code = (
        "import os, subprocess\n"
        "from patchsmith.infra.sandbox.cgroups import open_cgroup\n"
        "g = open_cgroup(10, 100)\n"
        "quiet = subprocess.DEVNULL  # the sleep must not hold our pipes open\n"
        "p = subprocess.Popen([*g.prefix(), 'sleep', '1000'], stdout=quiet, stderr=quiet)\n"
        "while str(p.pid) not in open(g.groups[0] / 'cgroup.procs').read(): pass\n"
        "print(p.pid, *g.groups, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    pid, *groups = proc.stdout.split()
    assert groups and all(Path(g).is_dir() for g in groups)
    assert Path(f"/proc/{pid}").exists()
    mine = cgroups.open_cgroup(10, 100)
    assert mine is not None
    try:
        assert cgroups.reap_stale(cgroups.support()) >= 1
        assert not any(Path(g).exists() for g in groups)
        assert all(g.is_dir() for g in mine.groups)  # a live process's group stays
    finally:
        mine.close()
    assert not any(g.exists() for g in mine.groups)
    for _ in range(200):  # killed; its zombie is reaped by init
        if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text():
            break
        time.sleep(0.01)
    else:
        pytest.fail(f"sleep {pid} survived the reap")


@needs_cgroups
def test_cgroup_is_removed_after_the_run(ws: Path) -> None:
    found = cgroups.support()
    assert found.pids is not None
    mine = f"{os.getpid()}-"  # other patchsmith processes on this machine have their own

    def groups() -> set[str]:
        return {p.name for p in found.pids.iterdir() if p.is_dir() and p.name.startswith(mine)}

    before = groups()
    r = run(ws, "import subprocess; subprocess.Popen(['setsid', 'sleep', '100'])")
    assert r.exit_code == 0
    assert groups() == before


# ---------------------------------------------------------------- seccomp denylist

SYSCALL_PROBE = """
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
BAD = ctypes.c_void_p(1)  # an unmapped address: nothing is ever really done
# Arguments for which an unfiltered kernel answers something else than EPERM for an
# unprivileged caller (EFAULT, EBADF, EINVAL, success), so EPERM here is the filter's.
ARGS = {
    "umount2": (BAD, 0xFFFF), "personality": (0x0040000,), "io_uring_setup": (1, BAD),
    "userfaultfd": (1,), "keyctl": (0, -3, 0), "setns": (-1, 0), "syslog": (10, 0, 0),
    "io_uring_enter": (-1, 0, 0, 0, 0, 0), "io_uring_register": (-1, 0, 0, 0),
    "bpf": (9999, 0, 0), "perf_event_open": (BAD, 0, -1, -1, 0), "vhangup": (),
    "clock_settime": (99, BAD), "clock_adjtime": (99, BAD), "adjtimex": (BAD,),
    "open_by_handle_at": (-1, BAD, 0), "name_to_handle_at": (-1, BAD, BAD, BAD, 0xFFFFFFFF),
    "lookup_dcookie": (0, BAD, 0), "iopl": (99,), "ioperm": (0, 0, 0), "acct": (BAD,),
    "quotactl_fd": (-1, 0, 0, 0), "clone3": (BAD, 0),
}
out = {}
for name, nr in json.loads(sys.argv[1]).items():
    args = [a if isinstance(a, ctypes.c_void_p) else ctypes.c_long(a)
            for a in ARGS.get(name, (BAD, BAD, BAD, 0xFFFFFFFF, BAD))]
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *args)
    out[name] = "ok" if ret >= 0 else ctypes.get_errno()
out["personality(query)"] = libc.syscall(ctypes.c_long(int(sys.argv[2])), ctypes.c_long(0xFFFFFFFF))
print(json.dumps(out))
"""


def test_seccomp_refuses_each_denied_syscall(ws: Path) -> None:
    machine = platform.machine()
    if machine not in ("x86_64", "aarch64"):
        pytest.skip(f"no seccomp table for {machine}")
    nums = syscall_numbers(machine)
    probe = {name: nums[name] for name, *_ in DENIED if name in nums}
    probe["clone3"] = nums["clone3"]
    probe["personality"] = nums["personality"]
    argv = [PY, "-c", SYSCALL_PROBE, json.dumps(probe), str(nums["personality"])]
    r = BwrapSandbox().run(ws, argv, SandboxConfig(timeout_s=30))
    assert r.exit_code == 0, r.stderr_tail
    got = json.loads(r.stdout_tail)
    expected = {name: errno.EPERM for name in probe}
    expected["clone3"] = errno.ENOSYS
    assert got.pop("personality(query)") >= 0  # the default persona stays allowed
    assert got == expected


def test_ordinary_python_still_works_under_the_filter(ws: Path) -> None:
    code = (
        "import multiprocessing as mp, subprocess, threading, os\n"
        "def sq(x):\n    return x * x\n"
        "if __name__ == '__main__':\n"
        "    t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
        "    print(subprocess.run(['sh', '-c', 'echo sub'], capture_output=True, text=True)"
        ".stdout.strip())\n"
        "    with mp.Pool(2) as pool:\n        print(sum(pool.map(sq, range(10))))\n"
        "    q = mp.Queue(); p = mp.Process(target=q.put, args=('queued',)); p.start()\n"
        "    print(q.get(timeout=20)); p.join()\n"
        "    s = os.statvfs('/dev/shm'); print(s.f_blocks * s.f_frsize)\n"
    )
    (ws / "main.py").write_text(code)
    r = BwrapSandbox().run(ws, [PY, "main.py"], SandboxConfig(timeout_s=60, tmp_mb=32))
    assert r.exit_code == 0, r.stderr_tail
    assert r.stdout_tail.split() == ["thread", "sub", "285", "queued", str(32 * 1024 * 1024)]


# ------------------------------------------------------------- disk per attempt

needs_overlay = pytest.mark.skipif(os.geteuid() != 0, reason="overlay attempts need root")


def mounts_under(root: Path) -> list[str]:
    return [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(root))
    ]


def attempt_run(tmp_path: Path, code: str, **limits: int) -> ExecResult:
    """Run ``code`` in a real overlay attempt (bounded by disk_mb / inodes) under bwrap."""
    from patchsmith.infra.workspace import WorkspaceManager

    src = tmp_path / "src"
    src.mkdir()
    (src / "keep.txt").write_text("pristine")
    manager = WorkspaceManager(tmp_path / "work", method="overlay")
    pristine = src
    os.chown(pristine, 65534, 65534)
    config = SandboxConfig(timeout_s=60, **limits)  # type: ignore[arg-type]
    with manager.attempt(pristine, disk_mb=config.disk_mb, inodes=config.inodes) as ws:
        result = BwrapSandbox().run(ws, [PY, "-c", code], config)
    assert mounts_under(manager.root) == []
    assert list((manager.root / "attempts").iterdir()) == []
    assert (src / "keep.txt").read_text() == "pristine" and len(list(src.iterdir())) == 1
    return result


@needs_overlay
def test_disk_filler_of_many_small_files_hits_the_attempt_disk_limit(tmp_path: Path) -> None:
    # Each file is under file_mb, so only the attempt's 16 MB writable layer stops it.
    code = "for i in range(40):\n    open(f'f{i}', 'wb').write(b'x' * 1_000_000)\n"
    r = attempt_run(tmp_path, code, file_mb=1, disk_mb=16)
    assert r.exit_code not in (0, None) and r.limit_hit == "disk", r
    assert "No space left on device" in r.stderr_tail


@needs_overlay
def test_inode_bomb_hits_the_attempt_disk_limit(tmp_path: Path) -> None:
    code = "import os\nos.mkdir('d')\nfor i in range(5000):\n    open(f'd/{i}', 'w').close()\n"
    r = attempt_run(tmp_path, code, inodes=500)
    assert r.exit_code not in (0, None) and r.limit_hit == "disk", r
