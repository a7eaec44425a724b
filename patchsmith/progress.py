"""In-process progress events, so a display (the CLI's live table) can follow a campaign.

The flow emits; listeners subscribe. Listeners run on the emitting thread and must be quick.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Listener = Callable[[str, dict[str, Any]], None]

_listeners: list[Listener] = []
_lock = threading.Lock()


def subscribe(listener: Listener) -> Callable[[], None]:
    """Add a listener; returns a function that removes it."""
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def emit(event: str, **data: Any) -> None:
    """Send an event (e.g. ``instance_started``, ``attempt``, ``instance_done``)."""
    with _lock:
        targets = list(_listeners)
    for listener in targets:
        listener(event, data)
