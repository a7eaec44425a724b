"""Campaign slots handed out cheapest tier first.

A campaign runs ``concurrency`` instances at once. With a plain semaphore, two instances
that reach a slow model tier hold both slots for minutes while instances that search alone
would fix in seconds have not even started. ``Slots`` keeps the count but serves waiters by
priority: an instance starts at priority 0 and, before each later tier, gives its slot back
and queues again at that tier's index (``requeue``). Waiters for tier 0 (unstarted
instances) therefore go before waiters for tier 1, and so on: the cascade runs breadth-first
over the campaign, every cheap fix lands before model time is spent, and slow tiers still
run as soon as nothing cheaper is waiting. Ties go first come, first served.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Slots:
    """``size`` slots; waiters with a lower priority number are served first."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"slots: size must be at least 1, got {size}")
        self.size = size
        self._free = size
        self._waiting: list[tuple[int, int]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()

    def acquire(self, priority: int = 0) -> float:
        """Wait for a slot; returns the seconds waited."""
        t0 = time.monotonic()
        with self._cond:
            me = (priority, next(self._order))
            heapq.heappush(self._waiting, me)
            while not (self._free and self._waiting[0] == me):
                self._cond.wait()
            heapq.heappop(self._waiting)
            self._free -= 1
            self._cond.notify_all()  # the next waiter may fit too
        return time.monotonic() - t0

    def release(self) -> None:
        with self._cond:
            if self._free >= self.size:
                raise RuntimeError("slots: released more often than acquired")
            self._free += 1
            self._cond.notify_all()

    @contextmanager
    def hold(self, priority: int = 0) -> Iterator[None]:
        """Hold a slot for the block (also when ``requeue`` swapped it meanwhile)."""
        self.acquire(priority)
        try:
            yield
        finally:
            self.release()

    def requeue(self, priority: int) -> float:
        """Give the held slot back and wait for one at ``priority``; returns seconds waited.

        The caller holds a slot before and after (inside ``hold``)."""
        self.release()
        return self.acquire(priority)

    def waiting(self) -> int:
        """How many callers wait for a slot now."""
        with self._cond:
            return len(self._waiting)
