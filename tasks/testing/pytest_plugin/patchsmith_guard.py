"""Per-test time limits for pytest runs of untrusted repositories (patchsmith's plugin).

Loaded with ``-p patchsmith_guard`` from a read-only directory on PYTHONPATH. It uses only
the standard library and runs on Python >= 3.8 and old pytest versions, because it runs
under the repository's own interpreter and pytest. Settings come from the environment:

``PATCHSMITH_TEST_TIMEOUT``
    Seconds one test (setup + call, then teardown on its own) may take. A SIGALRM timer in the main
    thread raises :class:`PatchsmithTimeout` in the test, so a pure-Python loop fails that
    test only; its report carries :data:`MARKER`, which patchsmith maps to ``timeout``.
``PATCHSMITH_GUARD_DIR``
    Where to write what survives a killed process: ``current`` (the node id of the test
    running now and its start as a Unix time, tab-separated; empty between tests) and
    ``progress`` (``outcome<TAB>nodeid`` per finished test). When a test cannot be
    interrupted (stuck in C code, SIGALRM ignored or masked), a watchdog thread writes
    ``hung`` (node id, then the main thread's stack) and ends the process with
    :data:`WATCHDOG_EXIT` after a grace period.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
import types

import pytest

MARKER = "patchsmith-guard: test timed out"
WATCHDOG_EXIT = 124
GRACE_FACTOR = 0.5
GRACE_MIN_S = 2.0
CURRENT, PROGRESS, HUNG = "current", "progress", "hung"
DEFER_S = 0.05
_DEFER_MODULES = frozenset({"coverage", "pytest_cov", __name__})


class PatchsmithTimeout(BaseException):
    """Raised in a test that ran past its per-test limit.

    A BaseException, so that ``except Exception`` inside the looping code cannot swallow it.
    """


def _float_env(name: str) -> float:
    try:
        return max(float(os.environ.get(name, "") or 0.0), 0.0)
    except ValueError:
        return 0.0


class Guard:
    """State of the plugin: the running test, its deadline, the watchdog."""

    def __init__(self, limit: float, out: str | None) -> None:
        self.limit = limit
        self.out = out
        self.nodeid = ""
        self.deadline = 0.0  # monotonic; 0 = no test running
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.can_alarm = limit > 0 and hasattr(signal, "setitimer")
        self.can_alarm = self.can_alarm and threading.current_thread() is threading.main_thread()
        if limit > 0:
            t = threading.Thread(target=self._watch, name="patchsmith-watchdog", daemon=True)
            t.start()

    # ------------------------------------------------------------ files
    def _write(self, name: str, text: str, mode: str = "w") -> None:
        if not self.out:
            return
        try:
            with open(os.path.join(self.out, name), mode) as fh:
                fh.write(text)
        except OSError:
            return  # the tested code may have removed the directory: the run goes on

    # ------------------------------------------------------------ per test
    def start(self, nodeid: str) -> None:
        with self.lock:
            self.nodeid = nodeid
            self.deadline = time.monotonic() + self.limit if self.limit > 0 else 0.0
        self._write(CURRENT, f"{nodeid}\t{time.time():f}")
        self.wake.set()

    def finish(self) -> None:
        with self.lock:
            self.nodeid, self.deadline = "", 0.0
        self._write(CURRENT, "")

    def record(self, nodeid: str, outcome: str) -> None:
        self._write(PROGRESS, f"{outcome}\t{nodeid}\n", "a")

    # ------------------------------------------------------------ SIGALRM
    def _alarm(self, signum: int, frame: types.FrameType | None) -> None:
        f = frame
        while f is not None:
            # Never raise inside coverage's bookkeeping (pytest-cov switches contexts in the
            # same hooks): an exception there breaks its database. Try again a bit later.
            name = str(f.f_globals.get("__name__", ""))
            if name.split(".", 1)[0] in _DEFER_MODULES:
                signal.setitimer(signal.ITIMER_REAL, DEFER_S)
                return
            f = f.f_back
        raise PatchsmithTimeout(f"{MARKER} after {self.limit:g}s (per-test limit)")

    def arm(self, when: str) -> None:
        if not self.deadline:
            return
        if when == "teardown":  # its own limit: cleanup still runs after a timed-out call
            with self.lock:
                self.deadline = time.monotonic() + self.limit
        if not self.can_alarm:
            return
        left = max(self.deadline - time.monotonic(), 0.001)
        signal.signal(signal.SIGALRM, self._alarm)  # again each time: a test may replace it
        signal.setitimer(signal.ITIMER_REAL, left)

    def disarm(self) -> None:
        if self.can_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)

    # ------------------------------------------------------------ watchdog
    def _watch(self) -> None:
        grace = max(GRACE_MIN_S, GRACE_FACTOR * self.limit)
        main = threading.main_thread().ident
        while True:
            with self.lock:
                nodeid, deadline = self.nodeid, self.deadline
            if not deadline:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            left = deadline + grace - time.monotonic()
            if left > 0:
                time.sleep(min(left, 1.0))
                continue
            frame = sys._current_frames().get(main) if main is not None else None
            stack = "".join(traceback.format_stack(frame)[-40:]) if frame is not None else ""
            text = f"{MARKER} after {self.limit:g}s (watchdog: the test could not be interrupted)"
            self._write(HUNG, f"{nodeid}\n{text}\n{stack}")
            self.record(nodeid, "timeout")
            os._exit(WATCHDOG_EXIT)


_guard: Guard | None = None


def pytest_configure(config: object) -> None:
    global _guard
    _guard = Guard(_float_env("PATCHSMITH_TEST_TIMEOUT"), os.environ.get("PATCHSMITH_GUARD_DIR"))


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    if _guard is not None:
        _guard.start(nodeid)


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    if _guard is not None:
        _guard.finish()


def _phase(when: str):  # type: ignore[no-untyped-def]
    if _guard is not None:
        _guard.arm(when)
    try:
        yield
    finally:
        if _guard is not None:
            _guard.disarm()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: object):  # type: ignore[no-untyped-def]
    yield from _phase("setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: object):  # type: ignore[no-untyped-def]
    yield from _phase("call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: object, nextitem: object):  # type: ignore[no-untyped-def]
    yield from _phase("teardown")


def pytest_runtest_logreport(report: object) -> None:
    if _guard is None:
        return
    when = getattr(report, "when", "")
    outcome = getattr(report, "outcome", "")
    nodeid = getattr(report, "nodeid", "")
    if outcome == "passed" and when != "call":
        return
    if outcome == "failed":
        text = str(getattr(report, "longrepr", "") or "")
        if MARKER in text:
            outcome = "timeout"
        elif when != "call":
            outcome = "error"
    _guard.record(nodeid, outcome)
