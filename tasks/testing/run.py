"""Run a test command in a sandbox and turn what it did into a TestReport.

pytest commands get a JUnit report (per-test outcomes) and, on request, per-test line
coverage; every other command is one outcome keyed by the command itself, from its exit
code. Outputs are written inside the workspace (``<workspace>/.patchsmith/``): sandboxes see
the workspace at the same absolute path, but not the host's /tmp.

Selection: when ``select`` is given, the positional path arguments of the user's command
(``tests/test_x.py``) are *replaced* by the node ids, because pytest would otherwise run
the union of both. Options of the command (``-q``, ``-k expr``) are kept.

Hangs: every pytest run loads our plugin (``-p patchsmith_guard``, from a read-only
directory on PYTHONPATH) with a per-test limit (:func:`per_test_limit`). A test past it fails
with outcome ``timeout``; one that cannot be interrupted is named by the plugin's
``current``/``hung`` files even when the whole command is killed, and the outcomes of the
tests finished before it come from its ``progress`` file.

unittest: ``python -m unittest [discover] ...`` that pytest could run (it collects
``unittest.TestCase``) runs through unittest's own loader and loop instead
(``patchsmith_warm_unittest`` in once mode), which writes what a pytest run would (JUnit
report, the guard's files, per-test coverage contexts) under the same node ids; when that
reports nothing, under pytest; when pytest collects nothing or errors, the original
command runs and counts by its exit code.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from patchsmith.domain import ExecResult, SandboxConfig, TestOutcome, TestReport
from patchsmith.infra.sandbox import Sandbox
from patchsmith.tasks.testing.junit import TIMEOUT_MARKER, parse_junit, parse_progress

REPORT_DIR = ".patchsmith"
JUNIT_FILE = "junit.xml"
COVERAGE_FILE = "coverage.sqlite"
CURRENT_FILE, PROGRESS_FILE, HUNG_FILE = "current", "progress", "hung"
"""Written by the plugin: the running test (``nodeid<TAB>start``), finished tests, a hang."""

GUARD_DIR = str(Path(__file__).resolve().parent / "pytest_plugin")
"""Directory of our pytest plugin: bound read-only in the sandbox, put on PYTHONPATH."""
GUARD_PLUGIN = "patchsmith_guard"
UNITTEST_SERVER = str(Path(GUARD_DIR) / "patchsmith_warm_unittest.py")
"""unittest's own runner for ``python -m unittest`` commands: the warm server, and in once
mode (``UNITTEST_ONCE``) a cold run that reports under pytest's node ids."""
UNITTEST_ONCE, UNITTEST_SPEC = "PATCHSMITH_UNITTEST_ONCE", "unittest-run.json"
UNITTEST_RUNNER = "unittest's own runner (patchsmith_warm_unittest, once mode)"
COVER_DIR = str(Path(__file__).resolve().parent / "coverage_hook")
"""Directory of our ``sitecustomize``: coverage for every Python process of a non-pytest
command (bound read-only, put on PYTHONPATH for a baseline run)."""
COMMAND_CONTEXT = "patchsmith-command"
"""Coverage context of a non-pytest command's lines (one "test": the whole command)."""
COVER_RC = "coverage.rc"

BASELINE_TEST_FRACTION = 0.25
BASELINE_TEST_FLOOR_S = 5.0
"""Per-test limit when none is configured: a quarter of the command's limit, at least 5 s
(at most half of it)."""

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


_PYTHON = re.compile(r"python(\d+(\.\d+)?)?")


def script_argv(test_cmd: str) -> list[str] | None:
    """``[python, FILE, ARGS...]`` when the command is ``[VAR=value ...] python FILE.py
    [ARGS...]`` (no interpreter options, no shell), else None."""
    _, argv = split_command(test_cmd)
    if len(argv) < 2 or _SHELL_OPS.intersection(argv):
        return None
    if not _PYTHON.fullmatch(os.path.basename(argv[0])):
        return None
    if argv[1].startswith("-") or not argv[1].endswith(".py"):
        return None
    return argv


def command_env(test_cmd: str, *, report_dir: str, coverage: bool = False) -> dict[str, str]:
    """Environment for a test run: the command's assignments, plus COVERAGE_FILE."""
    env, _ = split_command(test_cmd)
    if coverage:
        env["COVERAGE_FILE"] = f"{report_dir}/{COVERAGE_FILE}"
    return env


def per_test_limit(config: SandboxConfig) -> float:
    """Seconds one test may take: ``test_timeout_s``, else derived; never above timeout_s."""
    if config.test_timeout_s is not None:
        return min(config.test_timeout_s, config.timeout_s)
    derived = max(BASELINE_TEST_FLOOR_S, BASELINE_TEST_FRACTION * config.timeout_s)
    return min(derived, config.timeout_s / 2)  # below the command's limit, or it never fires


def _python_path(config: SandboxConfig, env: Mapping[str, str], directory: str) -> str:
    """The command's PYTHONPATH with ``directory`` appended."""
    paths = (env.get("PYTHONPATH") or config.env.get("PYTHONPATH") or "").split(os.pathsep)
    return os.pathsep.join([*(p for p in paths if p), directory])


def _bound(config: SandboxConfig, directory: str) -> SandboxConfig:
    """``config`` with ``directory`` bound read-only in the sandbox."""
    if directory in config.ro_paths:
        return config
    return config.model_copy(update={"ro_paths": [*config.ro_paths, directory]})


def guard_env(config: SandboxConfig, env: Mapping[str, str], *, report_dir: str) -> dict[str, str]:
    """Settings of our plugin, with its directory appended to the command's PYTHONPATH."""
    return {
        "PYTHONPATH": _python_path(config, env, GUARD_DIR),
        "PATCHSMITH_TEST_TIMEOUT": f"{per_test_limit(config):g}",
        "PATCHSMITH_GUARD_DIR": report_dir,
    }


def guarded_config(config: SandboxConfig) -> SandboxConfig:
    """``config`` with the plugin's directory bound read-only in the sandbox."""
    return _bound(config, GUARD_DIR)


def command_coverage(
    config: SandboxConfig, env: Mapping[str, str], out: Path, workspace: Path
) -> tuple[SandboxConfig, dict[str, str]]:
    """The lines every Python process of a non-pytest command runs (see ``coverage_hook``).

    The hook's stdlib line tracer writes ``lines.<pid>.json`` into the (fresh,
    patchsmith-made) report directory; a process that runs long hands over to coverage.py,
    whose settings are written here: data next to the JUnit report, one file per process,
    lines of the workspace only, one static context. Returns the config with the hook bound
    and the variables to add (not COVERAGE_PROCESS_START: coverage.py's own start-up ``.pth``
    would start it in every process, ~150-200 ms each).
    """
    rc = out / COVER_RC
    rc.write_text(
        "[run]\n"
        f"data_file = {out / COVERAGE_FILE}\n"
        "parallel = True\n"
        f"context = {COMMAND_CONTEXT}\n"
        f"source = {workspace}\n",
        encoding="utf-8",
    )
    variables = {
        "PYTHONPATH": _python_path(config, env, COVER_DIR),
        "PATCHSMITH_LINES_DIR": str(out),
        "PATCHSMITH_LINES_ROOT": os.path.realpath(workspace),
        "PATCHSMITH_COVER_RC": str(rc),
    }
    return _bound(config, COVER_DIR), variables


_UNITTEST_FLAGS = {"-v", "--verbose", "-q", "--quiet", "-b", "--buffer", "-c", "--catch"}
_UNITTEST_FLAGS |= {"--locals"}
_UNITTEST_ONLY = "__patchsmith_unittest_only__"  # python_classes/functions that match nothing


def _unittest_name(name: str, workspace: Path) -> str | None:
    """A unittest name (``pkg.test_m.Case.test_x`` or a path) as a pytest node id."""
    if name.endswith(".py") or "/" in name:
        return name if (workspace / name).exists() else None
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        base = "/".join(parts[:n])
        if (workspace / f"{base}.py").is_file():
            return "::".join([f"{base}.py", *parts[n:]])
        if n == len(parts) and (workspace / base).is_dir():
            return base
    return None


def pytest_equivalent(test_cmd: str, workspace: Path) -> str | None:
    """The pytest command equivalent to a ``python -m unittest ...`` command, else None.

    pytest collects ``unittest.TestCase`` subclasses by unittest's own rules; plain test
    functions and classes, which unittest ignores, are kept out. Options pytest cannot
    mimic (``-k``, ``-t`` elsewhere than ``.``, anything unknown) give None.
    """
    env, argv = split_command(test_cmd)
    if len(argv) < 3 or _SHELL_OPS.intersection(argv) or argv[1:3] != ["-m", "unittest"]:
        return None
    if not re.fullmatch(r"python[0-9.]*", os.path.basename(argv[0])):
        return None
    rest = argv[3:]
    discover = not rest or rest[0] == "discover" or all(w.startswith("-") for w in rest)
    rest = rest[1:] if rest[:1] == ["discover"] else rest
    opts: list[str] = []
    start, pattern, top, names = ".", "test*.py", ".", []
    positional: list[str] = []
    i = 0
    while i < len(rest):
        word = rest[i]
        if word in _UNITTEST_FLAGS:
            pass
        elif word in ("-f", "--failfast"):
            opts.append("-x")
        elif discover and word in ("-s", "--start-directory", "-p", "--pattern", "-t"):
            if i + 1 >= len(rest):
                return None
            i += 1
            value = rest[i]
            if word in ("-s", "--start-directory"):
                start = value
            elif word in ("-p", "--pattern"):
                pattern = value
            else:
                top = value
        elif word.startswith("-"):
            return None
        else:
            positional.append(word)
        i += 1
    if discover:
        for k, value in enumerate(positional):
            if k == 0:
                start = value
            elif k == 1:
                pattern = value
            elif k == 2:
                top = value
            else:
                return None
        if os.path.normpath(top) != "." or not (workspace / start).is_dir():
            return None
        names = [start]
    else:
        for name in positional:
            nodeid = _unittest_name(name, workspace)
            if nodeid is None:
                return None
            names.append(nodeid)
    words = [argv[0], "-m", "pytest", "-q", "--rootdir=.", *opts]
    words += ["-o", f"python_files={pattern}"]
    words += ["-o", f"python_classes={_UNITTEST_ONLY}", "-o", f"python_functions={_UNITTEST_ONLY}"]
    assigns = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    return " ".join([*assigns, shlex.join([*words, *names])])


def unittest_argv(test_cmd: str) -> list[str] | None:
    """``[python, ARGS...]`` of a ``[VAR=value ...] python -m unittest [ARGS...]`` command
    (no shell), else None."""
    _, argv = split_command(test_cmd)
    if len(argv) < 3 or argv[1:3] != ["-m", "unittest"] or _SHELL_OPS.intersection(argv):
        return None
    return [argv[0], *argv[3:]] if _PYTHON.fullmatch(os.path.basename(argv[0])) else None


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
        "-p",
        GUARD_PLUGIN,  # per-test limits; loads with PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 too
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


def check_report(out: Path, name: str) -> tuple[Path | None, str | None]:
    """(path, None) for a report we may read; (None, None) when it is missing; (None, why)
    when it is there but too large or not a plain file in a real directory (tampered with
    by the tested code)."""
    try:
        if not stat.S_ISDIR(os.lstat(out).st_mode):
            return None, f"{out.name} is not a directory"
        st = os.lstat(out / name)
    except FileNotFoundError:
        return None, None
    if not stat.S_ISREG(st.st_mode):
        return None, f"{name} is not a regular file"
    if st.st_size > REPORT_LIMIT:
        return None, f"{name} is larger than {REPORT_LIMIT} bytes"
    return out / name, None


def report_file(out: Path, name: str) -> Path | None:
    """A report the tests wrote, or None if missing, too large, or not a plain file in a
    real directory (i.e. tampered with by the tested code)."""
    return check_report(out, name)[0]


def read_report(out: Path, name: str) -> str:
    """Text of a report file (see :func:`report_file`), "" when there is none to trust."""
    path = report_file(out, name)
    if path is None:
        return ""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        return fh.read(REPORT_LIMIT).decode(errors="replace")


def _log(*parts: str) -> str:
    return "\n".join(part for part in parts if part)


def hang_texts(out: Path) -> dict[str, str]:
    """What the watchdog wrote about a test it had to kill: {nodeid: message + stack}."""
    nodeid, _, text = read_report(out, HUNG_FILE).partition("\n")
    return {nodeid: text} if nodeid.strip() else {}


def _hung_test(out: Path, config: SandboxConfig, ended: float) -> str | None:
    """The test that was running when the command was killed, if it ran long enough to
    count as hung (its own limit, or half the command's): else the suite was just slow."""
    nodeid, _, started = read_report(out, CURRENT_FILE).strip().partition("\t")
    try:
        ran = ended - float(started)
    except ValueError:
        return None
    threshold = min(per_test_limit(config), config.timeout_s / 2)
    return nodeid if nodeid and ran >= threshold else None


def _crashed_test(out: Path, result: ExecResult) -> str | None:
    """The test that was running when the pytest process died of a signal (a C stack
    overflow from runaway recursion, a crash in an extension), from the plugin's files."""
    code = result.exit_code
    if result.timed_out or code is None or 0 <= code <= 128:
        return None
    nodeid = read_report(out, CURRENT_FILE).strip().partition("\t")[0]
    return nodeid or None


def _pytest_report(
    out: Path, result: ExecResult, config: SandboxConfig, ended: float
) -> tuple[dict[str, TestOutcome], str, str | None]:
    """Outcomes of a pytest run: its JUnit report, else (killed, crashed) what the plugin
    wrote. Also the note to log and the test whose crash ended the process, if any."""
    outcomes = parse_junit(read_report(out, JUNIT_FILE))
    if outcomes:
        return outcomes, "", None
    outcomes = parse_progress(read_report(out, PROGRESS_FILE))
    hung = next(iter(hang_texts(out)), None)
    if hung is None and result.timed_out:
        hung = _hung_test(out, config, ended)
    if hung is None:
        crashed = _crashed_test(out, result)
        if crashed is None:
            return outcomes, "", None
        outcomes[crashed] = TestOutcome.error
        why = f"patchsmith: {crashed}: the test process died (exit {result.exit_code}) in it"
        return outcomes, why, crashed
    outcomes[hung] = TestOutcome.timeout
    how = "the watchdog ended the run" if not result.timed_out else "the run was killed"
    return outcomes, f"patchsmith: {hung}: {TIMEOUT_MARKER} ({how})", None


def _run_once(
    sandbox: Sandbox,
    workspace: Path,
    test_cmd: str,
    config: SandboxConfig,
    *,
    select: Sequence[str],
    deselect: Sequence[str],
    stop_first: bool,
    coverage: bool,
) -> TestReport:
    out = prepare_report_dir(workspace)
    env = command_env(test_cmd, report_dir=str(out), coverage=coverage)
    pytest_cmd = is_pytest(test_cmd)
    if pytest_cmd:
        argv = pytest_argv(
            test_cmd,
            report_dir=str(out),
            select=select,
            deselect=deselect,
            stop_first=stop_first,
            coverage=coverage,
        )
        env.update(guard_env(config, env, report_dir=str(out)))
        config = guarded_config(config)
    else:
        _, words = split_command(test_cmd)
        argv = ["sh", "-c", test_cmd] if _SHELL_OPS.intersection(words) else words
        if coverage:
            env.pop("COVERAGE_FILE", None)  # the settings file names it, per process
            config, variables = command_coverage(config, env, out, workspace)
            env.update(variables)
    result = sandbox.run(workspace, argv, config, env)
    if pytest_cmd:
        return _report(result, *_pytest_report(out, result, config, time.time()))
    outcome = TestOutcome.passed if result.ok else TestOutcome.failed
    return _report(result, {test_cmd: outcome}, "", None)


def _run_unittest(
    sandbox: Sandbox,
    workspace: Path,
    test_cmd: str,
    config: SandboxConfig,
    select: Sequence[str],
    deselect: Sequence[str],
    stop_first: bool,
    coverage: bool,
) -> TestReport:
    """A ``python -m unittest`` command through unittest's own loader and loop, in one
    sandboxed process (``UNITTEST_SERVER`` in once mode): what a pytest run of it gives
    (JUnit report, the guard plugin's per-test limit and files, pytest-cov's per-test
    coverage contexts), without pytest."""
    argv = unittest_argv(test_cmd)
    assert argv is not None, test_cmd  # only for commands pytest_equivalent converted
    out = prepare_report_dir(workspace)
    env = command_env(test_cmd, report_dir=str(out), coverage=coverage)
    spec = {"select": list(select), "deselect": list(deselect), "stop_first": stop_first,
            "coverage": coverage}  # fmt: skip
    (out / UNITTEST_SPEC).write_text(json.dumps(spec))  # a file: a long selection fits
    env.update({
        UNITTEST_ONCE: str(out / UNITTEST_SPEC), "PATCHSMITH_GUARD_DIR": str(out),
        "PATCHSMITH_TEST_TIMEOUT": f"{per_test_limit(config):g}",
    })  # fmt: skip
    config = guarded_config(config)
    result = sandbox.run(workspace, [argv[0], UNITTEST_SERVER, *argv[1:]], config, env)
    report = _report(result, *_pytest_report(out, result, config, time.time()))
    return report.model_copy(update={"runner_note": UNITTEST_RUNNER})


def _report(
    result: ExecResult, outcomes: dict[str, TestOutcome], note: str, crashed: str | None
) -> TestReport:
    return TestReport(
        outcomes=outcomes,
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        timed_out=result.timed_out,
        limit_hit=result.limit_hit,
        log_tail=_log(result.stdout_tail, result.stderr_tail, note),
        crashed=crashed,
    )


def effective_command(test_cmd: str, workspace: Path) -> str:
    """The command that actually runs: a unittest command's pytest equivalent, or itself."""
    return pytest_equivalent(test_cmd, workspace) or test_cmd


def ran_under_pytest(report: TestReport, test_cmd: str) -> bool:
    """False when a converted unittest command fell back to its own exit code."""
    return test_cmd not in report.outcomes


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
    """Run the tests once; SandboxStartError propagates (an infra fault, retried).

    A unittest command runs under pytest (see :func:`pytest_equivalent`); if that collects
    nothing or pytest itself fails (usage, internal error), the original command runs.
    One that pytest can run goes first through unittest's own runner (:func:`_run_unittest`:
    the same node ids and reports, without pytest's start-up), and under pytest only when
    that reports nothing.
    """
    cmd = effective_command(test_cmd, workspace)
    if cmd != test_cmd:
        own = _run_unittest(
            sandbox, workspace, test_cmd, config, select, deselect, stop_first, coverage
        )
        if own.outcomes or own.timed_out:
            return own
    report = _run_once(
        sandbox, workspace, cmd, config,
        select=select, deselect=deselect, stop_first=stop_first, coverage=coverage,
    )  # fmt: skip
    if cmd == test_cmd or report.timed_out or select or deselect:
        return report
    if report.outcomes and report.exit_code in (0, 1):
        return report
    original = _run_once(
        sandbox, workspace, test_cmd, config, select=(), deselect=(), stop_first=False,
        coverage=coverage,
    )  # fmt: skip
    note = f"patchsmith: pytest could not run {test_cmd!r} (exit {report.exit_code}): by exit code"
    return original.model_copy(update={"log_tail": _log(original.log_tail, note)})


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
    for bad in (TestOutcome.timeout, TestOutcome.error, TestOutcome.failed):
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
    if not targets or not is_pytest(effective_command(test_cmd, workspace)):
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
