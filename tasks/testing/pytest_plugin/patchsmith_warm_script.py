"""patchsmith's warm runner for ``python FILE [ARGS...]`` test commands: a fork per candidate.

Started, inside the sandbox and under the repository's Python, as ``python
<this file> FILE [ARGS...]`` in place of ``python FILE [ARGS...]``, with
``PATCHSMITH_WARM_FD`` naming a socket to patchsmith. It imports nothing of the repository;
each request forks, and the child runs FILE as ``__main__`` the way ``python FILE`` would
(``sys.argv``, ``sys.path[0]`` the script's directory, ``SystemExit`` codes, tracebacks on
stderr, ``atexit`` handlers), with the candidate's files served to its imports from memory
(``patchsmith_fork.Overrides``). A fork saves the interpreter's start-up and the standard
library's imports of every candidate; the verdict is the child's exit code, one outcome
keyed by the test command, as patchsmith's cold path reports such a command.

The command is one test: its limit is the request's ``test_timeout_s`` exactly (nothing
inside the script enforces one, unlike pytest's guard plugin), its log the last bytes the
script wrote to stdout and stderr (both go to one anonymous file, bounded by the sandbox's
file-size limit).

Protocol: ``patchsmith_warm``'s, with ``items`` = [the command] and ``test_files`` = [FILE].
Standard library only, Python >= 3.8.
"""

from __future__ import annotations

import atexit
import os
import pkgutil  # noqa: F401  runpy.run_path imports it per call: here once, not per fork (~2 ms)
import runpy
import sys
import tempfile
import time
import traceback
from typing import IO

from patchsmith_fork import (
    FD_ENV,
    LOG_LIMIT,
    SWEEP_ENV,
    Events,
    Overrides,
    ancestors,
    evaluate,
    serve,
)

KEY_ENV = "PATCHSMITH_WARM_KEY"
"""The outcome's key: the test command as patchsmith wrote it."""


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _output() -> IO[bytes]:
    """An anonymous file for the script's stdout and stderr (fds 1 and 2)."""
    create = getattr(os, "memfd_create", None)
    if create is not None:
        return os.fdopen(create("patchsmith-warm-output"), "w+b")
    return tempfile.TemporaryFile()


def _tail(out: IO[bytes]) -> str:
    out.seek(0, os.SEEK_END)
    size = out.tell()
    out.seek(max(0, size - LOG_LIMIT))
    return out.read().decode("utf-8", "replace")


def _print_traceback(exc: BaseException) -> None:
    """As ``python FILE`` prints it: from the script's frame on, without runpy's or ours."""
    tb = exc.__traceback__
    while tb is not None and (
        tb.tb_frame.f_code.co_filename in (__file__, runpy.__file__)
        or tb.tb_frame.f_code.co_filename.startswith("<frozen")
    ):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def _run(script: str, args: list[str], files: dict[str, str], root: str) -> int:
    """FILE as ``python FILE`` runs it; its exit code."""
    texts = {os.path.realpath(os.path.join(root, rel)): text for rel, text in files.items()}
    if texts:
        sys.meta_path.insert(0, Overrides(texts))
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException as exc:
        _print_traceback(exc)
        code = 1
    try:
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    return code


def _child(request: dict, key: str, script: str, args: list[str], root: str,
           events: Events) -> None:  # fmt: skip
    for name in (FD_ENV, SWEEP_ENV, KEY_ENV):
        os.environ.pop(name, None)  # the script sees the command's environment
    events.send(start=key)
    out = _output()
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(out.fileno(), 1)
    os.dup2(out.fileno(), 2)
    t0 = time.perf_counter()
    code = _run(script, args, request.get("files") or {}, root)
    spent = time.perf_counter() - t0
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            continue
    outcome = "passed" if code == 0 else "failed"
    log = _tail(out) if code else ""
    events.send(done=key, outcome=outcome, log=log, s=round(spent, 6))
    events.send(end=True, tests_s=round(spent, 6))


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: patchsmith_warm_script.py FILE [ARGS...]")
    script, args = sys.argv[1], sys.argv[2:]
    root = os.path.realpath(os.getcwd())
    key = os.environ.get(KEY_ENV) or " ".join(["python", script, *args])
    relpath = os.path.relpath(os.path.realpath(script), root)
    ready = {"type": "ready", "items": [key], "modules": {}, "test_files": [relpath]}
    keep = ancestors()

    def answer(request: dict) -> dict:
        run = lambda ev: _child(request, key, script, args, root, ev)  # noqa: E731
        return evaluate(request, run, keep, test_grace_s=0.0)

    serve(int(os.environ[FD_ENV]), ready, answer)


if __name__ == "__main__":
    main()
