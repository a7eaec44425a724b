from datetime import date

from scheduler.recurrence import Rule, add_months, occurrences


def test_add_months_simple():
    assert add_months(date(2024, 1, 10), 1) == date(2024, 2, 10)
    assert add_months(date(2024, 11, 10), 3) == date(2025, 2, 10)
    assert add_months(date(2024, 5, 20), 0) == date(2024, 5, 20)


def test_add_months_clamps_to_month_end():
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2023, 1, 31), 1) == date(2023, 2, 28)
    assert add_months(date(2024, 3, 31), 1) == date(2024, 4, 30)


def test_month_end_series_keeps_its_day_when_possible():
    rule = Rule(date(2024, 1, 31), "monthly", count=4)
    assert occurrences(rule) == [date(2024, 1, 31), date(2024, 2, 29),
                                 date(2024, 3, 31), date(2024, 4, 30)]


def test_quarterly_series():
    rule = Rule(date(2024, 2, 1), "monthly", interval=3, count=4)
    assert occurrences(rule) == [date(2024, 2, 1), date(2024, 5, 1),
                                 date(2024, 8, 1), date(2024, 11, 1)]
