"""Small real projects with planted bugs, written into a temp dir for pipeline tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from patchsmith.domain import ExecResult, SandboxConfig, TestOutcome
from patchsmith.errors import SandboxStartError
from patchsmith.infra.sandbox import Sandbox
from patchsmith.tasks.testing.warm import WarmRunner

HAVE_BWRAP = shutil.which("bwrap") is not None
# Outside CI a machine without bubblewrap skips the sandbox tests; with CI=true conftest.py
# stops the session at its start instead, so they never skip there.
needs_bwrap = pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap (bwrap) is not installed")

PYPROJECT = '[tool.pytest.ini_options]\npythonpath = ["."]\n'

STATS = '''"""Descriptive statistics for small samples."""


def mean(values: list[float]) -> float:
    """Arithmetic mean; raises ValueError on an empty sample."""
    if not values:
        raise ValueError("mean of an empty sample")
    return sum(values) / len(values)


def clamp(value: float, low: float, high: float) -> float:
    """Limit value to the closed interval [low, high]."""
    if value < low:
        return low
    if value > high:
        return high
    return value


def window_sums(values: list[int], size: int) -> list[int]:
    """Sums of every run of `size` consecutive values."""
    return [sum(values[i : i + size]) for i in range(len(values) - size)]


def describe(values: list[float]) -> str:
    """A one-line human summary of a sample."""
    return f"n={len(values)} mean={mean(values):.2f}"
'''

TEST_WINDOWS = """from stats import mean, window_sums


def test_window_sums_cover_the_last_window():
    assert window_sums([1, 2, 3, 4], 2) == [3, 5, 7]


def test_window_of_full_length():
    assert window_sums([1, 2, 3], 3) == [6]


def test_mean_is_unaffected():
    assert mean([1, 2, 3]) == 2
"""

TEST_DESCRIBE = """from stats import clamp, describe


def test_describe_reports_median():
    assert describe([1, 2, 10]) == "n=3 mean=4.33 median=2"


def test_clamp_keeps_inner_values():
    assert clamp(5, 0, 10) == 5
"""


def make_stats_project(root: Path) -> Path:
    """A project with one mutation-fixable bug (window_sums) and one that is not (describe)."""
    project = root / "stats"
    (project / "tests").mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "stats.py").write_text(STATS)
    (project / "tests" / "test_windows.py").write_text(TEST_WINDOWS)
    (project / "tests" / "test_describe.py").write_text(TEST_DESCRIBE)
    return project


def write_campaign(root: Path, name: str = "pipeline", **overrides: object) -> Path:
    """A campaign over the stats project: one fixable and one unfixable instance."""
    data: dict[str, object] = {
        "name": name,
        "instances": [
            {
                "id": "stats-window",
                "repo": "stats",
                "test_cmd": "python -m pytest -q tests/test_windows.py",
            },
            {
                "id": "stats-describe",
                "repo": "stats",
                "test_cmd": "python -m pytest -q tests/test_describe.py",
            },
        ],
        "sandbox": {"timeout_s": 60, "env": {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}},
        "budget": {"max_attempts": 6, "max_wall_s": 120},
        "concurrency": 2,
    }
    data.update(overrides)
    path = root / "campaign.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def patch_passes_tests(project: Path, patch: str, test_file: str, tmp: Path) -> bool:
    """Apply a patch by hand to a clean copy (git apply) and run the test file there."""
    clean = tmp / "clean-copy"
    subprocess.run(["cp", "-a", str(project), str(clean)], check=True)
    (clean / "fix.diff").write_text(patch)
    subprocess.run(["git", "apply", "fix.diff"], cwd=clean, check=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file],
        cwd=clean,
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


class RecordingSandbox:
    """A real sandbox that keeps every call's argv and result, to see what ran."""

    def __init__(self, inner: Sandbox) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[tuple[list[str], ExecResult]] = []

    def run(
        self,
        workspace: Path,
        argv: Sequence[str],
        config: SandboxConfig,
        env: Mapping[str, str] | None = None,
        *,
        pass_fds: Sequence[int] = (),
    ) -> ExecResult:
        result = self.inner.run(workspace, argv, config, env, pass_fds=pass_fds)
        self.calls.append((list(argv), result))
        return result


class BrokenSandbox:
    """A sandbox whose start always fails, as an infrastructure fault would."""

    name = "broken"

    def run(
        self,
        workspace: Path,
        argv: Sequence[str],
        config: SandboxConfig,
        env: Mapping[str, str] | None = None,
        *,
        pass_fds: Sequence[int] = (),
    ) -> ExecResult:
        raise SandboxStartError("bwrap: cannot create namespace")


def git(repo: Path, *args: str) -> str:
    """Run git in a test repository (as the test user, with a throwaway identity)."""
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@contextmanager
def loopback_listener() -> Iterator[tuple[socket.socket, int]]:
    """A TCP listener on 127.0.0.1 (the only address tests ever connect to) and its port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener, listener.getsockname()[1]


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


# Candidate bodies that attack a warm session, with the verdict each must get (None: any
# verdict but "passed"). Both warm runners (pytest and plain scripts) face the same table.
HOSTILE_CANDIDATES: dict[str, tuple[str, TestOutcome | None]] = {
    "exit": ("import os\nos._exit(0)", TestOutcome.error),
    "abort": ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", TestOutcome.error),
    "loop": ("while True:\n    pass", TestOutcome.timeout),
    "sigalrm-ignored": (
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass",
        TestOutcome.timeout,
    ),
    "modules": ("import sys\nsys.modules.clear()\nraise SystemExit(3)", TestOutcome.error),
    "forkbomb": (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        TestOutcome.timeout,
    ),
    "stdin-hog": ("import sys\nsys.stdin.read()\nraise SystemExit(1)", None),
}


def escape_attempt(pristine: Path) -> tuple[list[Path], str]:
    """Files a candidate must not be able to create, and code that tries to create each."""
    name = f"warm-escape-{uuid.uuid4().hex}"
    dirs = ["/etc", "/root", "/tmp", "/var/tmp", str(pristine), str(Path.home())]
    paths = [Path(d) / name for d in dirs]
    code = "\n".join(
        f"try:\n    open({str(p)!r}, 'w').write('x')\nexcept OSError:\n    pass" for p in paths
    )
    return paths, code


def check_survives_hostile(
    runner: WarmRunner,
    hostile: Mapping[str, str],
    fixed: Mapping[str, str],
    target: str,
    config: SandboxConfig,
    expected: TestOutcome | None,
) -> None:
    """A hostile candidate gets ``expected`` (never "passed"), and the same session, with no
    restart, then judges a real fix correctly."""
    limits = config.model_copy(update={"timeout_s": 8, "max_procs": 64})
    report = runner.run(dict(hostile), [target], limits)
    assert report is not None and report.runner == "warm"
    if expected is not None:
        assert report.outcomes[target] == expected, report.log_tail
    assert report.outcomes.get(target) != TestOutcome.passed
    again = runner.run(dict(fixed), [target], config)
    assert again is not None and again.outcomes[target] == TestOutcome.passed, again.log_tail
    assert runner.starts == 1


def run_spans(tracking_uri: str, experiment: str, mlflow_run_id: str) -> list[Any]:
    """Every span of the traces MLflow keeps for one run of ``experiment``."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    traces = client.search_traces(
        locations=[exp.experiment_id],
        filter_string=f"metadata.mlflow.sourceRun = '{mlflow_run_id}'",
    )
    return [span for trace in traces for span in trace.data.spans]
