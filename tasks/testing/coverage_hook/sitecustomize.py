"""patchsmith: the lines every Python process of a (non-pytest) test command runs.

This directory is bound read-only in the sandbox and put on PYTHONPATH only for a baseline
run of a test command that is not pytest (``python test.py``, ``make test``, a shell
script). Python imports ``sitecustomize`` at start-up, so every interpreter the command
starts (with this PYTHONPATH) begins recording here. It shadows an interpreter's own
``sitecustomize`` for that run only.

Recording starts with a line tracer of the standard library's (``sys.settrace``): it
follows only code under ``PATCHSMITH_LINES_ROOT`` (the workspace) and, when the process
ends normally, writes the lines it saw to ``PATCHSMITH_LINES_DIR/lines.<pid>.json``
(``{"/real/path.py": [1, 2, ...]}``). It needs nothing installed and costs ~15 ms in a small
process, where importing coverage.py costs ~150-200 ms per process. A pure-Python tracer is
~2x slower than coverage.py's C tracer on heavy code, though: once a process has run for
``PATCHSMITH_LINES_SWITCH_S`` seconds (default 2) and coverage.py is importable, the rest
of the run is measured by coverage.py, with the settings file ``PATCHSMITH_COVER_RC``
(data in the report directory, one file per process, one static context). Lines that
frames already running at the switch execute afterwards can be missed (the switch is
the thread's, not theirs): coverage after it is of the calls made from then on.
Patchsmith reads both and takes their union. Standard library only until coverage.py is
imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any


def _start() -> None:
    out = os.environ.get("PATCHSMITH_LINES_DIR")
    root = os.environ.get("PATCHSMITH_LINES_ROOT")
    if not out or not root:
        return
    import atexit
    import threading
    import time

    prefix = root.rstrip(os.sep) + os.sep
    switch_after = float(os.environ.get("PATCHSMITH_LINES_SWITCH_S") or 2.0)
    rc = os.environ.get("PATCHSMITH_COVER_RC")
    deadline = time.perf_counter() + switch_after
    now = time.perf_counter
    lines: dict[str, set[int]] = {}  # real path -> line numbers
    followed: dict[str, str | None] = {}  # code's file name -> its real path under the root

    state: dict[str, Any] = {"coverage": None, "switched": False}

    def under(name: str) -> str | None:
        if name in followed:
            return followed[name]
        real = None if name.startswith("<") else os.path.realpath(name)  # <frozen ...>, <string>
        followed[name] = real if real is not None and real.startswith(prefix) else None
        return followed[name]

    def switch() -> None:
        state["switched"] = True
        if not rc:
            return
        try:
            import coverage
        except ImportError:
            return  # keep tracing here: slower, still complete
        cov = coverage.Coverage(config_file=rc)
        cov.start()  # this thread and threads started from now on
        state["coverage"] = cov

    def tracer(frame: Any, event: str, arg: object) -> Callable[..., Any] | None:
        if not state["switched"] and now() > deadline:
            switch()  # coverage.py takes the calls from the next one on
        path = under(frame.f_code.co_filename)
        if path is None:
            return None
        seen = lines.get(path)
        if seen is None:
            seen = lines[path] = set()
        add = seen.add

        def local(frame: Any, event: str, arg: object) -> Callable[..., Any]:
            if event == "line":
                add(frame.f_lineno)
            return local

        return local

    def write() -> None:
        sys.settrace(None)
        cov = state["coverage"]
        if cov is not None:
            cov.stop()
            cov.save()
        import json

        data = {name: sorted(seen) for name, seen in lines.items() if seen}
        path = os.path.join(out, f"lines.{os.getpid()}.json")
        try:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
        except OSError as exc:
            sys.stderr.write(f"patchsmith: could not write {path}: {exc}\n")

    atexit.register(write)
    threading.settrace(tracer)
    sys.settrace(tracer)


_start()
