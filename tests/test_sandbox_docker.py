"""Hostile programs in the docker sandbox, as in test_sandbox_hostile.py for bwrap: each is
contained, reported as the right failure, and the host is unaffected. The engine is a
private dockerd this module starts (no bridge, no iptables) and stops by its pid; network
tests only ever target a listener this test starts on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import host_pids_with, loopback_listener

from patchsmith.domain import ExecResult, SandboxConfig
from patchsmith.errors import SandboxStartError
from patchsmith.infra.sandbox import dockerd, get_sandbox
from patchsmith.infra.sandbox.docker_backend import REPOSITORY, DockerSandbox

REASON = dockerd.unavailable_reason()
pytestmark = [
    pytest.mark.skipif(REASON is not None, reason=f"docker sandbox tests: {REASON}"),
    pytest.mark.timeout(300),
]
PY = sys.executable


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dockerd.PrivateDockerd]:
    with dockerd.PrivateDockerd(tmp_path_factory.mktemp("dockerd")) as running:
        yield running


@pytest.fixture(scope="module")
def sandbox(engine: dockerd.PrivateDockerd) -> DockerSandbox:
    return DockerSandbox(engine.url)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    os.chown(path, 65534, 65534)
    return path


def run(sandbox: DockerSandbox, ws: Path, code: str, **limits: float) -> ExecResult:
    config = SandboxConfig(**{"timeout_s": 30, **limits})  # type: ignore[arg-type]
    return sandbox.run(ws, [PY, "-c", code], config)


def test_the_image_is_built_here_and_named_by_its_content(sandbox: DockerSandbox) -> None:
    ref = sandbox.image()
    assert ref.startswith(f"{REPOSITORY}:")
    tags = [t for image in sandbox.client().images.list() for t in image.tags]
    assert tags == [ref]  # nothing pulled: the engine holds our base image only


def test_the_backend_is_chosen_by_name(engine: dockerd.PrivateDockerd, ws: Path) -> None:
    os.environ["DOCKER_HOST"] = engine.url
    try:
        chosen = get_sandbox("docker")
        r = chosen.run(ws, [PY, "-c", "print('hi')"], SandboxConfig(timeout_s=30))
    finally:
        del os.environ["DOCKER_HOST"]
    assert (chosen.name, r.backend, r.exit_code, r.stdout_tail) == ("docker",) * 2 + (0, "hi\n")


def test_runs_as_nobody_without_capabilities_or_user_namespaces(
    sandbox: DockerSandbox, ws: Path
) -> None:
    code = (
        "import os, subprocess\n"
        "caps = [l for l in open('/proc/self/status') if l.startswith('CapEff')]\n"
        "print(os.getresuid(), os.getgroups(), caps[0].split()[1])\n"
        "print(subprocess.run(['unshare', '-U', 'true']).returncode)\n"
    )
    r = run(sandbox, ws, code)
    # docker lists the user's own group (nogroup, 65534) as supplementary: no other group
    assert r.stdout_tail.splitlines() == ["(65534, 65534, 65534) [65534] 0000000000000000", "1"]


def test_fork_bomb_hits_procs_and_leaves_nothing(sandbox: DockerSandbox, ws: Path) -> None:
    marker = f"forkbomb-{uuid.uuid4().hex}"
    code = (
        f"import os, time  # {marker}\nwhile True:\n    if os.fork() == 0:\n        time.sleep(60)"
    )
    r = run(sandbox, ws, code, max_procs=40)
    assert r.limit_hit == "procs" and r.exit_code not in (0, None)
    assert host_pids_with(marker) == []
    assert subprocess.run(["true"]).returncode == 0


def test_memory_bomb_hits_memory(sandbox: DockerSandbox, ws: Path) -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(10_000_000))"
    r = run(sandbox, ws, code, memory_mb=300)
    assert r.limit_hit == "memory" and r.exit_code not in (0, None)


def test_timeout_kills_a_setsid_grandchild(sandbox: DockerSandbox, ws: Path) -> None:
    marker = f"orphan-{uuid.uuid4().hex}"
    grandchild = "import os, time; open('pid', 'w').write(str(os.getpid())); time.sleep(1000)"
    code = (
        "import subprocess\n"
        f"subprocess.Popen(['setsid', {PY!r}, '-c', {grandchild!r}, {marker[::-1]!r}[::-1]])\n"
        "while True:\n    pass\n"
    )
    seen: list[int] = []

    def watch() -> None:
        for _ in range(200):
            seen.extend(host_pids_with(marker))
            if seen:
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    r = run(sandbox, ws, code, timeout_s=4)
    watcher.join()
    assert r.timed_out and r.limit_hit == "timeout" and r.exit_code is None
    assert (ws / "pid").read_text().isdigit()
    assert seen, "the grandchild was never seen running"
    time.sleep(0.5)
    assert [p for p in seen if Path(f"/proc/{p}").exists()] == []


def test_no_network_even_to_a_host_listener_on_loopback(sandbox: DockerSandbox, ws: Path) -> None:
    with loopback_listener() as (listener, port):
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
            "    print('CONNECTED')\n"
            "except OSError as exc:\n"
            "    print(type(exc).__name__)\n"
        )
        r = run(sandbox, ws, code)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert r.stdout_tail.strip() in ("ConnectionRefusedError", "OSError")


def test_writes_outside_the_workspace_fail_or_vanish(sandbox: DockerSandbox, ws: Path) -> None:
    name = f"escape-{uuid.uuid4().hex}"
    code = (
        "import os\n"
        f"for d in ['/etc', '/usr', '/root', '/', os.path.dirname(os.getcwd())]:\n"
        "    try:\n"
        f"        open(os.path.join(d, {name!r}), 'w').write('x'); print('WROTE', d)\n"
        "    except OSError as exc:\n"
        "        print('refused', d, exc.errno)\n"
        f"open('/tmp/{name}', 'w').write('x')\n"
        f"open({name!r}, 'w').write('ok')\n"
    )
    r = run(sandbox, ws, code)
    assert r.exit_code == 0, r.stderr_tail
    assert "WROTE" not in r.stdout_tail and r.stdout_tail.count("refused") == 5
    for d in ("/etc", "/usr", "/root", "/", "/tmp", str(ws.parent)):
        assert not Path(d, name).exists()
    assert (ws / name).read_text() == "ok"


def test_secret_files_are_neither_visible_nor_readable(sandbox: DockerSandbox, ws: Path) -> None:
    outside = ws.parent / "secret.txt"
    inside = ws / "root-only.txt"
    for secret in (outside, inside):
        secret.write_text("hunter2")
        os.chmod(secret, 0o600)
    code = (
        f"for p in [{str(outside)!r}, {str(inside)!r}, '/etc/shadow']:\n"
        "    try:\n"
        "        print(open(p).read())\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
    )
    r = run(sandbox, ws, code)
    assert r.stdout_tail.splitlines() == [
        "FileNotFoundError",
        "PermissionError",
        "FileNotFoundError",
    ]


def test_host_environment_secrets_do_not_leak(
    sandbox: DockerSandbox, ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PROVIDER_API_KEY", "sk-test-0123456789")
    r = sandbox.run(ws, ["env"], SandboxConfig(timeout_s=30))
    assert r.exit_code == 0 and "PATH=" in r.stdout_tail
    assert "sk-test-0123456789" not in r.stdout_tail and "FAKE_PROVIDER" not in r.stdout_tail


def test_disk_filler_is_stopped_at_the_file_size_limit(sandbox: DockerSandbox, ws: Path) -> None:
    code = "f = open('big.bin', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))\n"
    r = sandbox.run(ws, [PY, "-c", code], SandboxConfig(file_mb=8, timeout_s=30))
    assert r.limit_hit == "file_size", r
    assert (ws / "big.bin").stat().st_size <= 8 * 1024 * 1024


def test_a_repository_test_suite_runs_inside(sandbox: DockerSandbox, ws: Path) -> None:
    (ws / "test_it.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    r = sandbox.run(
        ws,
        [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_it.py"],
        SandboxConfig(timeout_s=60, env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}),
    )
    assert r.exit_code == 0 and "1 passed" in r.stdout_tail, r.stderr_tail


def test_a_descriptor_cannot_be_passed_and_the_reason_says_so(
    sandbox: DockerSandbox, ws: Path
) -> None:
    with pytest.raises(SandboxStartError, match="cannot pass file descriptors"):
        sandbox.run(ws, [PY, "-c", "pass"], SandboxConfig(), pass_fds=[0])


def test_containers_are_removed_after_each_run(sandbox: DockerSandbox, ws: Path) -> None:
    run(sandbox, ws, "print(1)")
    left = sandbox.client().containers.list(all=True, filters={"label": "patchsmith.sandbox"})
    assert left == []


def test_an_instance_is_repaired_and_verified_in_containers(
    engine: dockerd.PrivateDockerd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from patchsmith.config import Campaign
    from patchsmith.domain import OutcomeStatus
    from patchsmith.tasks.campaign import open_session, run_instance

    monkeypatch.setenv("DOCKER_HOST", engine.url)
    repo = Path(__file__).resolve().parents[1] / "examples" / "invoicing"
    campaign = Campaign.model_validate(
        {
            "name": "in-docker",
            "instances": [
                {
                    "id": "invoicing-bulk-discount-threshold",
                    "repo": str(repo),
                    "test_cmd": "python -m pytest -q tests/test_discounts.py",
                }
            ],
            "sandbox": {"backend": "docker"},
            "tiers": [{"kind": "search"}],
        }
    )
    session = open_session(
        campaign, home=tmp_path / "home", out_dir=tmp_path / "out", tracking=False
    )
    started = time.time()
    outcome = run_instance(session, campaign.instances[0])
    assert outcome.status == OutcomeStatus.resolved, outcome.reasons
    assert any("verified on a fresh workspace" in r for r in outcome.reasons)
    (attempt,) = session.store.attempts_for_run(
        session.store.instance_runs(session.campaign_id)[0]["id"]
    )
    assert attempt.report is not None and attempt.report.runner == "cold"  # no warm session
    since = int(started)
    made = DockerSandbox(engine.url).client().events(
        since=since, until=int(time.time()) + 1, decode=True,
        filters={"type": "container", "event": "create"},
    )  # fmt: skip
    assert sum(1 for _ in made) >= 3  # baseline, the candidate, its verification: containers
