"""make_plan on tiny real projects: targets, guards, flaky tests and localization."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import coverage
import pytest
from helpers import BrokenSandbox, needs_bwrap

from patchsmith.domain import Instance, SandboxConfig
from patchsmith.errors import SandboxStartError
from patchsmith.infra.sandbox import Sandbox, get_sandbox
from patchsmith.tasks.planning import make_plan

pytestmark = pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning")

CONFIG = SandboxConfig(timeout_s=60)

CALC = """\
def add(a, b):
    return a + b


def clamp(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return lo
    return x


def last(xs):
    return xs[len(xs)]


def mean(xs):
    return sum(xs) / len(xs)
"""

CALC_TESTS = """\
from calc import add, clamp, mean


def test_add():
    assert add(1, 2) == 3


def test_clamp_low():
    assert clamp(-5, 0, 10) == 0


def test_clamp_mid():
    assert clamp(5, 0, 10) == 5


def test_clamp_high():
    assert clamp(50, 0, 10) == 10


def test_mean():
    assert mean([1, 2, 3]) == 2
"""


def make_workspace(root: Path, files: Mapping[str, str]) -> Path:
    """Write a project; everything world-writable, as the sandbox may run as another uid."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for dirpath, _, filenames in os.walk(root):
        Path(dirpath).chmod(0o777)
        for f in filenames:
            (Path(dirpath) / f).chmod(0o666)
    return root


def instance(**kw: object) -> Instance:
    return Instance.model_validate({"id": "demo", "repo": ".", **kw})


@pytest.fixture(params=["subprocess", pytest.param("bwrap", marks=needs_bwrap)])
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    return get_sandbox(request.param)


def test_wrong_value_bug_ranks_first(tmp_path: Path, sandbox: Sandbox) -> None:
    ws = make_workspace(tmp_path, {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS})
    plan = make_plan(instance(), sandbox, ws, CONFIG, "t0")
    assert plan.fail_to_pass == ["tests/test_calc.py::test_clamp_high"]
    assert len(plan.pass_to_pass) == 4 and plan.flaky == []
    top = plan.suspicious[0]
    assert (top.path, top.line, top.sources) == ("calc.py", 9, ["ochiai", "callee"])
    assert all(not s.path.startswith("tests/") for s in plan.suspicious)
    assert plan.tier == "t0"
    assert [n for n in plan.notes if not n.startswith("localization: ")] == []
    assert plan.localization.startswith("per-test spectra (Ochiai) over 1 failing and 4 passing")
    assert "callees (clamp)" in plan.localization


def test_raising_bug_gets_traceback_evidence(tmp_path: Path) -> None:
    tests = (
        CALC_TESTS
        + "\n\ndef test_last():\n    from calc import last\n\n    assert last([1, 2]) == 2\n"
    )
    calc = CALC.replace("        return lo\n    return x", "        return hi\n    return x")
    ws = make_workspace(tmp_path, {"calc.py": calc, "tests/test_calc.py": tests})
    plan = make_plan(instance(), get_sandbox("subprocess"), ws, CONFIG, "t0")
    assert plan.fail_to_pass == ["tests/test_calc.py::test_last"]
    top = plan.suspicious[0]
    assert (top.path, top.line) == ("calc.py", 14)
    assert top.sources == ["ochiai", "traceback", "callee"]


def test_flaky_test_is_neither_target_nor_guard(tmp_path: Path, sandbox: Sandbox) -> None:
    flaky = (
        "from pathlib import Path\n\n\n"
        "def test_sometimes():\n"
        "    counter = Path('counter.txt')\n"
        "    n = int(counter.read_text()) + 1\n"
        "    counter.write_text(str(n))\n"
        "    assert n % 2 == 0\n"
    )
    files = {
        "calc.py": CALC,
        "tests/test_calc.py": CALC_TESTS,
        "tests/test_flaky.py": flaky,
        "counter.txt": "0",
    }
    ws = make_workspace(tmp_path, files)
    plan = make_plan(instance(), sandbox, ws, CONFIG, "t0")
    assert plan.flaky == ["tests/test_flaky.py::test_sometimes"]
    assert plan.fail_to_pass == ["tests/test_calc.py::test_clamp_high"]
    assert "tests/test_flaky.py::test_sometimes" not in plan.pass_to_pass
    assert (ws / "counter.txt").read_text() == "2"  # baseline and re-run both ran it
    assert any("flaky" in n for n in plan.notes)
    assert plan.suspicious[0].line == 9


def test_collection_error_is_a_target(tmp_path: Path, sandbox: Sandbox) -> None:
    files = {
        "good.py": "def one():\n    return 1\n",
        "bad.py": "def two():\n    return 2\n\ndef three(:\n    return 3\n",
        "tests/test_good.py": "from good import one\n\n\ndef test_one():\n    assert one() == 1\n",
        "tests/test_bad.py": "from bad import two\n\n\ndef test_two():\n    assert two() == 2\n",
    }
    ws = make_workspace(tmp_path, files)
    plan = make_plan(instance(), sandbox, ws, CONFIG, "t0")
    assert plan.fail_to_pass == ["tests/test_bad.py"]
    assert plan.pass_to_pass == ["tests/test_good.py::test_one"]
    assert [(s.path, s.line, s.sources) for s in plan.suspicious[:1]] == [
        ("bad.py", 4, ["traceback"])
    ]


def test_non_pytest_command(tmp_path: Path) -> None:
    files = {
        "calc.py": CALC,
        "check.py": "from calc import add, last\n\nassert add(1, 1) == 2\nprint(last([1, 2]))\n",
    }
    ws = make_workspace(tmp_path, files)
    plan = make_plan(
        instance(test_cmd="python check.py"), get_sandbox("subprocess"), ws, CONFIG, "t"
    )
    assert plan.fail_to_pass == ["python check.py"]
    assert plan.baseline.exit_code == 1
    assert any("not pytest" in n for n in plan.notes)
    # the script the command runs is the test: never a place to mutate
    assert [s.path for s in plan.suspicious] == ["calc.py"] * len(plan.suspicious)
    top = plan.suspicious[0]
    assert (top.path, top.line, top.sources) == ("calc.py", 14, ["executed", "traceback", "callee"])
    # coverage of the command's Python process: the lines it ran of calc.py, only those
    ran = plan.executed["calc.py"]
    assert 14 in ran and set(ran) < set(range(1, CALC.count("\n") + 1))
    assert {(s.path, s.line) for s in plan.suspicious} == {("calc.py", n) for n in ran}
    assert plan.localization.startswith("lines the failing command ran")


def _venv_without_coverage_startup(root: Path) -> Path:
    """A venv that can import coverage (patchsmith's, as a plain path entry) but never
    processes coverage's own start-up ``.pth``: only patchsmith's hook can start it."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "tools.pth").write_text(str(Path(coverage.__file__).resolve().parent.parent) + "\n")
    return venv


def test_plain_script_coverage_comes_from_the_hook_in_every_process(tmp_path: Path) -> None:
    venv = _venv_without_coverage_startup(tmp_path)
    files = {
        "calc.py": CALC,
        # the failing call runs in a child process the script starts
        "check.py": "import subprocess, sys\n"
        "sys.exit(subprocess.run([sys.executable, 'inner.py']).returncode)\n",
        "inner.py": "from calc import add, last\n\nassert add(1, 1) == 2\nprint(last([1, 2]))\n",
    }
    ws = make_workspace(tmp_path / "ws", files)
    cmd = f"{venv}/bin/python check.py"
    plan = make_plan(instance(test_cmd=cmd), get_sandbox("subprocess"), ws, CONFIG, "t")
    assert plan.fail_to_pass == [cmd]
    assert 14 in plan.executed.get("calc.py", []), (plan.executed, plan.notes)
    assert 18 not in plan.executed["calc.py"]  # mean() never ran
    assert plan.localization.startswith("lines the failing command ran")


def test_plain_script_lines_need_no_coverage_package(tmp_path: Path) -> None:
    """The hook's own line tracer: an interpreter that cannot import coverage.py still
    says which lines the failing command ran."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    probe = subprocess.run([f"{venv}/bin/python", "-c", "import coverage"], capture_output=True)
    assert probe.returncode != 0, "the bare venv must not see coverage.py"
    files = {
        "calc.py": CALC,
        "check.py": "from calc import add, last\n\nassert add(1, 1) == 2\nprint(last([1, 2]))\n",
    }
    ws = make_workspace(tmp_path / "ws", files)
    cmd = f"{venv}/bin/python check.py"
    plan = make_plan(instance(test_cmd=cmd), get_sandbox("subprocess"), ws, CONFIG, "t")
    # the defs (run at import) and the bodies of add() and last(), as coverage.py counts them
    assert plan.executed.get("calc.py") == [1, 2, 5, 13, 14, 17], (plan.executed, plan.notes)
    assert plan.localization.startswith("lines the failing command ran")


def test_a_long_running_command_hands_its_lines_over_to_coverage(tmp_path: Path) -> None:
    """Past PATCHSMITH_LINES_SWITCH_S (here at once), coverage.py's C tracer measures the
    rest of the process, and its data joins the tracer's."""
    venv = _venv_without_coverage_startup(tmp_path)
    files = {
        "calc.py": CALC,
        "check.py": "import sys\nfrom calc import add, last\n\n"
        "print('tracing with', type(sys.gettrace()).__name__)\n"
        "assert add(1, 1) == 2\nprint(last([1, 2]))\n",
    }
    ws = make_workspace(tmp_path / "ws", files)
    cmd = f"PATCHSMITH_LINES_SWITCH_S=0 {venv}/bin/python check.py"
    plan = make_plan(instance(test_cmd=cmd), get_sandbox("subprocess"), ws, CONFIG, "t")
    assert "tracing with CTracer" in plan.baseline.log_tail, plan.baseline.log_tail
    assert 14 in plan.executed.get("calc.py", []), (plan.executed, plan.notes)
    assert 18 not in plan.executed["calc.py"]  # mean() never ran


def test_a_baseline_over_the_output_limit_keeps_its_outcomes(tmp_path: Path) -> None:
    loud = (
        "from calc import clamp\n\n\ndef test_loud_clamp():\n"
        "    for i in range(20000):\n        print('x' * 100)\n"
        "    assert clamp(12, 0, 10) == 10\n"
    )
    ws = make_workspace(
        tmp_path, {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS, "tests/test_loud.py": loud}
    )
    small = SandboxConfig(timeout_s=60, output_kb=16)  # 2 MB printed, 16 kB kept
    plan = make_plan(instance(), get_sandbox("subprocess"), ws, small, "t0")
    assert plan.baseline.limit_hit == "output"
    assert plan.fail_to_pass == [
        "tests/test_calc.py::test_clamp_high",
        "tests/test_loud.py::test_loud_clamp",
    ]
    assert len(plan.pass_to_pass) == 4
    assert any("its log is truncated, its outcomes" in n for n in plan.notes), plan.notes
    assert (plan.suspicious[0].path, plan.suspicious[0].line) == ("calc.py", 9)


def test_green_baseline_and_given_lists(tmp_path: Path) -> None:
    calc = CALC.replace("        return lo\n    return x", "        return hi\n    return x")
    ws = make_workspace(tmp_path, {"calc.py": calc, "tests/test_calc.py": CALC_TESTS})
    green = make_plan(instance(), get_sandbox("subprocess"), ws, CONFIG, "t0")
    assert green.fail_to_pass == [] and green.suspicious == []
    assert "baseline has no failing tests: nothing to repair" in green.notes

    given = instance(
        fail_to_pass=["tests/test_calc.py::test_clamp_high"],
        pass_to_pass=["tests/test_calc.py::test_add"],
    )
    plan = make_plan(given, get_sandbox("subprocess"), ws, CONFIG, "t0")
    assert plan.fail_to_pass == []  # it passes already: not a target
    assert plan.pass_to_pass == ["tests/test_calc.py::test_add"]
    assert any("already pass in the baseline" in n for n in plan.notes)


def test_baseline_timeout_is_noted(tmp_path: Path) -> None:
    slow = "import time\n\ntime.sleep(30)  # at collection: no test to blame\n"
    ws = make_workspace(tmp_path, {"tests/test_slow.py": slow})
    plan = make_plan(instance(), get_sandbox("subprocess"), ws, SandboxConfig(timeout_s=2), "t0")
    assert plan.baseline.timed_out
    assert "baseline timed out: its outcomes are incomplete" in plan.notes


def test_sandbox_start_error_propagates(tmp_path: Path) -> None:
    with pytest.raises(SandboxStartError):
        make_plan(instance(), BrokenSandbox(), tmp_path, CONFIG, "t0")


@pytest.mark.parametrize("how", ["garbage", "symlink"])
def test_tampered_coverage_is_noted_and_tracebacks_still_localize(
    tmp_path: Path, sandbox: Sandbox, how: str
) -> None:
    """The tested code replaces its coverage file after pytest-cov wrote it (atexit)."""
    act = {
        "garbage": "open(path, 'wb').write(b'SQLite format 3\\0' + b'x' * 4096)",
        "symlink": "os.remove(path); os.symlink('/etc/passwd', path)",
    }[how]
    conftest = (
        "import atexit\nimport os\n\n\ndef _tamper():\n"
        "    path = os.environ.get('COVERAGE_FILE')\n"
        f"    if path and os.path.exists(path):\n        {act}\n\n\n"
        "atexit.register(_tamper)\n"
    )
    tests = (
        CALC_TESTS
        + "\n\ndef test_last():\n    from calc import last\n\n    assert last([1]) == 1\n"
    )
    calc = CALC.replace("        return lo\n    return x", "        return hi\n    return x")
    files = {"calc.py": calc, "tests/test_calc.py": tests, "conftest.py": conftest}
    ws = make_workspace(tmp_path, files)
    plan = make_plan(instance(), sandbox, ws, CONFIG, "t0")
    assert plan.fail_to_pass == ["tests/test_calc.py::test_last"]
    assert any(n.startswith("coverage data unusable") for n in plan.notes), plan.notes
    assert (plan.suspicious[0].path, plan.suspicious[0].line) == ("calc.py", 14)
    assert plan.suspicious[0].sources == ["traceback", "callee"]


def test_given_fail_to_pass_only_failing_ones_are_targets(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS})
    given = instance(
        fail_to_pass=[
            "tests/test_calc.py::test_clamp_high",  # fails: a target
            "tests/test_calc.py::test_add",  # passes already: noted, not a target
            "tests/test_calc.py::test_new",  # not in the baseline: noted, kept
        ]
    )
    plan = make_plan(given, get_sandbox("subprocess"), ws, CONFIG, "t0")
    assert plan.fail_to_pass == [
        "tests/test_calc.py::test_clamp_high",
        "tests/test_calc.py::test_new",
    ]
    assert "tests/test_calc.py::test_add" in plan.pass_to_pass
    assert any("already pass" in n and "test_add" in n for n in plan.notes)
    assert any("not found in the baseline" in n and "test_new" in n for n in plan.notes)
