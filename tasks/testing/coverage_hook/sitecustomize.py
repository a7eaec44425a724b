"""patchsmith: coverage for every Python process a (non-pytest) test command starts.

This directory is bound read-only in the sandbox and put on PYTHONPATH only for a baseline
run of a test command that is not pytest (``python test.py``, ``make test``, a shell
script). Python imports ``sitecustomize`` at start-up, so every interpreter the command
starts (with this PYTHONPATH) begins measuring here, with the settings patchsmith wrote to
``COVERAGE_PROCESS_START`` (data file in the run's report directory, a static context).
It shadows an interpreter's own ``sitecustomize`` for that run only. Standard library only
until coverage is imported; when coverage is not importable by the tested interpreter, the
file named by ``PATCHSMITH_COVER_NOTE`` says so, and localization uses tracebacks only.
"""

import os
import sys


def _start() -> None:
    rc = os.environ.get("COVERAGE_PROCESS_START")
    if not rc:
        return
    try:
        import coverage
    except ImportError:
        note = os.environ.get("PATCHSMITH_COVER_NOTE")
        if note:
            with open(note, "w", encoding="utf-8") as fh:
                fh.write(f"coverage is not importable by {sys.executable}\n")
        return
    coverage.process_startup()


_start()
