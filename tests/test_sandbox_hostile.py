"""Hostile programs in the bwrap sandbox: each is contained, reported as the right failure,
and the host is unaffected. Network tests only ever target a listener this test starts on
127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from patchsmith.domain import ExecResult, SandboxConfig
from patchsmith.infra.sandbox.bwrap import BwrapSandbox

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
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


def host_pids_with(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


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
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
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


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_report_dir_swapped_for_a_symlink_is_never_followed_by_root(tmp_path: Path) -> None:
    from patchsmith.domain import Instance
    from patchsmith.infra.workspace import WorkspaceManager
    from patchsmith.tasks.testrun import run_tests

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


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_disk_filler_is_stopped_at_the_file_size_limit(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    ws.chmod(0o777)
    code = "f = open('big.bin', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))\n"
    result = BwrapSandbox().run(ws, [sys.executable, "-c", code], SandboxConfig(file_mb=8))
    assert result.limit_hit == "file_size", result
    assert (ws / "big.bin").stat().st_size <= 8 * 1024 * 1024
