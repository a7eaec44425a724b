from datetime import datetime

import pytest

from scheduler.capacity import Overbooked, Room
from scheduler.interval import Interval


def slot(h1: int, h2: int, m1: int = 0, m2: int = 0) -> Interval:
    return Interval(datetime(2024, 5, 6, h1, m1), datetime(2024, 5, 6, h2, m2))


def test_occupancy_counts_overlapping_bookings():
    room = Room("Ada", capacity=10)
    room.book("team-a", slot(9, 11), seats=4)
    room.book("team-b", slot(10, 12), seats=3)
    assert room.occupancy(slot(9, 10)) == 4
    assert room.occupancy(slot(10, 11)) == 7
    assert room.occupancy(slot(8, 13)) == 7
    assert room.free_seats(slot(11, 12)) == 7


def test_back_to_back_bookings_do_not_add_up():
    room = Room("Ada", capacity=6)
    room.book("early", slot(9, 10), seats=5)
    room.book("late", slot(10, 11), seats=5)
    assert room.occupancy(slot(9, 11)) == 5


def test_bookings_outside_the_slot_are_ignored():
    room = Room("Ada", capacity=6)
    room.book("morning", slot(8, 9, m2=15), seats=3)
    room.book("late", slot(9, 11, m1=45), seats=3)
    assert room.occupancy(slot(9, 10)) == 3
    assert room.occupancy(slot(12, 13)) == 0


def test_booking_the_last_seats():
    room = Room("Turing", capacity=8)
    room.book("standup", slot(9, 10), seats=5)
    room.book("pairing", slot(9, 10), seats=3)
    assert room.free_seats(slot(9, 10)) == 0


def test_single_booking_filling_the_room():
    room = Room("Hopper", capacity=12)
    booking = room.book("all-hands", slot(14, 15), seats=12)
    assert booking.seats == 12
    assert room.occupancy(slot(14, 15)) == 12


def test_overbooking_is_refused():
    room = Room("Turing", capacity=8)
    room.book("standup", slot(9, 10), seats=6)
    with pytest.raises(Overbooked, match="only 2 seats left"):
        room.book("review", slot(9, 10, m1=30), seats=3)
    assert len(room.bookings) == 1


def test_invalid_seats_and_cancel():
    room = Room("Ada", capacity=4)
    with pytest.raises(ValueError):
        room.book("nobody", slot(9, 10), seats=0)
    room.book("x", slot(9, 10))
    room.book("x", slot(11, 12))
    room.book("y", slot(11, 12))
    assert room.cancel("x") == 2
    assert [b.who for b in room.bookings] == ["y"]
