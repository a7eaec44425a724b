"""patchsmith's warm runner for ``python -m unittest [ARGS...]`` commands: a fork per candidate.

Started, inside the sandbox and under the repository's Python, as ``python <this file>
[ARGS...]`` in place of ``python -m unittest [ARGS...]``, with ``PATCHSMITH_WARM_FD`` naming
a socket to patchsmith. It loads the tests once, as ``python -m unittest ARGS`` would
(unittest's own ``TestProgram`` parses ARGS: names, ``discover``, ``-k``), and names each
by the pytest node id the cold path reports it under (``test_m.py::Case::test_x``: a
unittest command's baseline runs under pytest for per-test outcomes). Each request forks;
the child applies the candidate's files (``patchsmith_fork.apply_files``), then runs the
targets first, in order, stopping at the first that does not pass, then every other test,
through one ``TestSuite`` (class and module fixtures run as unittest runs them) and a
``TestResult`` that reports each test as it ends.

This is what makes a unittest command as cheap to screen as a ``python FILE`` one: no
pytest in the child, no per-test hook machinery, just unittest's own loop.

Outcomes as pytest reports unittest cases: a failure, an error in the test or its
``setUp``, an unexpected success or a failed subtest is ``failed``; a class or module
fixture that raised makes its tests ``error``; a skip or an expected failure is
``skipped``. Per-test limit: the request's ``test_timeout_s`` exactly, enforced by the
parent (nothing inside the child interrupts a test). The tests' own output is discarded;
a failing test's log is its traceback.

Once mode (``PATCHSMITH_UNITTEST_ONCE`` naming its settings file): no server; the cold
path's run of such a command (the baseline, a second run, a cold candidate, the verify-only
run). The selected
tests run in this process with ``patchsmith_guard``'s per-test limit and files
(``current``, ``progress``: what survives a killed run), a JUnit report as pytest writes
it (xunit1), and for the baseline coverage.py's per-test contexts as pytest-cov names them
(``nodeid|run``), so patchsmith reads the run exactly as it reads a pytest run.

Protocol: ``patchsmith_warm``'s. Standard library only, Python >= 3.8.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
import unittest
import xml.etree.ElementTree as ET
from typing import Any

from patchsmith_fork import (
    FD_ENV,
    LOG_LIMIT,
    SWEEP_ENV,
    Events,
    ancestors,
    apply_files,
    evaluate,
    repo_modules,
    serve,
)

_BAD = ("failed", "error", "timeout")
ONCE_ENV = "PATCHSMITH_UNITTEST_ONCE"
"""Set (to a JSON file: ``select``, ``deselect``, ``stop_first``, ``coverage``): run once,
no server (a cold run)."""
GUARD_DIR_ENV, TIMEOUT_ENV = "PATCHSMITH_GUARD_DIR", "PATCHSMITH_TEST_TIMEOUT"
MARKER = "patchsmith-guard: test timed out"  # as in patchsmith_guard


class _Load(unittest.TestProgram):
    """``python -m unittest ARGS``'s argument parsing and loading, without the run."""

    def runTests(self) -> None:
        return None


def _leaves(suite: Any) -> list[unittest.TestCase]:
    found: list[unittest.TestCase] = []
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            found.extend(_leaves(test))
        else:
            found.append(test)
    return found


def node_id(test: unittest.TestCase, root: str) -> str | None:
    """pytest's node id of a unittest case (``path.py::Class::method``), or None for one that
    is not a plain test method of a class defined in a file under ``root``."""
    method = getattr(test, "_testMethodName", None)
    cls = type(test)
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if not method or not isinstance(path, str) or "." in cls.__qualname__:
        return None
    path = os.path.realpath(path)
    if not path.startswith(root + os.sep) or not path.endswith(".py"):
        return None
    return "::".join([os.path.relpath(path, root), cls.__qualname__, method])


def _text(err: Any) -> str:
    """A test's exception as unittest prints it, without unittest's own frames."""
    kind, value, tb = err
    while tb is not None and "__unittest" in tb.tb_frame.f_globals:
        tb = tb.tb_next
    return "".join(traceback.format_exception(kind, value, tb))


class _Result(unittest.TestResult):
    """Each test's outcome as it ends, sent as patchsmith_fork events."""

    def __init__(self, events: Events, ids: dict[int, str], targets: set) -> None:
        super().__init__()
        self.events, self.ids, self.targets = events, ids, targets
        self.outcomes: dict[str, str] = {}
        self.current: str | None = None
        self.log = ""
        self.t0 = 0.0
        self.fixture_error = ""

    def _set(self, test: Any, outcome: str, err: Any = None, log: str = "") -> None:
        nodeid = self.ids.get(id(test))
        if nodeid is None or nodeid != self.current:  # a class/module fixture (_ErrorHolder)
            if err is not None:
                self.fixture_error = _text(err)[-LOG_LIMIT:]
            return
        if self.outcomes.get(nodeid, "passed") in _BAD:
            return  # the first failure of a test is its outcome (as pytest keeps it)
        self.outcomes[nodeid] = outcome
        if err is not None:
            log = _text(err)
        self.log = log[-LOG_LIMIT:]

    def startTest(self, test: Any) -> None:
        super().startTest(test)
        self.current = self.ids.get(id(test))
        self.log = ""
        if self.current is not None:
            self.events.send(start=self.current)
        self.t0 = time.perf_counter()

    def stopTest(self, test: Any) -> None:
        super().stopTest(test)
        nodeid = self.current
        self.current = None
        if nodeid is None:
            return
        outcome = self.outcomes.setdefault(nodeid, "passed")
        spent = round(time.perf_counter() - self.t0, 6)
        log = self.log if outcome in _BAD else ""
        self.events.send(done=nodeid, outcome=outcome, log=log, s=spent)
        if nodeid in self.targets and outcome != "passed":
            self.stop()  # a target that does not pass: the verdict is known

    def addSuccess(self, test: Any) -> None:
        self._set(test, "passed")

    def addFailure(self, test: Any, err: Any) -> None:
        self._set(test, "failed", err)

    def addError(self, test: Any, err: Any) -> None:
        self._set(test, "timeout" if err[0] is _Timeout else "failed", err)

    def addSkip(self, test: Any, reason: str) -> None:
        self._set(test, "skipped")

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        self._set(test, "skipped")

    def addUnexpectedSuccess(self, test: Any) -> None:
        self._set(test, "failed", log="Unexpected success")

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        if err is not None:
            self._set(test, "failed", err)


def _run_tests(tests: dict[str, unittest.TestCase], targets: list[str], rest: list[str],
               events: Any) -> float:  # fmt: skip
    """``targets`` in order (stopping at the first that does not pass), then ``rest``, in
    one suite; every test's end is sent to ``events``. Seconds spent in the tests."""
    order = [*targets, *rest]
    ids = {id(tests[t]): t for t in order}
    result = _Result(events, ids, set(targets))
    t0 = time.perf_counter()
    unittest.TestSuite([tests[t] for t in order]).run(result)
    spent = round(time.perf_counter() - t0, 6)
    if not result.shouldStop:
        for nodeid in order:  # never started: their class or module fixture raised
            if nodeid not in result.outcomes:
                events.send(done=nodeid, outcome="error", log=result.fixture_error, s=0.0)
    return spent


def _child(request: dict, tests: dict[str, unittest.TestCase], root: str, repo: list,
           events: Events) -> None:  # fmt: skip
    for name in (FD_ENV, SWEEP_ENV):
        os.environ.pop(name, None)  # the tests see the command's environment
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    try:
        apply_files(request.get("files") or {}, root, repo)
    except BaseException:  # the candidate's own error (syntax, import-time): its result
        events.send(setup_error=traceback.format_exc()[-LOG_LIMIT:])
        return
    targets = [t for t in request.get("targets") or [] if t in tests]
    chosen = set(targets)
    rest = [t for t in tests if t not in chosen] if request.get("rest") else []
    spent = _run_tests(tests, targets, rest, events)
    events.send(end=True, tests_s=spent)


class _Timeout(BaseException):
    """Raised in a test past its per-test limit (a BaseException: ``except Exception`` in the
    looping code cannot swallow it)."""


class _Files:
    """Once mode's events: ``patchsmith_guard``'s files (``current``: the running test and
    its start; ``progress``: ``outcome<TAB>nodeid`` per finished test), a failing test's
    traceback on stderr, its per-test limit as a SIGALRM timer, and (with ``cov``) the
    coverage context pytest-cov gives a test (``nodeid|run``)."""

    def __init__(self, out: str, limit: float, cov: Any = None) -> None:
        self.out, self.limit, self.cov = out, limit, cov
        self.cases: list[tuple[str, str, str, float]] = []  # nodeid, outcome, log, seconds

    def _write(self, name: str, text: str, mode: str = "w") -> None:
        try:
            with open(os.path.join(self.out, name), mode) as fh:
                fh.write(text)
        except OSError:
            return  # the tested code may have removed the directory: the run goes on

    def _alarm(self, signum: int, frame: Any) -> None:
        f = frame
        while f is not None:  # never inside coverage's bookkeeping: a bit later instead
            if str(f.f_globals.get("__name__", "")).split(".", 1)[0] == "coverage":
                signal.setitimer(signal.ITIMER_REAL, 0.05)
                return
            f = f.f_back
        raise _Timeout(f"{MARKER} after {self.limit:g}s (per-test limit)")

    def send(self, **event: Any) -> None:
        if "start" in event:
            self._write("current", f"{event['start']}\t{time.time():f}")
            if self.cov is not None:
                self.cov.switch_context(f"{event['start']}|run")
            if self.limit > 0:
                signal.signal(signal.SIGALRM, self._alarm)  # again: a test may replace it
                signal.setitimer(signal.ITIMER_REAL, self.limit)
        elif "done" in event:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if self.cov is not None:
                self.cov.switch_context("")
            self._write("current", "")
            self._write("progress", f"{event['outcome']}\t{event['done']}\n", "a")
            log = str(event.get("log") or "")
            self.cases.append((str(event["done"]), str(event["outcome"]), log, event["s"]))
            if log:
                print(f"{event['outcome'].upper()}: {event['done']}\n{log}", file=sys.stderr)

    def junit(self) -> None:
        """The outcomes as pytest's JUnit XML (xunit1: ``file``, ``classname``, ``name``)."""
        suite = ET.Element("testsuite", name="patchsmith-unittest", tests=str(len(self.cases)))
        for nodeid, outcome, log, spent in self.cases:
            path, cls, name = nodeid.split("::")
            module = path[: -len(".py")].replace("/", ".")
            case = ET.SubElement(suite, "testcase", file=path, classname=f"{module}.{cls}",
                                 name=name, time=f"{spent:f}")  # fmt: skip
            if outcome == "skipped":
                ET.SubElement(case, "skipped")
            elif outcome in _BAD:
                tag = "error" if outcome == "error" else "failure"
                message = (log.strip().splitlines() or [outcome])[-1]
                ET.SubElement(case, tag, message=message).text = log
        self._write("junit.xml", ET.tostring(suite, encoding="unicode"))


def _coverage(spec: dict, root: str) -> Any:
    """coverage.py measuring ``root`` into the data file the run names, when asked for and
    importable by this interpreter (else None, and the run says so on stderr)."""
    data = os.environ.get("COVERAGE_FILE")
    if not spec.get("coverage") or not data:
        return None
    try:
        import coverage
    except ImportError:
        print(f"patchsmith unittest runner: coverage is not importable by {sys.executable}",
              file=sys.stderr)  # fmt: skip
        return None
    cov = coverage.Coverage(data_file=data, source=[root], config_file=False)
    cov.start()
    return cov


def run_once(tests: dict[str, unittest.TestCase], spec: dict, root: str) -> int:
    """Once mode (a cold run): the tests ``spec`` selects, in this process; the exit code."""
    select = [t for t in spec.get("select") or [] if t in tests]
    skip = set(spec.get("deselect") or [])
    if spec.get("select"):
        targets, rest = (select, []) if spec.get("stop_first") else ([], select)
    else:
        targets, rest = [], [t for t in tests if t not in skip]
    cov = _coverage(spec, root)
    files = _Files(os.environ.get(GUARD_DIR_ENV) or ".", _limit(), cov)
    try:
        _run_tests(tests, targets, rest, files)
    finally:
        if cov is not None:
            cov.stop()
            cov.save()
    files.junit()
    bad = [case for case in files.cases if case[1] in _BAD]
    print(f"patchsmith unittest runner: {len(files.cases)} run, {len(bad)} not passed",
          file=sys.stderr)  # fmt: skip
    return 1 if bad or not files.cases else 0


def _limit() -> float:
    try:
        return max(float(os.environ.get(TIMEOUT_ENV) or 0.0), 0.0)
    except ValueError:
        return 0.0


def main() -> None:
    root = os.path.realpath(os.getcwd())
    sys.path[0] = root  # as ``python -m unittest`` has it (the cwd, not this file's folder)
    once = os.environ.get(ONCE_ENV)
    spec = None
    if once:  # read before the tests' modules are imported
        with open(once, encoding="utf-8") as fh:
            spec = json.load(fh)
    loaded = _Load(module=None, argv=["python -m unittest", *sys.argv[1:]], exit=False)
    tests: dict[str, unittest.TestCase] = {}
    for test in _leaves(loaded.test):  # type: ignore[attr-defined]
        nodeid = node_id(test, root)
        if nodeid is not None:
            tests.setdefault(nodeid, test)
    if isinstance(spec, dict):
        sys.exit(run_once(tests, spec, root))
    files = sorted({nodeid.split("::", 1)[0] for nodeid in tests})
    ready = {"type": "ready", "items": list(tests), "modules": {}, "test_files": files}
    repo = repo_modules(root)
    keep = ancestors()

    def answer(request: dict) -> dict:
        run = lambda ev: _child(request, tests, root, repo, ev)  # noqa: E731
        return evaluate(request, run, keep, test_grace_s=0.0)

    serve(int(os.environ[FD_ENV]), ready, answer)


if __name__ == "__main__":
    main()
