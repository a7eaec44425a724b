"""Room bookings with a seat capacity."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from scheduler.interval import Interval


class Overbooked(Exception):
    """Raised when a booking would put more people in a room than it seats."""


@dataclass(frozen=True)
class Booking:
    who: str
    slot: Interval
    seats: int = 1


@dataclass
class Room:
    """A bookable room; bookings may overlap as long as the seats suffice."""

    name: str
    capacity: int
    bookings: list[Booking] = field(default_factory=list)

    def occupancy(self, slot: Interval) -> int:
        """Peak number of seats taken at any moment during ``slot``."""
        events: list[tuple[datetime, int]] = []
        for b in self.bookings:
            if b.slot.overlaps(slot):
                events.append((max(b.slot.start, slot.start), b.seats))
                events.append((min(b.slot.end, slot.end), -b.seats))
        # At equal times, departures (negative) sort before arrivals: a meeting ending
        # at 10:00 frees its seats for one starting at 10:00.
        peak = current = 0
        for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
            current += delta
            peak = max(peak, current)
        return peak

    def free_seats(self, slot: Interval) -> int:
        return self.capacity - self.occupancy(slot)

    def book(self, who: str, slot: Interval, seats: int = 1) -> Booking:
        """Reserve ``seats`` for ``slot`` or raise :class:`Overbooked`."""
        if seats <= 0:
            raise ValueError("seats must be positive")
        if self.occupancy(slot) + seats >= self.capacity:
            raise Overbooked(f"{self.name}: only {self.free_seats(slot)} seats left")
        booking = Booking(who, slot, seats)
        self.bookings.append(booking)
        return booking

    def cancel(self, who: str) -> int:
        """Remove every booking made by ``who``; returns how many were removed."""
        before = len(self.bookings)
        self.bookings = [b for b in self.bookings if b.who != who]
        return before - len(self.bookings)
