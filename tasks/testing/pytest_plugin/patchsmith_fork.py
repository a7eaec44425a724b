"""The fork server the warm runners share: one child per candidate, answers over a socket.

``patchsmith_warm`` (a pytest session), ``patchsmith_warm_script`` (a ``python FILE``
command) and ``patchsmith_warm_unittest`` (``python -m unittest``) serve the same protocol
to patchsmith (see ``patchsmith_warm``'s docstring) and differ only in what a child runs.
Here: a candidate's files applied in memory (modules already imported re-executed, the
rest served to imports), the fork with its deadlines, the events a child reports, and the
serving loop.

Standard library only, Python >= 3.8: this runs under the repository's Python, inside the
sandbox, possibly without pytest.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable

FD_ENV = "PATCHSMITH_WARM_FD"
SWEEP_ENV = "PATCHSMITH_WARM_SWEEP"  # set only inside a PID namespace of our own
GRACE_S = 2.0
LOG_LIMIT = 4000
LINE_LIMIT = 64 * 1024 * 1024


class Source(importlib.abc.SourceLoader):
    """Loads one module from given text (a candidate's version of a file not imported yet)."""

    def __init__(self, path: str, text: str) -> None:
        self.path, self.text = path, text

    def get_filename(self, fullname: str) -> str:
        return self.path

    def get_data(self, path: str) -> bytes:
        if path != self.path:
            raise OSError(path)
        return self.text.encode("utf-8")

    def path_stats(self, path: str) -> dict[str, float]:
        raise OSError("no bytecode cache for a candidate's source")


class Overrides(importlib.abc.MetaPathFinder):
    """Imports of the files in ``texts`` (real path -> text) get that text instead."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin:
            return None
        text = self.texts.get(os.path.realpath(spec.origin))
        if text is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=Source(spec.origin, text),
            submodule_search_locations=spec.submodule_search_locations,
        )  # fmt: skip


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _module_file(module: object) -> str | None:
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return None
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return None


def repo_modules(root: str) -> list[tuple[object, str]]:
    """(module, real path) of every imported module whose file is under ``root``."""
    found: list[tuple[object, str]] = []
    for module in list(sys.modules.values()):
        path = _module_file(module)
        if path and _under(path, root):
            found.append((module, path))
    return found


def apply_files(files: dict[str, str], root: str, repo: list[tuple[object, str]]) -> None:
    """The candidate's files, in this (forked) process only: a module already imported is
    re-executed from its new source in its own namespace, and names other repository
    modules bound to its old objects (``from m import f``) are rebound to the new ones; a
    module not imported yet is served from the new source when it is. ``repo`` is the
    session's repository modules, found once (resolving every path costs milliseconds)."""
    loaded: dict[str, list[object]] = {}
    for module, path in repo:
        loaded.setdefault(path, []).append(module)
    pending: dict[str, str] = {}
    swap: dict[int, tuple[object, object]] = {}
    for rel, text in files.items():
        path = os.path.realpath(os.path.join(root, rel))
        code = compile(text, path, "exec", dont_inherit=True)
        modules = loaded.get(path)
        if not modules:
            pending[path] = text
            continue
        for module in modules:
            namespace = module.__dict__
            old = dict(namespace)
            exec(code, namespace)
            for key, before in old.items():
                after = namespace.get(key, before)
                if after is not before and not key.startswith("__"):
                    swap[id(before)] = (before, after)
    if pending:
        sys.meta_path.insert(0, Overrides(pending))
    if not swap:
        return
    for module, _ in repo:
        namespace = module.__dict__
        for key, value in list(namespace.items()):
            hit = swap.get(id(value))
            if hit is not None and hit[0] is value:
                namespace[key] = hit[1]


class Events:
    """The child's side of its pipe: one JSON line per event."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, **event: object) -> None:
        data = (json.dumps(event) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data) :]


class Lines:
    """Newline-delimited reads from a file descriptor, bounded per line."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def read(self, deadline: float | None) -> bytes | None:
        """The next line; None at EOF; b"" when the deadline passed first."""
        while b"\n" not in self.buf:
            wait = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            ready, _, _ = select.select([self.fd], [], [], wait)
            if not ready:
                return b""
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buf += chunk
            if len(self.buf) > LINE_LIMIT:
                return None
        line, _, self.buf = self.buf.partition(b"\n")
        return line


def ancestors() -> set[int]:
    """This process, its ancestors, and PID 1: what a sweep must not kill."""
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids | {1}


def sweep(keep: set[int]) -> None:
    """Kill every other process in this PID namespace (what a test left behind, even ones
    that left our process group). Only with SWEEP_ENV: the sandbox has a namespace of its own."""
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in keep:
            with contextlib.suppress(OSError):
                os.kill(int(name), signal.SIGKILL)


def evaluate(
    request: dict,
    child: Callable[[Events], None],
    keep: set[int],
    test_grace_s: float | None = None,
) -> dict:
    """Run ``child`` in a fork and collect its events into a result, within the request's
    deadlines: the whole run's, and each started test's plus ``test_grace_s`` (default: the
    larger of GRACE_S and half the limit, for a child that enforces the limit itself)."""
    timeout = float(request.get("timeout_s") or 60.0)
    per_test = float(request.get("test_timeout_s") or timeout)
    started = time.monotonic()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the serving loop
        code = 70
        try:
            os.close(r)
            os.close(int(os.environ[FD_ENV]))  # the tests never see patchsmith's socket
            os.setpgid(0, 0)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            child(Events(w))
            code = 0
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    os.close(w)
    outcomes: dict[str, str] = {}
    logs: list[str] = []
    running: str | None = None
    end = "crashed"
    tests_s = None
    durations: dict[str, float] = {}
    deadline = started + timeout
    test_deadline: float | None = None
    lines = Lines(r)
    while True:
        limit = deadline if test_deadline is None else min(deadline, test_deadline)
        line = lines.read(limit)
        if line == b"":
            end = "timeout" if time.monotonic() >= deadline else "test-timeout"
            break
        if line is None:
            break
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if "start" in event:
            running = str(event["start"])
            grace = max(GRACE_S, per_test / 2) if test_grace_s is None else test_grace_s
            test_deadline = time.monotonic() + per_test + grace
        elif "done" in event:
            outcomes[str(event["done"])] = str(event.get("outcome"))
            if isinstance(event.get("s"), (int, float)):
                durations[str(event["done"])] = float(event["s"])
            if event.get("log"):
                logs.append(f"{event['done']}: {event['log']}")
            running, test_deadline = None, None
        elif "setup_error" in event:
            logs.append(str(event["setup_error"]))
        elif event.get("end"):
            end, running, tests_s = "done", None, event.get("tests_s")
            break
    os.close(r)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if os.environ.get(SWEEP_ENV) == "1":
        sweep(keep)
    to_code = getattr(os, "waitstatus_to_exitcode", None)  # Python >= 3.9
    exit_code = to_code(status) if to_code else status
    return {
        "type": "result", "id": request.get("id"), "outcomes": outcomes, "end": end,
        "running": running, "exit": exit_code, "log": "\n".join(logs)[-LOG_LIMIT:],
        "duration_s": round(time.monotonic() - started, 4), "tests_s": tests_s,
        "durations": durations,
    }  # fmt: skip


def serve(fd: int, ready: dict, answer: Callable[[dict], dict]) -> None:
    """Say ``ready`` on the socket ``fd``, then answer each ``run`` request until the input
    ends (or something else arrives)."""
    conn = socket.socket(fileno=fd)

    def send(message: dict) -> None:
        conn.sendall((json.dumps(message) + "\n").encode())

    send(ready)
    lines = Lines(conn.fileno())
    while True:
        line = lines.read(None)
        if not line:
            return
        request = json.loads(line)
        if request.get("type") != "run":
            return
        send(answer(request))
