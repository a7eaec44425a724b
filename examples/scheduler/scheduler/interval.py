"""Half-open time intervals ``[start, end)`` over datetimes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable


@dataclass(frozen=True, order=True)
class Interval:
    """A half-open interval: contains ``start`` but not ``end``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"interval ends before it starts: {self.start} > {self.end}")

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def overlaps(self, other: Interval) -> bool:
        """True when the intervals share some time (touching ends do not overlap)."""
        return self.start < other.end and other.start < self.end

    def intersection(self, other: Interval) -> Interval | None:
        """The common part of both intervals, or None when they do not overlap."""
        if not self.overlaps(other):
            return None
        return Interval(max(self.start, other.start), max(self.end, other.end))

    def shift(self, delta: timedelta) -> Interval:
        return Interval(self.start + delta, self.end + delta)


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Union of ``intervals`` as a sorted list of disjoint intervals.

    Touching intervals (one ends when the next starts) are merged too.
    """
    merged: list[Interval] = []
    for iv in sorted(intervals):
        if merged and iv.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Interval(last.start, max(last.end, iv.end))
        else:
            merged.append(iv)
    return merged


def total_duration(intervals: Iterable[Interval]) -> timedelta:
    """Time covered by at least one of ``intervals`` (overlaps counted once)."""
    return sum((iv.duration for iv in merge(intervals)), timedelta())
