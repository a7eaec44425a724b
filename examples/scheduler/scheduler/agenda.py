"""A person's agenda: busy intervals and the free slots between them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduler.interval import Interval, merge


@dataclass
class Agenda:
    """Busy time of one person."""

    owner: str
    busy: list[Interval] = field(default_factory=list)

    def block(self, start: datetime, end: datetime) -> None:
        self.busy.append(Interval(start, end))

    def is_free(self, slot: Interval) -> bool:
        return not any(slot.overlaps(b) for b in self.busy)

    def free_slots(
        self, window: Interval, min_length: timedelta = timedelta(minutes=15)
    ) -> list[Interval]:
        """Free intervals inside ``window`` lasting at least ``min_length``."""
        cursor = window.start
        slots: list[Interval] = []
        for b in merge(self.busy):
            if b.end <= window.start or b.start >= window.end:
                continue
            if b.start - cursor >= min_length:
                slots.append(Interval(cursor, b.start))
            cursor = max(cursor, b.end)
        return slots


def common_free_slots(
    agendas: list[Agenda], window: Interval, min_length: timedelta
) -> list[Interval]:
    """Slots of at least ``min_length`` in ``window`` where everybody is free."""
    everyone = Agenda("everyone", [b for a in agendas for b in a.busy])
    return everyone.free_slots(window, min_length)
