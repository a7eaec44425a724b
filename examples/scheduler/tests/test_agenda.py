from datetime import datetime, timedelta

from scheduler.agenda import Agenda, common_free_slots
from scheduler.interval import Interval


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 5, 6, hour, minute)


WORKDAY = Interval(at(9), at(17))
HALF_HOUR = timedelta(minutes=30)


def test_is_free():
    agenda = Agenda("kim")
    agenda.block(at(10), at(11))
    assert agenda.is_free(Interval(at(9), at(10)))
    assert not agenda.is_free(Interval(at(10, 30), at(11, 30)))


def test_empty_agenda_is_free_all_day():
    assert Agenda("kim").free_slots(WORKDAY) == [WORKDAY]


def test_gaps_between_meetings():
    agenda = Agenda("kim")
    agenda.block(at(9), at(10))
    agenda.block(at(12), at(13))
    agenda.block(at(10, 10), at(12))
    agenda.block(at(13), at(17))
    assert agenda.free_slots(WORKDAY, min_length=timedelta(minutes=5)) == [
        Interval(at(10), at(10, 10))]
    assert agenda.free_slots(WORKDAY) == []


def test_free_time_after_last_meeting():
    agenda = Agenda("kim")
    agenda.block(at(9), at(12))
    agenda.block(at(13), at(15))
    assert agenda.free_slots(WORKDAY, HALF_HOUR) == [
        Interval(at(12), at(13)), Interval(at(15), at(17))]


def test_meetings_outside_window_are_ignored():
    agenda = Agenda("kim")
    agenda.block(at(7), at(9, 30))
    agenda.block(at(16, 50), at(18))
    assert agenda.free_slots(WORKDAY, HALF_HOUR) == [Interval(at(9, 30), at(16, 50))]


def test_common_free_slots():
    kim, lee = Agenda("kim"), Agenda("lee")
    kim.block(at(9), at(11))
    lee.block(at(10), at(12))
    lee.block(at(14), at(17))
    assert common_free_slots([kim, lee], WORKDAY, HALF_HOUR) == [Interval(at(12), at(14))]
