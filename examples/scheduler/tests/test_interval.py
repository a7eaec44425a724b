from datetime import datetime, timedelta

import pytest

from scheduler.interval import Interval, merge, total_duration


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 5, 6, hour, minute)


def iv(h1: int, h2: int) -> Interval:
    return Interval(at(h1), at(h2))


def test_end_before_start_is_rejected():
    with pytest.raises(ValueError):
        Interval(at(10), at(9))


def test_contains_is_half_open():
    slot = iv(9, 10)
    assert slot.contains(at(9))
    assert slot.contains(at(9, 59))
    assert not slot.contains(at(10))


def test_overlaps():
    assert iv(9, 11).overlaps(iv(10, 12))
    assert iv(10, 12).overlaps(iv(9, 11))
    assert iv(9, 12).overlaps(iv(10, 11))
    assert not iv(9, 10).overlaps(iv(10, 11))


def test_intersection_of_partial_overlap():
    assert iv(9, 11).intersection(iv(10, 12)) == iv(10, 11)
    assert iv(10, 12).intersection(iv(9, 11)) == iv(10, 11)


def test_intersection_with_contained_interval():
    assert iv(8, 18).intersection(iv(12, 13)) == iv(12, 13)
    assert iv(12, 13).intersection(iv(8, 18)) == iv(12, 13)


def test_intersection_of_disjoint_or_touching():
    assert iv(9, 10).intersection(iv(11, 12)) is None
    assert iv(9, 10).intersection(iv(10, 11)) is None


def test_shift_and_duration():
    moved = iv(9, 10).shift(timedelta(minutes=30))
    assert moved == Interval(at(9, 30), at(10, 30))
    assert moved.duration == timedelta(hours=1)


def test_merge_overlapping_and_touching():
    assert merge([iv(13, 14), iv(9, 11), iv(10, 12), iv(12, 13)]) == [iv(9, 14)]
    assert merge([iv(9, 10), iv(11, 12)]) == [iv(9, 10), iv(11, 12)]
    assert merge([iv(9, 17), iv(10, 11)]) == [iv(9, 17)]


def test_total_duration_counts_overlap_once():
    assert total_duration([iv(9, 11), iv(10, 12), iv(14, 15)]) == timedelta(hours=4)
    assert total_duration([]) == timedelta()
