"""patchsmith's warm test runner: one pytest session, a forked child per candidate.

Loaded with ``-p patchsmith_warm`` (beside ``-p patchsmith_guard``) into the repository's
own pytest, inside the sandbox, with ``PATCHSMITH_WARM_FD`` naming a socket to patchsmith.
pytest starts, loads the plugins and collects the test command's tests once; instead of
running them, this plugin serves requests on that socket. Each request runs in a fresh
``fork()`` of the collected session, so nothing a candidate or a test does (``os._exit``,
an endless loop, a fork bomb, ``sys.modules`` or signal-handler tampering) reaches the
session that serves the next one.

In the child, the candidate's files are applied in memory: a module already imported is
re-executed from its new source in its own namespace, and names other repository modules
bound to its old objects (``from m import f``) are rebound to the new ones; a module not
imported yet is served from the new source when it is. The targets run first, in order,
stopping at the first that does not pass; then, if asked, every other collected test.

Protocol (JSON, one object per line):

- server → patchsmith, once: ``{"type": "ready", "items": [nodeid...], "modules":
  {relpath: name}, "test_files": [relpath...]}``
- patchsmith → server: ``{"type": "run", "id": n, "files": {relpath: text}, "targets":
  [nodeid...], "rest": bool, "timeout_s": s, "test_timeout_s": s}``
- server → patchsmith: ``{"type": "result", "id": n, "outcomes": {nodeid: outcome},
  "end": "done" | "crashed" | "timeout" | "test-timeout", "running": nodeid | null,
  "exit": code, "log": text, "duration_s": s}``
- end of input: the server exits.

Standard library, pytest and ``patchsmith_fork`` (the fork server both warm runners share)
only, Python >= 3.8: this runs under the repository's Python.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import pytest
from patchsmith_fork import (
    FD_ENV,
    LOG_LIMIT,
    Events,
    ancestors,
    apply_files,
    evaluate,
    repo_modules,
    serve,
)

MARKER = "patchsmith-guard: test timed out"  # as in patchsmith_guard


def _outcome(report: object) -> str | None:
    """One phase's report as patchsmith's outcome; None for a setup/teardown that passed."""
    when = getattr(report, "when", "")
    outcome = getattr(report, "outcome", "")
    if outcome == "passed":
        return "passed" if when == "call" else None
    if outcome == "skipped":
        return "skipped"
    text = str(getattr(report, "longreprtext", "") or getattr(report, "longrepr", "") or "")
    if MARKER in text:
        return "timeout"
    return "failed" if when == "call" else "error"


class _Reports:
    def __init__(self, events: Events) -> None:
        self.events = events
        self.outcomes: dict[str, str] = {}
        self.spent: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: object) -> None:
        outcome = _outcome(report)
        nodeid = str(getattr(report, "nodeid", ""))
        self.spent[nodeid] = self.spent.get(nodeid, 0.0) + float(getattr(report, "duration", 0))
        if outcome is None or self.outcomes.get(nodeid, "passed") != "passed":
            return
        self.outcomes[nodeid] = outcome
        log = ""
        if outcome in ("failed", "error", "timeout"):
            log = str(getattr(report, "longreprtext", "") or "")[-LOG_LIMIT:]
        self.events.send(done=nodeid, outcome=outcome, log=log, s=round(self.spent[nodeid], 6))


def _set_test_limit(seconds: object) -> None:
    """This child's per-test limit (patchsmith_guard's), when the request gives one."""
    guard = getattr(sys.modules.get("patchsmith_guard"), "_guard", None)
    if guard is not None and isinstance(seconds, (int, float)) and seconds > 0:
        guard.limit = float(seconds)


def _child(session: pytest.Session, request: dict, root: str, repo: list, events: Events) -> None:
    by_id = {item.nodeid: item for item in session.items}
    _set_test_limit(request.get("test_timeout_s"))
    try:
        apply_files(request.get("files") or {}, root, repo)
    except BaseException:  # the candidate's own error (syntax, import-time): its result
        events.send(setup_error=traceback.format_exc()[-LOG_LIMIT:])
        return
    reports = _Reports(events)
    session.config.pluginmanager.register(reports, "patchsmith-warm-reports")
    targets = [by_id[t] for t in request.get("targets") or []]
    rest = []
    if request.get("rest"):
        chosen = set(request.get("targets") or [])
        rest = [item for item in session.items if item.nodeid not in chosen]
    order = targets + rest
    in_tests = 0.0
    for i, item in enumerate(order):
        nextitem = order[i + 1] if i + 1 < len(order) else None
        events.send(start=item.nodeid)
        t0 = time.perf_counter()
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        in_tests += time.perf_counter() - t0
        if i < len(targets) and reports.outcomes.get(item.nodeid) != "passed":
            break  # a target that does not pass: the verdict is known
    events.send(end=True, tests_s=round(in_tests, 6))


def _prime(root: str) -> None:
    """Fill, once in the session, the caches every child would otherwise fill again: a
    failing test's report walks every module (inspect's module-by-file map), tokenizes
    (its regex compiles on first use) and reads source through linecache."""
    import inspect
    import io
    import linecache
    import tokenize

    inspect.getmodule(sys._getframe())
    list(tokenize.generate_tokens(io.StringIO("x = (1,\n     2)\n").readline))
    for module, _ in repo_modules(root):
        linecache.getlines(getattr(module, "__file__", "") or "")
    try:
        raise AssertionError("patchsmith: priming the report machinery")
    except AssertionError:
        pytest.ExceptionInfo.from_current().getrepr(style="long")


def _serve(session: pytest.Session, fd: int) -> None:
    config = session.config
    where = getattr(config, "rootpath", None) or getattr(config, "rootdir", "")  # pytest < 6.1
    root = os.path.realpath(str(where))
    repo = repo_modules(root)
    modules = {os.path.relpath(path, root): str(getattr(module, "__name__", ""))
               for module, path in repo}  # fmt: skip
    test_files = sorted({os.path.relpath(os.path.realpath(str(item.fspath)), root)
                         for item in session.items})  # fmt: skip
    keep = ancestors()
    _prime(root)
    ready = {"type": "ready", "items": [item.nodeid for item in session.items],
             "modules": modules, "test_files": test_files}  # fmt: skip

    def answer(request: dict) -> dict:
        return evaluate(request, lambda events: _child(session, request, root, repo, events), keep)

    serve(fd, ready, answer)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> object:
    fd = os.environ.get(FD_ENV)
    if not fd:
        return None  # loaded without a socket: pytest runs the tests as usual
    _serve(session, int(fd))
    return True
