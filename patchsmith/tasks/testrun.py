"""Run a test command in a sandbox and turn what it did into a TestReport.

pytest commands get a JUnit report (per-test outcomes) and, on request, per-test line
coverage; every other command is one outcome keyed by the command itself, from its exit
code. Outputs are written inside the workspace (``<workspace>/.patchsmith/``): sandboxes see
the workspace at the same absolute path, but not the host's /tmp.

Selection: when ``select`` is given, the positional path arguments of the user's command
(``tests/test_x.py``) are *replaced* by the node ids, because pytest would otherwise run
the union of both. Options of the command (``-q``, ``-k expr``) are kept.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from patchsmith.domain import SandboxConfig, TestOutcome, TestReport
from patchsmith.infra.sandbox import Sandbox
from patchsmith.tasks.junit import parse_junit

REPORT_DIR = ".patchsmith"
JUNIT_FILE = "junit.xml"
COVERAGE_FILE = "coverage.sqlite"

_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SHELL_OPS = {"&&", "||", "|", ";", ">", "<", ">>", "2>&1"}
# pytest options whose value is the next word; the word after them is not a path.
_VALUE_OPTS = {
    *("-k", "-m", "-p", "-o", "-c", "-n", "-W", "-r", "--tb", "--rootdir", "--ignore"),
    *("--ignore-glob", "--deselect", "--maxfail", "--durations", "--confcutdir"),
    *("--basetemp", "--cov", "--cov-report", "--cov-config", "--cov-context", "--junitxml"),
    *("--junit-prefix", "--log-level", "--import-mode", "--override-ini", "--capture"),
    *("--dist", "--numprocesses", "--timeout", "--reruns", "--durations-min", "--config-file"),
}


def split_command(test_cmd: str) -> tuple[dict[str, str], list[str]]:
    """Split ``VAR=value ... cmd args`` into (env assignments, argv)."""
    words = shlex.split(test_cmd)
    env: dict[str, str] = {}
    while words and _ASSIGN.match(words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    return env, words


def _pytest_index(argv: Sequence[str]) -> int | None:
    """Index of the word after which pytest's own arguments start, or None."""
    if not argv:
        return None
    if os.path.basename(argv[0]) in ("pytest", "py.test"):
        return 0
    if re.fullmatch(r"python[0-9.]*", os.path.basename(argv[0])):
        for i, word in enumerate(argv[1:-1], start=1):
            if word == "-m" and argv[i + 1] == "pytest":
                return i + 1
    return None


def is_pytest(test_cmd: str) -> bool:
    """True when the command runs pytest (``pytest ...`` or ``python -m pytest ...``)."""
    _, argv = split_command(test_cmd)
    return _pytest_index(argv) is not None and not _SHELL_OPS.intersection(argv)


def command_env(test_cmd: str, *, report_dir: str, coverage: bool = False) -> dict[str, str]:
    """Environment for a test run: the command's assignments, plus COVERAGE_FILE."""
    env, _ = split_command(test_cmd)
    if coverage:
        env["COVERAGE_FILE"] = f"{report_dir}/{COVERAGE_FILE}"
    return env


def _strip_positionals(args: list[str]) -> list[str]:
    kept: list[str] = []
    for i, word in enumerate(args):
        is_value = i > 0 and args[i - 1] in _VALUE_OPTS
        if word.startswith("-") or is_value or word.isdigit():
            kept.append(word)
    return kept


def pytest_argv(
    test_cmd: str,
    *,
    report_dir: str,
    select: Sequence[str] = (),
    deselect: Sequence[str] = (),
    stop_first: bool = False,
    coverage: bool = False,
) -> list[str]:
    """argv for a pytest run that writes ``<report_dir>/junit.xml`` (xunit1).

    ``select`` replaces the command's positional paths; ``coverage`` adds per-test line
    coverage (pytest-cov contexts), written to the file named by :func:`command_env`.
    """
    _, argv = split_command(test_cmd)
    idx = _pytest_index(argv)
    if idx is None:
        raise ValueError(f"not a pytest command: {test_cmd!r}")
    head, args = argv[: idx + 1], argv[idx + 1 :]
    if select:
        args = [*_strip_positionals(args), *select]
    extra = [
        f"--junitxml={report_dir}/{JUNIT_FILE}",
        "-o",
        "junit_family=xunit1",
        "-p",
        "no:cacheprovider",
        "--continue-on-collection-errors",
    ]
    if stop_first:
        extra.append("-x")
    for nodeid in deselect:
        extra += ["--deselect", nodeid]
    if coverage:
        # `-p pytest_cov` keeps coverage working when PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 (it is a
        # no-op when the plugin was autoloaded already).
        extra += ["-p", "pytest_cov", "--cov=.", "--cov-context=test", "--cov-report="]
    return [*head, *extra, *args]


REPORT_LIMIT = 64 * 1024 * 1024
"""Report files larger than this are ignored (tested code could write gigabytes)."""


def prepare_report_dir(workspace: Path) -> Path:
    """A fresh, empty ``<workspace>/.patchsmith`` writable by the sandbox uid.

    The tested code owns the workspace and may have replaced ``.patchsmith`` with a symlink
    (to /etc, say) during an earlier run. We run as root, so nothing here may follow a link:
    whatever is there is removed without following it and a new directory is made. Between
    runs no tested process is alive (bwrap's PID namespace died), so this check cannot race.
    """
    out = workspace / REPORT_DIR
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(out)  # does not follow symlinks inside
        else:
            out.unlink()
    os.mkdir(out)
    os.chmod(out, 0o777, follow_symlinks=False)
    return out


def report_file(out: Path, name: str) -> Path | None:
    """A report the tests wrote, or None if missing, too large, or not a plain file in a
    real directory (i.e. tampered with by the tested code)."""
    try:
        if not stat.S_ISDIR(os.lstat(out).st_mode):
            return None
        st = os.lstat(out / name)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > REPORT_LIMIT:
        return None
    return out / name


def read_report(out: Path, name: str) -> str:
    """Text of a report file (see :func:`report_file`), "" when there is none to trust."""
    path = report_file(out, name)
    if path is None:
        return ""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        return fh.read(REPORT_LIMIT).decode(errors="replace")


def _log(stdout: str, stderr: str) -> str:
    return "\n".join(part for part in (stdout, stderr) if part)


def run_tests(
    sandbox: Sandbox,
    workspace: Path,
    test_cmd: str,
    config: SandboxConfig,
    *,
    select: Sequence[str] = (),
    deselect: Sequence[str] = (),
    stop_first: bool = False,
    coverage: bool = False,
) -> TestReport:
    """Run the tests once; SandboxStartError propagates (an infra fault, retried)."""
    out = prepare_report_dir(workspace)
    env = command_env(test_cmd, report_dir=str(out), coverage=coverage)
    if is_pytest(test_cmd):
        argv = pytest_argv(
            test_cmd,
            report_dir=str(out),
            select=select,
            deselect=deselect,
            stop_first=stop_first,
            coverage=coverage,
        )
    else:
        _, words = split_command(test_cmd)
        argv = ["sh", "-c", test_cmd] if _SHELL_OPS.intersection(words) else words
    result = sandbox.run(workspace, argv, config, env)
    if is_pytest(test_cmd):
        outcomes = parse_junit(read_report(out, JUNIT_FILE))
    else:
        outcome = TestOutcome.passed if result.ok else TestOutcome.failed
        outcomes = {test_cmd: outcome}
    return TestReport(
        outcomes=outcomes,
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        timed_out=result.timed_out,
        limit_hit=result.limit_hit,
        log_tail=_log(result.stdout_tail, result.stderr_tail),
    )


def target_outcome(outcomes: Mapping[str, TestOutcome], target: str) -> TestOutcome | None:
    """Outcome of a target; a file-level target (a collection error) aggregates its tests.

    Once a broken test module imports again, its tests report under their own node ids:
    the file passes when at least one of them passed and none failed or errored.
    """
    if target in outcomes or "::" in target:
        return outcomes.get(target)
    children = [o for k, o in outcomes.items() if k.startswith(target + "::")]
    if not children:
        return None
    for bad in (TestOutcome.error, TestOutcome.failed):
        if bad in children:
            return bad
    return TestOutcome.passed if TestOutcome.passed in children else TestOutcome.skipped


def _with_targets(report: TestReport, targets: Sequence[str]) -> TestReport:
    extra = {
        t: o
        for t in targets
        if t not in report.outcomes and (o := target_outcome(report.outcomes, t)) is not None
    }
    return report.model_copy(update={"outcomes": {**report.outcomes, **extra}})


def staged_run(
    sandbox: Sandbox,
    workspace: Path,
    test_cmd: str,
    config: SandboxConfig,
    targets: list[str],
) -> TestReport:
    """Run ``targets`` first (stop at the first failure); only if all pass, run the rest.

    A target that fails, errors, is skipped or is missing stops the run: the report has
    ``stopped_early=True`` and only the targets' outcomes. Otherwise the two stages merge.
    File-level targets (collection errors) also get an aggregate outcome under their key.
    """
    if not targets or not is_pytest(test_cmd):
        return run_tests(sandbox, workspace, test_cmd, config)
    first = run_tests(sandbox, workspace, test_cmd, config, select=targets, stop_first=True)
    first = _with_targets(first, targets)
    if first.timed_out or any(first.outcomes.get(t) != TestOutcome.passed for t in targets):
        return first.model_copy(update={"stopped_early": True})
    rest = run_tests(sandbox, workspace, test_cmd, config, deselect=targets)
    exit_code = rest.exit_code
    if exit_code == 5 and not rest.outcomes:  # "no tests collected": the targets were all
        exit_code = first.exit_code
    return TestReport(
        outcomes={**first.outcomes, **rest.outcomes},
        exit_code=exit_code,
        duration_s=first.duration_s + rest.duration_s,
        timed_out=rest.timed_out,
        limit_hit=rest.limit_hit,
        log_tail=_log(first.log_tail, rest.log_tail),
    )
