"""Campaign slots: bounded, and served cheapest tier (lowest priority number) first."""

from __future__ import annotations

import threading
import time

import pytest

from patchsmith.tasks.slots import Slots


def _wait_until(cond: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.005)


def test_a_cheaper_waiter_goes_before_one_that_queued_earlier() -> None:
    slots = Slots(1)
    order: list[str] = []
    slots.acquire()

    def take(name: str, priority: int) -> None:
        with slots.hold(priority):
            order.append(name)

    model = threading.Thread(target=take, args=("model tier", 1))
    model.start()
    _wait_until(lambda: slots.waiting() == 1, "the model-tier waiter queued")
    search = threading.Thread(target=take, args=("search tier", 0))
    search.start()
    _wait_until(lambda: slots.waiting() == 2, "the search-tier waiter queued")
    slots.release()
    model.join()
    search.join()
    assert order == ["search tier", "model tier"]


def test_requeue_hands_the_slot_to_a_waiter_and_never_exceeds_the_size() -> None:
    slots = Slots(2)
    inside = 0
    most = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        with slots.hold():
            for tier in (1, 2):
                with lock:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.002)
                with lock:
                    inside -= 1
                slots.requeue(tier)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most <= 2 and slots.waiting() == 0
    slots.acquire()
    slots.acquire()  # both slots are free again
    with pytest.raises(RuntimeError, match="released more often"):
        slots.release()
        slots.release()
        slots.release()


def test_a_campaign_needs_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Slots(0)
