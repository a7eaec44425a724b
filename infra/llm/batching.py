"""Gather concurrent calls from many threads into one batched call.

Parallel tasks in one worker process each call ``backend.complete([request])``; running
them one at a time wastes the model. ``MicroBatcher`` lets the first waiting caller lead:
it waits up to ``max_wait_s`` for others to join (or until ``max_batch`` requests are
queued), runs one batched call for everybody, and hands each caller its own results.
No background thread: a caller's thread does the work, so nothing outlives the callers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass
class _Slot(Generic[Req, Res]):
    request: Req
    done: bool = False
    result: Res | None = None
    error: BaseException | None = None


class MicroBatcher(Generic[Req, Res]):
    """Runs ``fn`` on batches of requests collected from concurrent callers.

    ``fn`` gets a list of requests and must return one result per request, in order. An
    exception from ``fn`` is raised in every caller whose requests were in that batch.
    """

    def __init__(
        self, fn: Callable[[list[Req]], list[Res]], *, max_batch: int = 16, max_wait_s: float = 0.01
    ) -> None:
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError("max_batch must be >= 1 and max_wait_s >= 0")
        self._fn = fn
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._queue: list[_Slot[Req, Res]] = []
        self._leader = False
        self.batch_sizes: list[int] = []
        """Size of every batched call made so far (for tests and benchmarks)."""

    def submit(self, requests: list[Req]) -> list[Res]:
        """Results for ``requests``, computed in one or more shared batches."""
        slots = [_Slot[Req, Res](request=r) for r in requests]
        with self._cond:
            self._queue.extend(slots)
            self._cond.notify_all()
        while True:
            with self._cond:
                while not all(s.done for s in slots) and self._leader:
                    self._cond.wait()
                if all(s.done for s in slots):
                    break
                self._leader = True
            self._lead()
        for s in slots:
            if s.error is not None:
                raise s.error
        return [s.result for s in slots]  # type: ignore[misc]

    def _lead(self) -> None:
        batch: list[_Slot[Req, Res]] = []
        try:
            deadline = time.monotonic() + self._max_wait_s
            with self._cond:
                while len(self._queue) < self._max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
            if batch:
                self._run(batch)
        finally:
            with self._cond:
                for s in batch:
                    s.done = True
                self._leader = False
                self._cond.notify_all()

    def _run(self, batch: list[_Slot[Req, Res]]) -> None:
        self.batch_sizes.append(len(batch))
        try:
            results = self._fn([s.request for s in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batched call returned {len(results)} results for {len(batch)}")
        except BaseException as exc:
            for s in batch:
                s.error = exc
            if not isinstance(exc, Exception):  # KeyboardInterrupt stops the leader too
                raise
            return
        for s, r in zip(batch, results, strict=True):
            s.result = r
