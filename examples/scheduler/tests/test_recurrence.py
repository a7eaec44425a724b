from datetime import date

import pytest

from scheduler.recurrence import Rule, next_occurrence, occurrences


def test_rule_must_be_finite():
    with pytest.raises(ValueError):
        Rule(date(2024, 1, 1))
    with pytest.raises(ValueError):
        Rule(date(2024, 1, 1), interval=0, count=3)


def test_daily_with_count():
    rule = Rule(date(2024, 2, 27), "daily", count=4)
    assert occurrences(rule) == [date(2024, 2, 27), date(2024, 2, 28),
                                 date(2024, 2, 29), date(2024, 3, 1)]


def test_weekly_until_between_occurrences():
    rule = Rule(date(2024, 1, 1), "weekly", until=date(2024, 1, 20))
    assert occurrences(rule) == [date(2024, 1, 1), date(2024, 1, 8), date(2024, 1, 15)]


def test_until_is_inclusive():
    rule = Rule(date(2024, 1, 1), "weekly", until=date(2024, 1, 15))
    assert occurrences(rule) == [date(2024, 1, 1), date(2024, 1, 8), date(2024, 1, 15)]


def test_single_day_series():
    rule = Rule(date(2024, 6, 3), "daily", until=date(2024, 6, 3))
    assert occurrences(rule) == [date(2024, 6, 3)]


def test_every_second_week_until_last_meeting():
    rule = Rule(date(2024, 3, 4), "weekly", interval=2, until=date(2024, 4, 1))
    assert occurrences(rule) == [date(2024, 3, 4), date(2024, 3, 18), date(2024, 4, 1)]


def test_count_and_until_together():
    rule = Rule(date(2024, 1, 1), "daily", until=date(2024, 1, 31), count=2)
    assert occurrences(rule) == [date(2024, 1, 1), date(2024, 1, 2)]


def test_monthly_mid_month():
    rule = Rule(date(2024, 11, 15), "monthly", count=3)
    assert occurrences(rule) == [date(2024, 11, 15), date(2024, 12, 15), date(2025, 1, 15)]


def test_next_occurrence():
    rule = Rule(date(2024, 1, 1), "weekly", count=3)
    assert next_occurrence(rule, date(2024, 1, 3)) == date(2024, 1, 8)
    assert next_occurrence(rule, date(2024, 1, 15)) is None
