"""Per-repository environments: real builds with uv in the real bwrap sandbox, offline.

The only address anything here contacts is a listener this test starts on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import uv
import yaml
from helpers import HAVE_BWRAP, make_stats_project
from typer.testing import CliRunner

from patchsmith.cli_env import env_app
from patchsmith.config import load_campaign
from patchsmith.domain import (
    Attempt,
    Environment,
    Instance,
    Outcome,
    OutcomeStatus,
    SandboxConfig,
)
from patchsmith.errors import ConfigError
from patchsmith.infra.envs import EnvError, Environments, ResolvedEnv
from patchsmith.infra.envs_build import WORKSPACE_PTH
from patchsmith.infra.envs_store import harden
from patchsmith.infra.envs_types import MARKER
from patchsmith.infra.sandbox.bwrap import BwrapSandbox
from patchsmith.infra.sandbox.limits import sandbox_path
from patchsmith.infra.workspace import WorkspaceManager
from patchsmith.tasks.campaign import close_session, open_session, run_instance, work_key
from patchsmith.tasks.repair import DIRECT, pristine_tree

pytestmark = pytest.mark.skipif(
    not HAVE_BWRAP or os.geteuid() != 0,
    reason="environment builds are tested in the bwrap sandbox, as root (the worker's case)",
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONFIG = SandboxConfig(timeout_s=60)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """unitreg's wheel, built offline from the example's vendored source (a copy)."""
    tmp = tmp_path_factory.mktemp("wheels")
    src = tmp / "src"
    shutil.copytree(EXAMPLES / "unitconv" / "vendor" / "unitreg", src)
    out = tmp / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", str(src), "-w", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


@pytest.fixture
def unitconv(tmp_path: Path) -> Path:
    project = tmp_path / "unitconv"
    shutil.copytree(EXAMPLES / "unitconv", project, ignore=shutil.ignore_patterns("vendor"))
    return project


@pytest.fixture
def envs(home: Path) -> Environments:
    return fresh(home)


def fresh(home: Path) -> Environments:
    """A new resolver (no in-process memory) over the same data directory."""
    return Environments(home / "envs", BwrapSandbox(), WorkspaceManager(home / "workspaces"))


def resolve(
    envs: Environments, env: Environment, repo: Path, base: SandboxConfig = CONFIG
) -> ResolvedEnv:
    inst = Instance(instance_id="x", repo=str(repo))
    pristine = pristine_tree(envs.workspaces, inst)
    return envs.resolve(env, base, repo=str(repo), pristine=pristine, label="t/x")


def run_in(envs: Environments, repo: Path, config: SandboxConfig, *argv: str) -> tuple[int, str]:
    pristine = pristine_tree(envs.workspaces, Instance(instance_id="x", repo=str(repo)))
    with envs.workspaces.attempt(pristine) as ws:
        r = envs.sandbox.run(ws, list(argv), config)
    return r.exit_code or 0, r.stdout_tail + r.stderr_tail


def host_venv(path: Path) -> Path:
    subprocess.run(
        [uv.find_uv_bin(), "venv", "-q", "--python", sys.executable, str(path)],
        check=True, capture_output=True, env={**os.environ, "UV_NO_CONFIG": "1"},
    )  # fmt: skip
    return path


def offline(wheels: Path, **kw: object) -> Environment:
    return Environment(install=["-r", "requirements.txt"], find_links=[str(wheels)], **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ default and python


def test_default_env_stops_plugin_autoload_unless_the_campaign_sets_it(
    envs: Environments, tmp_path: Path
) -> None:
    repo = make_stats_project(tmp_path)
    default = resolve(envs, Environment(), repo)
    assert default.kind == "default" and not default.config.ro_paths
    show = "import os; print(os.environ['PYTEST_DISABLE_PLUGIN_AUTOLOAD'])"
    code, out = run_in(envs, repo, default.config, "python", "-c", show)
    assert (code, out.strip()) == (0, "1")
    own = resolve(
        envs, Environment(), repo, SandboxConfig(env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": ""})
    )
    assert own.config.env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] == ""


def test_python_env_mounts_a_venv_the_sandbox_cannot_otherwise_see(
    envs: Environments, tmp_path: Path
) -> None:
    repo = make_stats_project(tmp_path)
    venv = host_venv(tmp_path / "outside-venv")  # under the host's /tmp: hidden by the sandbox
    probe = ("python", "-c", "import sys; print(sys.prefix)")
    code, _ = run_in(envs, repo, CONFIG, str(venv / "bin" / "python"), "-c", "pass")
    assert code == 127, "without the environment the interpreter is not visible"
    resolved = resolve(envs, Environment(python=str(venv)), repo)
    assert resolved.kind == "python"
    code, out = run_in(envs, repo, resolved.config, *probe)
    assert (code, out.strip()) == (0, str(venv.resolve()))


def test_missing_python_is_a_config_error_naming_instance_and_fix(tmp_path: Path) -> None:
    make_stats_project(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: d\ninstances:\n  - id: needs-py\n    repo: stats\n"
        "    environment: {python: /opt/nowhere/bin/python}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    msg = str(err.value)
    assert "instances[0] (needs-py).environment.python" in msg and "/opt/nowhere" in msg
    assert "existing interpreter" in msg and "environment.install" in msg


def test_campaign_files_cannot_open_writes_or_the_network(tmp_path: Path) -> None:
    make_stats_project(tmp_path)
    for key, value in (("rw_paths", "[/etc]"), ("network", "true")):
        path = tmp_path / "c.yaml"
        path.write_text(
            f"name: d\ninstances:\n  - {{id: a, repo: stats}}\nsandbox: {{{key}: {value}}}\n"
        )
        with pytest.raises(ConfigError, match=rf"sandbox\.{key}: not allowed"):
            load_campaign(path)
    with pytest.raises(ConfigError, match=r"environment\.network: true"):
        load_campaign(path)


def test_environment_is_part_of_the_resume_key(tmp_path: Path, wheels: Path) -> None:
    make_stats_project(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_text("name: d\ninstances:\n  - {id: a, repo: stats}\n")
    plain = load_campaign(path)
    path.write_text(
        "name: d\ninstances:\n  - {id: a, repo: stats}\n"
        f"environment: {{install: [-r, requirements.txt], find_links: [{wheels}]}}\n"
    )
    built = load_campaign(path)
    assert plain.instance_key(plain.instances[0]) != built.instance_key(built.instances[0])
    assert built.environment_for(built.instances[0]).install == ["-r", "requirements.txt"]


# ------------------------------------------------------------------ install: build and cache


def test_install_env_is_built_once_cached_and_rebuilt_when_deps_change(
    home: Path, envs: Environments, unitconv: Path, wheels: Path
) -> None:
    first = resolve(envs, offline(wheels), unitconv)
    assert first.kind == "install" and first.built and first.path is not None
    marker = first.path / MARKER
    before = marker.stat()
    record = json.loads(marker.read_text())
    assert record["key"] == first.key and record["install"] == ["-r", "requirements.txt"]
    assert set(record["durations"]) >= {"venv", "install", "total"}
    code, out = run_in(envs, unitconv, first.config, "python", "-c",
                       "import unitreg, pytest; print(unitreg.__version__)")  # fmt: skip
    assert (code, out.strip()) == (0, "1.0.0"), out

    again = resolve(fresh(home), offline(wheels), unitconv)  # a new process, say
    assert (again.key, again.built) == (first.key, False)
    after = marker.stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)

    # The built files belong to root, not to the sandbox uid, and nobody else may write them.
    for dirpath, dirnames, filenames in os.walk(first.path):
        for name in (dirpath, *(os.path.join(dirpath, n) for n in (*dirnames, *filenames))):
            st = os.lstat(name)
            assert st.st_uid == 0, name
            assert stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o7022, name

    # A changed dependency file is a new environment; the old one stays for its users.
    (unitconv / "requirements.txt").write_text("unitreg==1.0.0\n# pinned\n")
    changed = resolve(fresh(home), offline(wheels), unitconv)
    assert changed.built and changed.key != first.key
    assert marker.exists()


def test_a_build_without_its_marker_is_removed_and_rebuilt(
    home: Path, envs: Environments, unitconv: Path, wheels: Path
) -> None:
    first = resolve(envs, offline(wheels), unitconv)
    assert first.path is not None
    (first.path / MARKER).unlink()
    (first.path / "half-written").write_text("interrupted build")
    again = resolve(fresh(home), offline(wheels), unitconv)
    assert again.built and again.key == first.key
    assert not (first.path / "half-written").exists() and (first.path / MARKER).is_file()


def test_harden_never_follows_links(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("host file")
    os.chown(victim, 65534, 65534)
    os.chmod(victim, 0o666)
    tree = tmp_path / "env"
    (tree / "bin").mkdir(parents=True)
    tool = tree / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    os.chown(tool, 65534, 65534)
    os.chmod(tool, 0o6777)
    (tree / "link").symlink_to(victim)
    harden(tree)
    assert stat.S_IMODE(tool.stat().st_mode) == 0o755 and tool.stat().st_uid == 0
    st = victim.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o666, 65534), "the link's target changed"


# ------------------------------------------------------------------ hostile builds

HOSTILE_BACKEND = r'''
"""A PEP 517 backend that attacks the host while it builds, then builds a wheel."""
import base64, hashlib, json, os, socket, sys, zipfile

def _attack():
    plan = json.load(open(os.path.join(os.path.dirname(__file__), "attack.json")))
    for target in plan["write"]:
        try:
            with open(target, "w") as fh:
                fh.write("pwned")
            print("WROTE", target, file=sys.stderr)
        except OSError as exc:
            print("blocked", target, type(exc).__name__, file=sys.stderr)
    try:
        socket.create_connection(("127.0.0.1", plan["port"]), timeout=3).close()
        print("CONNECTED", file=sys.stderr)
    except OSError as exc:
        print("blocked network", type(exc).__name__, file=sys.stderr)
    if plan["fail"]:  # uv shows a backend's output only when the build fails
        raise SystemExit("attack finished")

def _wheel(directory, files):
    dist = "hostile-0.1.dist-info"
    files = dict(files)
    files[dist + "/METADATA"] = b"Metadata-Version: 2.1\nName: hostile\nVersion: 0.1\n"
    files[dist + "/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    rows = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{name},sha256={digest},{len(data)}")
    files[dist + "/RECORD"] = ("\n".join(rows + [dist + "/RECORD,,"]) + "\n").encode()
    name = "hostile-0.1-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return name

def get_requires_for_build_wheel(config_settings=None):
    return []

get_requires_for_build_editable = get_requires_for_build_wheel

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _attack()
    source = open("src/hostile/__init__.py", "rb").read()
    return _wheel(wheel_directory, {"hostile/__init__.py": source})

def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _attack()  # like setuptools: a .pth that points at the (build) source tree
    return _wheel(wheel_directory, {"__editable__hostile.pth": (os.getcwd() + "/src\n").encode()})
'''


class Listener:
    """A TCP listener on 127.0.0.1 that counts connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


def hostile_project(
    root: Path, listener: Listener, home: Path, *, fail: bool
) -> tuple[Path, list[Path]]:
    project = root / "hostile"
    (project / "src" / "hostile").mkdir(parents=True)
    (project / "backend").mkdir()
    (project / "src" / "hostile" / "__init__.py").write_text("WHERE = 'source'\n")
    (project / "backend" / "hostile_backend.py").write_text(HOSTILE_BACKEND)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "hostile_backend"\n'
        'backend-path = ["backend"]\n'
    )
    # Host places the sandbox uid could write if they were visible to it at all.
    open_dir = home / "writable-by-the-sandbox-uid"
    open_dir.mkdir()
    for path in (project, open_dir):
        os.chown(path, 65534, 65534)
        os.chmod(path, 0o777)
    targets = [
        Path("/root") / f"patchsmith-hostile-{uuid.uuid4().hex[:8]}",
        project / "pwned",  # the source repository on the host
        home / "envs" / "pwned",  # beside the env dir it may write
        open_dir / "pwned",
    ]
    (project / "backend" / "attack.json").write_text(
        json.dumps({"write": [str(t) for t in targets], "port": listener.port, "fail": fail})
    )
    return project, targets


def snapshot(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def test_a_hostile_build_cannot_write_outside_its_env_or_reach_the_network(
    home: Path, envs: Environments, tmp_path: Path, listener: Listener
) -> None:
    project, targets = hostile_project(tmp_path, listener, home, fail=True)
    before = snapshot(project)
    with pytest.raises(EnvError) as err:
        resolve(envs, Environment(install=["-e", "."]), project)
    log = str(err.value)
    assert "WROTE" not in log and "CONNECTED" not in log, log
    assert log.count("blocked /") + log.count("blocked network") == len(targets) + 1, log
    for target in targets:
        assert not target.exists(), f"the build wrote {target}"
    assert listener.connections == 0
    assert snapshot(project) == before, "the source repository was modified"
    assert not list((home / "envs").glob("*/" + MARKER)), "a failed build leaves no env"


def test_an_editable_install_imports_each_attempts_own_code(
    home: Path, envs: Environments, tmp_path: Path, listener: Listener
) -> None:
    project, targets = hostile_project(tmp_path, listener, home, fail=False)
    resolved = resolve(envs, Environment(install=["-e", "."]), project)
    assert not any(t.exists() for t in targets) and listener.connections == 0

    # The editable install pointed at the throwaway build workspace: it is gone, and each
    # attempt's own workspace (its src/) comes first instead, even in isolated mode.
    assert resolved.path is not None
    site = next(resolved.path.glob("lib/python*/site-packages"))
    assert not list(site.glob("hostile-*.dist-info")) and not list(site.glob("__editable__*"))
    assert (site / WORKSPACE_PTH).is_file()
    assert resolved.record["removed_own"] == ["hostile"]
    pristine = pristine_tree(envs.workspaces, Instance(instance_id="x", repo=str(project)))
    with envs.workspaces.attempt(pristine) as ws:
        (ws / "src" / "hostile" / "__init__.py").write_text("WHERE = 'attempt'\n")
        r = envs.sandbox.run(ws, ["python", "-I", "-c",
                                  "import hostile; print(hostile.WHERE, hostile.__file__)"],
                             resolved.config)  # fmt: skip
    assert r.exit_code == 0, r.stderr_tail
    where, file = r.stdout_tail.split()
    assert where == "attempt" and file.startswith(str(ws)), r.stdout_tail


def test_network_reaches_the_build_only_when_the_environment_allows_it(
    home: Path, envs: Environments, tmp_path: Path, listener: Listener
) -> None:
    project, targets = hostile_project(tmp_path, listener, home, fail=True)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # an index address nobody answers on: uv never leaves 127.0.0.1
    index = f"http://127.0.0.1:{closed.getsockname()[1]}/simple"
    try:
        allowed = Environment(install=["-e", "."], network=True, index_url=index)
        with pytest.raises(EnvError) as err:
            resolve(envs, allowed, project)
    finally:
        closed.close()
    log = str(err.value)
    assert "CONNECTED" in log and listener.connections >= 1, log
    assert "WROTE" not in log and not any(t.exists() for t in targets)


# ------------------------------------------------------------------ through the campaign


def write_campaign(root: Path, instance: dict[str, object], **extra: object) -> Path:
    data = {
        "name": "envs",
        "instances": [instance],
        "sandbox": {"timeout_s": 60},
        "budget": {"max_attempts": 30, "max_wall_s": 120},
        **extra,
    }
    path = root / "campaign.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_one(home: Path, path: Path, out: Path) -> tuple[Outcome, list[Attempt], str]:
    campaign = load_campaign(path)
    session = open_session(campaign, home=home, out_dir=out, tracking=False)
    outcome = run_instance(session, campaign.instances[0], DIRECT)
    attempts = session.store.attempts_for_key(work_key(session, campaign.instances[0]))
    _, status = close_session(session, "")
    session.store.close()
    return outcome, attempts, status


def test_an_interpreter_the_sandbox_cannot_see_is_an_error_before_any_work(
    home: Path, tmp_path: Path
) -> None:
    make_stats_project(tmp_path)
    venv = host_venv(tmp_path / "proj-venv")  # exists on the host, not mounted in the sandbox
    path = write_campaign(
        tmp_path,
        {"id": "own-python", "repo": "stats",
         "test_cmd": f"{venv}/bin/python -m pytest -q tests/test_windows.py"},
    )  # fmt: skip
    outcome, attempts, status = run_one(home, path, tmp_path / "out")
    assert outcome.status == OutcomeStatus.error and outcome.attempts == 0
    assert attempts == [] and status == "failed"
    reason = outcome.reasons[-1]
    assert "own-python" in reason and f"{venv}/bin/python" in reason and "not mounted" in reason
    assert "environment.python" in reason and "environment.install" in reason


def test_a_failed_build_is_an_error_outcome_with_the_log_and_the_fix(
    home: Path, tmp_path: Path, unitconv: Path, wheels: Path
) -> None:
    (unitconv / "requirements.txt").write_text("unitreg==2.0.0\n")  # not in the wheel dir
    path = write_campaign(
        tmp_path,
        {"id": "unitconv", "repo": "unitconv", "test_cmd": "python -m pytest -q tests"},
        environment={"install": ["-r", "requirements.txt"], "find_links": [str(wheels)]},
    )
    outcome, _, status = run_one(home, path, tmp_path / "out")
    assert outcome.status == OutcomeStatus.error and outcome.attempts == 0
    reason = outcome.reasons[-1]
    assert "envs/unitconv: the environment failed to build: install exited" in reason
    assert "command: " in reason and "unitreg" in reason and "find_links" in reason
    assert status == "failed" and not list((home / "envs").glob("*/" + MARKER))

    result = CliRunner().invoke(env_app, ["build", str(path)])
    assert result.exit_code == 1 and "failed" in result.output and "unitreg" in result.output


def test_unitconv_is_repaired_in_its_own_environment_and_env_commands_work(
    home: Path, tmp_path: Path, unitconv: Path, wheels: Path
) -> None:
    path = write_campaign(
        tmp_path,
        {"id": "unitconv-offset", "repo": "unitconv",
         "test_cmd": "python -m pytest -q tests/test_convert.py",
         "environment": {"install": ["-r", "requirements.txt"], "find_links": [str(wheels)]}},
    )  # fmt: skip
    runner = CliRunner()
    first = runner.invoke(env_app, ["build", str(path)])
    assert first.exit_code == 0, first.output
    assert first.output.startswith("built ") and "1 environment(s), 0 problem(s)" in first.output
    second = runner.invoke(env_app, ["build", str(path)])
    assert second.output.startswith("cached "), second.output

    outcome, attempts, status = run_one(home, path, tmp_path / "out")
    assert outcome.status == OutcomeStatus.resolved, outcome.reasons
    assert attempts and status == "completed"
    assert outcome.patch and "(value - unit.offset)" in outcome.patch

    listed = runner.invoke(env_app, ["list"])
    key = json.loads(next((home / "envs").glob("*/" + MARKER)).read_text())["key"]
    assert key in listed.output and "envs/unitconv-offset" in listed.output
    assert runner.invoke(env_app, ["rm", key[:8]]).exit_code == 0
    assert not (home / "envs" / key).exists()
    assert runner.invoke(env_app, ["rm", "--all"]).exit_code == 0


def test_example_env_campaign_loads() -> None:
    campaign = load_campaign(EXAMPLES / "envs.yaml")
    env = campaign.environment_for(campaign.instances[0])
    assert env.install == ["-r", "requirements.txt"]
    assert env.find_links == [str(EXAMPLES / "wheels")]


# ------------------------------------------------------------------ preflight


class CountingSandbox(BwrapSandbox):
    """The real bwrap sandbox, counting its runs."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    def run(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        self.runs += 1
        return super().run(*args, **kwargs)  # type: ignore[arg-type]


def test_a_shared_interpreter_is_preflighted_once_a_repository_script_every_time(
    home: Path, tmp_path: Path
) -> None:
    """Two sandbox starts per instance were spent asking whether ``python`` starts; the
    answer holds for every instance with the same PATH and sandbox settings. A program the
    repository provides (a path, or a relative PATH entry) and a failed check are asked
    again: the next repository may differ."""
    sandbox = CountingSandbox()
    envs = Environments(home / "envs", sandbox, WorkspaceManager(home / "workspaces"))
    config = envs.resolve(Environment(), CONFIG, repo="r", pristine=tmp_path, label="t").config

    def check(
        name: str, argv: list[str], env: dict[str, str] | None = None, own: bool = False
    ) -> str | None:
        repo = make_stats_project(tmp_path / name)
        (repo / "run.sh").write_text("#!/bin/sh\nexit 0\n")
        (repo / "run.sh").chmod(0o755)
        (repo / "bin").mkdir()
        if own:  # the repository's own python, found through a relative PATH entry
            (repo / "bin" / "python").write_text("#!/bin/sh\nexit 0\n")
            (repo / "bin" / "python").chmod(0o755)
        pristine = pristine_tree(envs.workspaces, Instance(instance_id=name, repo=str(repo)))
        with envs.workspaces.attempt(pristine) as ws:
            return envs.preflight(ws, argv, config, env or {}, label=f"t/{name}")

    assert check("a", ["python", "test.py"]) is None
    first = sandbox.runs
    assert first == 2, "found on PATH, then the interpreter started once"
    assert check("b", ["python", "-m", "unittest"]) is None
    assert sandbox.runs == first, "the same interpreter, settings and PATH: not asked again"
    for name, argv in (("c", ["./run.sh"]), ("d", ["./run.sh"])):
        before = sandbox.runs
        assert check(name, argv) is None
        assert sandbox.runs > before, f"{name}: a repository script is checked every time"
    relative = {"PATH": "bin:" + sandbox_path(config.path_prepend)}
    for name, own in (("e", False), ("e2", True)):  # e finds patchsmith's python, e2 its own
        before = sandbox.runs
        assert check(name, ["python"], relative, own) is None
        assert sandbox.runs > before, f"{name}: a relative PATH entry is looked up in the repo"
    for name in ("f", "g"):
        before = sandbox.runs
        assert check(name, ["nosuchtool"]) is not None
        assert sandbox.runs > before, "a failed check is not remembered"
