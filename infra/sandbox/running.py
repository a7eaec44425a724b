"""Process groups of sandboxed commands now running, and the campaign-wide stop request.

Backends register each command's process group while it runs; a clean stop (Ctrl-C,
SIGTERM) calls :func:`request_stop`, which kills every registered group so running tests end
at once, and the repair loop checks :func:`stop_requested` before it starts new work.

A process killed with ``kill -9`` cleans nothing up, so the groups can also be written to a
ledger file (:func:`keep_ledger`, set by the CLI): the next start reads the ledgers of dead
runs and kills what is left of their groups (:func:`reap_ledger`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

_groups: dict[int, int | None] = {}  # pgid -> start time of its leader (clock ticks)
_lock = threading.Lock()
_stop = threading.Event()
_ledger: Path | None = None


@contextlib.contextmanager
def tracked(pgid: int) -> Iterator[None]:
    """Register ``pgid`` for the duration of the block (killed if a stop is requested)."""
    started = process_start(pgid)
    with _lock:
        _groups[pgid] = started
        stopping = _stop.is_set()
        _write_ledger()
    try:
        if stopping:  # started after the stop: do not let it run
            kill(pgid)
        yield
    finally:
        with _lock:
            _groups.pop(pgid, None)
            _write_ledger()


def kill(pgid: int) -> None:
    """SIGKILL one process group; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """True while a process ``pid`` exists (owned by anyone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


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


# ------------------------------------------------------------------ after kill -9


def keep_ledger(path: Path | None) -> None:
    """Write the running groups to ``path`` whenever they change (None: stop writing)."""
    global _ledger
    with _lock:
        _ledger = path
        _write_ledger()


def _write_ledger() -> None:
    # Called with _lock held. Atomic replace: a reader never sees half a file.
    if _ledger is None:
        return
    tmp = _ledger.with_name(_ledger.name + ".tmp")
    tmp.write_text(json.dumps([[g, s] for g, s in _groups.items()]))
    tmp.replace(_ledger)


def reap_ledger(path: Path) -> int:
    """Kill what is left of the groups a dead run's ledger lists; returns processes killed.

    Only processes that are really those groups' are killed: same process group and started
    no earlier than the group's leader (a pid reused later by someone else is left alone).
    """
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    wanted = {int(g): (int(s) if s is not None else None) for g, s in entries}
    killed = 0
    for pid, pgrp, start in _processes():
        if pgrp in wanted:
            since = wanted[pgrp]
            if since is None or start >= since:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
    return killed


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onwards), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), None when there is no such process.

    Together with the pid it names one process: pids are reused, start times are not.
    """
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def _processes() -> Iterator[tuple[int, int, int]]:
    """(pid, process group, start time) of every process we can see."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields:
                yield int(entry.name), int(fields[2]), int(fields[19])
