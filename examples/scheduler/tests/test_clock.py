import datetime

from scheduler.clock import now_utc, seconds_until


def test_now_is_aware_utc():
    assert now_utc().utcoffset() == datetime.timedelta(0)


def test_seconds_until_a_moment_an_hour_away():
    later = now_utc() + datetime.timedelta(hours=1)
    assert 3590 < seconds_until(later) <= 3600
