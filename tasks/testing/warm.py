"""Warm screening: one sandboxed pytest session per instance, a forked child per candidate.

The cold path (``run.staged_run``) gives every candidate a new workspace, a new sandbox, a
new Python, pytest's start-up and collection. :class:`WarmRunner` pays those once per
instance: it starts the instance's test command in the same sandbox, with the same limits,
plus ``-p patchsmith_warm`` (``pytest_plugin/patchsmith_warm.py``), which collects the tests
and then serves candidates over a socket passed into the sandbox. Each candidate runs in a
fork of that session with its changed modules re-executed from their new source: the
targets first (stopping at the first that does not pass), then every other collected test.

Before the first candidate, the session runs the unchanged suite once in a fork: it must
agree with the baseline (every target fails, every guard passes), or this repository's
tests behave differently in a forked session and all its candidates run cold. The tests'
times in that run set the warm per-test limit (10x the slowest, at least 0.25 s, never
above the cold one): a looping candidate is stopped in a fraction of a second.

A ``python FILE [ARGS...]`` command gets the same from ``pytest_plugin/
patchsmith_warm_script.py``: a sandboxed Python that forks per candidate and runs FILE as
``__main__`` in the child, with the candidate's modules served to its imports from memory;
the whole command is its one test (limit: the candidate's per-test limit, not tightened by
the unchanged run, which stops at the script's first failed check). A ``python -m unittest
ARGS`` command, whose cold runs go through pytest, is screened by ``pytest_plugin/
patchsmith_warm_unittest.py`` instead: unittest loads the tests once, a child per candidate
runs them through unittest's own loop and reports each under its pytest node id (no pytest
per-test machinery in the child: a unittest candidate costs about what a script one does).

Screening only. What the warm path cannot handle, :meth:`WarmRunner.why_cold` names (a
changed test file or conftest, a new or deleted file, a non-Python file, a target the
session did not collect, a command that is neither pytest nor ``python FILE``, a session
that would not start) and the caller runs that candidate cold; the report records which
path ran. An accepted candidate is always verified cold, on a fresh workspace, whichever
path screened it.

Everything read from the session is untrusted (it shares the sandbox with the tested
code): lines are bounded, every wait has a deadline, and a session that misbehaves is
killed and replaced. A session whose workspace the tests wrote to is replaced too, so one
candidate's files never reach the next one's tests.
"""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any

from patchsmith.domain import FAILING, ExecResult, SandboxConfig, TestOutcome, TestReport
from patchsmith.errors import WorkspaceError
from patchsmith.infra.sandbox import Sandbox
from patchsmith.infra.workspace import WorkspaceManager
from patchsmith.tasks.edits.diff import parse_diff
from patchsmith.tasks.testing.run import (
    GUARD_DIR,
    REPORT_DIR,
    UNITTEST_SERVER,
    command_env,
    effective_command,
    guard_env,
    guarded_config,
    is_pytest,
    per_test_limit,
    prepare_report_dir,
    pytest_argv,
    script_argv,
    split_command,
    unittest_argv,
)

WARM_PLUGIN = "patchsmith_warm"
SCRIPT_SERVER = str(Path(GUARD_DIR) / "patchsmith_warm_script.py")
"""The warm runner of ``python FILE`` commands (in the plugin directory, bound read-only)."""
FD_ENV, SWEEP_ENV, KEY_ENV = "PATCHSMITH_WARM_FD", "PATCHSMITH_WARM_SWEEP", "PATCHSMITH_WARM_KEY"
LINE_LIMIT = 16 * 1024 * 1024
"""Longest line accepted from the session (a result with every outcome and its log)."""
WARM_TEST_FLOOR_S, WARM_TEST_FACTOR = 0.25, 10.0
"""Per-test limit in the warm session: 10x the slowest test of the unchanged run there (no
process start-up in it), at least 0.25 s, never above the candidate's own limit."""
MAX_STARTS = 20
"""Sessions per instance: candidates that keep killing theirs get the cold path after this."""
ANSWER_GRACE_S = 10.0
"""The session enforces a candidate's limits itself; past them plus this, it is killed."""
# Options that change how tests run in ways one forked session cannot reproduce.
_COLD_OPTIONS = (
    *("-n", "--numprocesses", "--dist", "--forked", "--pdb", "--trace", "--lf"),
    *("--last-failed", "--ff", "--failed-first", "--sw", "--stepwise", "--looponfail"),
)


class _Lines:
    """Newline-delimited reads from a socket, each bounded in size and time.

    The plugin has its own (``patchsmith_warm._Lines``): it runs under the repository's
    Python and imports nothing of patchsmith."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next JSON object; None at EOF, on a deadline, or on anything malformed."""
        while b"\n" not in self.buf:
            wait = deadline - time.monotonic()
            if wait <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], wait)
            if not ready:
                return None
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return None
            self.buf += chunk
            if len(self.buf) > LINE_LIMIT:
                return None
        line, _, self.buf = self.buf.partition(b"\n")
        try:
            value = json.loads(line)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every entry below ``root`` except our report dir; links not followed."""
    state: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root and REPORT_DIR in dirnames:
            dirnames.remove(REPORT_DIR)
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            state[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return state


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


class WarmRunner:
    """One warm pytest session for one instance; started on first use, replaced when needed."""

    def __init__(
        self,
        sandbox: Sandbox,
        workspaces: WorkspaceManager,
        pristine: Path,
        test_cmd: str,
        config: SandboxConfig,
        *,
        lifetime_s: float,
        targets: Sequence[str] = (),
        guards: Sequence[str] = (),
    ) -> None:
        self.sandbox = sandbox
        self.workspaces = workspaces
        self.pristine = pristine
        self.test_cmd = effective_command(test_cmd, pristine)
        self.script = None if is_pytest(self.test_cmd) else script_argv(self.test_cmd)
        """``[python, FILE, ARGS...]`` of a script command (served by SCRIPT_SERVER)."""
        self.unittest = unittest_argv(test_cmd) if self.test_cmd != test_cmd else None
        """``[python, ARGS...]`` of a unittest command pytest can run (UNITTEST_SERVER)."""
        self.config = config
        self.lifetime_s = lifetime_s
        self.targets, self.guards = list(targets), list(guards)
        self.test_limit: float | None = None  # set by the first session's unchanged run
        self.broken: str | None = self._unsupported()
        self.starts = 0
        self.items: set[str] = set()  # node ids the session collected
        self.test_files: set[str] = set()
        self._sock: socket.socket | None = None
        self._lines: _Lines | None = None
        self._thread: threading.Thread | None = None
        self._exit: ExecResult | BaseException | None = None
        self._ws_cm: AbstractContextManager[Path] | None = None
        self._watch: Path | None = None
        self._watched: dict[str, tuple[int, int]] = {}
        self._next_id = 0
        self._lock = threading.Lock()
        self.last_answer: dict[str, Any] = {}

    # ------------------------------------------------------------------ decisions

    def _unsupported(self) -> str | None:
        if self.script is not None or self.unittest is not None:
            return None
        if not is_pytest(self.test_cmd):
            return "the test command is neither pytest nor `python FILE.py`"
        _, argv = split_command(self.test_cmd)
        for word in argv:
            option = word.split("=", 1)[0]
            if option in _COLD_OPTIONS or (word.startswith("-n") and word[2:].isdigit()):
                return f"pytest option {word!r} needs a fresh process per run"
        return None

    def why_cold(self, diff: str, targets: Sequence[str]) -> str | None:
        """Why this candidate must run cold, or None when the warm session can screen it.

        Starts the session if there is none: what it collected decides (test files, targets).
        """
        if not targets:
            return "no target tests"
        if not self.ensure_started():
            return f"warm runner unavailable: {self.broken}"
        for fp in parse_diff(diff):
            if fp.is_new or fp.is_deleted:
                return f"{fp.path}: adds or deletes a file"
            if not fp.path.endswith(".py"):
                return f"{fp.path}: not a Python module"
            if os.path.basename(fp.path) == "conftest.py":
                return f"{fp.path}: conftest.py changes the session itself"
            if fp.path in self.test_files:
                return f"{fp.path}: a test file (its tests were collected from the old one)"
        missing = [t for t in targets if t not in self.items]
        if missing:
            return f"target {missing[0]} is not a test the warm session collected"
        return None

    # ------------------------------------------------------------------ life cycle

    def ensure_started(self) -> bool:
        """Start the session unless it runs; False when there is none (``broken`` says why)."""
        with self._lock:
            if self.broken is None and self._sock is None:
                self._start()
            return self.broken is None

    def _start(self) -> bool:
        """Start a session; False (and ``broken`` says why) when it would not come up."""
        if self.starts >= MAX_STARTS:
            self.broken = f"its session was replaced {self.starts} times"
            return False
        self.starts += 1
        ws_cm = self.workspaces.attempt(self.pristine)
        try:
            ws = ws_cm.__enter__()
            self._ws_cm = ws_cm
            out = prepare_report_dir(ws)
        except (WorkspaceError, OSError) as exc:  # no workspace, no session: run cold
            self.broken = f"no workspace for the session: {exc}"
            self.close()
            return False
        env = command_env(self.test_cmd, report_dir=str(out))
        if self.script is not None:
            python, *rest = self.script
            argv = [python, SCRIPT_SERVER, *rest]
            env[KEY_ENV] = self.test_cmd  # the outcome's key, as the cold path names it
        elif self.unittest is not None:
            python, *rest = self.unittest
            argv = [python, UNITTEST_SERVER, *rest]
        else:
            argv = [*pytest_argv(self.test_cmd, report_dir=str(out)), "-p", WARM_PLUGIN]
            env.update(guard_env(self.config, env, report_dir=str(out)))
            env.pop("PATCHSMITH_GUARD_DIR")  # forked children would share its files
        ours, theirs = socket.socketpair()
        os.set_inheritable(theirs.fileno(), True)
        env.update({FD_ENV: str(theirs.fileno()), "PYTHONDONTWRITEBYTECODE": "1"})
        if self.sandbox.name == "bwrap":
            env[SWEEP_ENV] = "1"  # its own PID namespace: leftovers may all be killed
        config = guarded_config(self.config).model_copy(update={"timeout_s": self.lifetime_s})
        self._exit = None

        def serve() -> None:
            try:
                self._exit = self.sandbox.run(ws, argv, config, env, pass_fds=[theirs.fileno()])
            except BaseException as exc:  # reported by _start / run, never lost
                self._exit = exc
            finally:
                theirs.close()

        self._sock, self._lines = ours, _Lines(ours)
        self._thread = threading.Thread(target=serve, name="patchsmith-warm", daemon=True)
        self._thread.start()
        ready = self._lines.read(time.monotonic() + self.config.timeout_s)
        if not ready or ready.get("type") != "ready":
            self.broken = "the session did not start: " + self._exit_text()
            self.close()
            return False
        self.items = set(_strings(ready.get("items")))
        self.test_files = set(_strings(ready.get("test_files")))
        upper = ws.parent / "upper"
        self._watch = upper if upper.is_dir() else ws
        self._watched = _tree(self._watch)
        if self.starts == 1 and (self.targets or self.guards) and not self._calibrate():
            self.close()
            return False
        return True

    def _exit_text(self) -> str:
        if self._thread is not None:
            self._thread.join(timeout=5)
        got = self._exit
        if isinstance(got, BaseException):
            return f"{type(got).__name__}: {got}"
        if got is None:
            return "no answer"
        tail = (got.stderr_tail or got.stdout_tail).strip().splitlines()[-3:]
        return f"exit {got.exit_code}: " + " | ".join(tail)

    def close(self) -> None:
        """End the session (its stdin-like socket closes, it exits) and drop its workspace."""
        if self._sock is not None:
            with suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._ws_cm is not None:
            self._ws_cm.__exit__(None, None, None)
        self._sock = self._lines = self._thread = self._ws_cm = None
        self.items = set()

    # ------------------------------------------------------------------ screening

    def run(
        self, files: Mapping[str, str], targets: Sequence[str], limits: SandboxConfig
    ) -> TestReport | None:
        """The candidate's staged run in a fork of the session; None if the session failed
        (it is then replaced, or marked ``broken`` if it cannot be)."""
        with self._lock:
            if self._sock is None and (self.broken or not self._start()):
                return None
            per_test = min(per_test_limit(limits), self.test_limit or limits.timeout_s)
            answer = self._ask(files, targets, limits.timeout_s, per_test)
            if answer is None:
                return None
            report = _report(answer, targets)
            if self._watch is not None and _tree(self._watch) != self._watched:
                self.close()  # the tests wrote into the workspace: start clean next time
            return report

    def _ask(
        self, files: Mapping[str, str], targets: Sequence[str], timeout_s: float, per_test: float
    ) -> dict[str, Any] | None:
        """One request and its answer; None (and the session closed) when there is none."""
        assert self._sock is not None and self._lines is not None
        self._next_id += 1
        request = {
            "type": "run", "id": self._next_id, "files": dict(files), "targets": list(targets),
            "rest": True, "timeout_s": timeout_s, "test_timeout_s": per_test,
        }  # fmt: skip
        try:
            self._sock.sendall((json.dumps(request) + "\n").encode())
        except OSError:
            self.close()
            return None
        answer = self._lines.read(time.monotonic() + timeout_s + ANSWER_GRACE_S)
        if not answer or answer.get("type") != "result" or answer.get("id") != self._next_id:
            self.close()  # dead, stuck or lying: the next candidate gets a new session
            return None
        self.last_answer = answer  # for benchmarks: its duration_s and tests_s
        return answer

    def unchanged(self) -> TestReport | None:
        """Every test of the unchanged tree, in a fork of the session (started if need be):
        the plan's second run of the baseline, at the cost of a fork. Sets the warm per-test
        limit as a calibration does; None when there is no session."""
        with self._lock:
            if self._sock is None and (self.broken or not self._start()):
                return None
            answer = self._ask({}, [], self.config.timeout_s, per_test_limit(self.config))
            if answer is None:
                return None
            report = _report(answer, [])
            self._set_test_limit(answer, report)
            if self._watch is not None and _tree(self._watch) != self._watched:
                self.close()
            return report

    def _calibrate(self) -> bool:
        """Run the unchanged suite once in a fork: it must agree with the baseline (targets
        fail, guards pass), or this repository's tests behave differently in a forked session
        and every candidate runs cold. Its per-test times set the warm per-test limit."""
        answer = self._ask({}, [], self.config.timeout_s, per_test_limit(self.config))
        if answer is None:
            self.broken = "the session ended while running the unchanged tests"
            return False
        report = _report(answer, [])
        outcomes = report.outcomes
        for target in self.targets:
            if target in self.items and outcomes.get(target) == TestOutcome.passed:
                self.broken = f"{target} passes in the warm session but fails in the baseline"
                return False
        for guard in self.guards:
            if guard in self.items and outcomes.get(guard) != TestOutcome.passed:
                got = outcomes.get(guard)
                self.broken = (f"{guard} is {got.value if got else 'missing'} in the warm "
                               "session but passes in the baseline")  # fmt: skip
                return False
        self._set_test_limit(answer, report)
        return True

    def _set_test_limit(self, answer: Mapping[str, Any], unchanged: TestReport) -> None:
        """The warm per-test limit from the unchanged run's per-test times (not for a
        script: one test, stopped at its first failed check, whose time says little)."""
        if self.script is not None:
            return
        outcomes = unchanged.outcomes
        spent = answer.get("durations")
        spent = spent if isinstance(spent, dict) else {}
        # A hanging target's time is its limit, not a test's cost: only tests that finished.
        times = [v for t, v in spent.items() if isinstance(v, int | float)
                 and outcomes.get(t) not in (None, TestOutcome.timeout)]  # fmt: skip
        slowest = max(times, default=0.0)
        self.test_limit = min(per_test_limit(self.config),
                              max(WARM_TEST_FLOOR_S, WARM_TEST_FACTOR * slowest))  # fmt: skip


def _report(answer: Mapping[str, Any], targets: Sequence[str]) -> TestReport:
    outcomes: dict[str, TestOutcome] = {}
    raw = answer.get("outcomes")
    for nodeid, value in raw.items() if isinstance(raw, dict) else []:
        try:
            outcomes[str(nodeid)] = TestOutcome(value)
        except ValueError:
            continue
    end = answer.get("end")
    running = answer.get("running")
    notes: list[str] = []
    if isinstance(running, str) and running:
        outcomes[running] = TestOutcome.timeout if "timeout" in str(end) else TestOutcome.error
        notes.append(f"patchsmith: {running}: " + (
            "timed out (warm runner)" if "timeout" in str(end)
            else f"the test process ended during the test (exit {answer.get('exit')})"
        ))  # fmt: skip
    stopped = any(outcomes.get(t) != TestOutcome.passed for t in targets)
    duration = answer.get("duration_s")
    return TestReport(
        outcomes=outcomes,
        exit_code=1 if stopped or FAILING.intersection(outcomes.values()) else 0,
        duration_s=float(duration) if isinstance(duration, int | float) else 0.0,
        timed_out=end == "timeout",
        limit_hit="timeout" if end == "timeout" else None,
        log_tail="\n".join([str(answer.get("log") or ""), *notes]).strip(),
        stopped_early=stopped,
        runner="warm",
    )
