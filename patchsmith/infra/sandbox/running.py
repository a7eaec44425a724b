"""Process groups of sandboxed commands now running, and the campaign-wide stop request.

Backends register each command's process group while it runs; a clean stop (Ctrl-C,
SIGTERM) calls :func:`request_stop`, which kills every registered group so running tests end
at once, and the repair loop checks :func:`stop_requested` before it starts new work.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

_groups: set[int] = set()
_lock = threading.Lock()
_stop = threading.Event()


@contextlib.contextmanager
def tracked(pgid: int) -> Iterator[None]:
    """Register ``pgid`` for the duration of the block (killed if a stop is requested)."""
    with _lock:
        _groups.add(pgid)
        stopping = _stop.is_set()
    try:
        if stopping:  # started after the stop: do not let it run
            kill(pgid)
        yield
    finally:
        with _lock:
            _groups.discard(pgid)


def kill(pgid: int) -> None:
    """SIGKILL one process group; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def kill_all() -> int:
    """SIGKILL every registered group; returns how many there were."""
    with _lock:
        groups = list(_groups)
    for pgid in groups:
        kill(pgid)
    return len(groups)


def request_stop() -> int:
    """Ask the campaign to stop: no new work starts, running commands are killed."""
    _stop.set()
    return kill_all()


def stop_requested() -> bool:
    """True once :func:`request_stop` was called (until :func:`reset`)."""
    return _stop.is_set()


def reset() -> None:
    """Forget an earlier stop request (a new campaign in the same process; tests)."""
    _stop.clear()
