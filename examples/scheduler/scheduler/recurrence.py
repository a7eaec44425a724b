"""Recurring events: daily, weekly and monthly rules expanded into dates."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

Frequency = Literal["daily", "weekly", "monthly"]


@dataclass(frozen=True)
class Rule:
    """Repeat every ``interval`` days/weeks/months from ``start``.

    ``until`` is inclusive: an occurrence falling on that date is part of the series.
    ``count`` caps the number of occurrences.
    """

    start: date
    frequency: Frequency = "weekly"
    interval: int = 1
    until: date | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise ValueError("interval must be at least 1")
        if self.until is None and self.count is None:
            raise ValueError("a rule needs 'until' or 'count' to be finite")


def add_months(day: date, months: int) -> date:
    """Same day-of-month ``months`` later, clamped to the month's last day."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, day.day)


def _nth(rule: Rule, k: int) -> date:
    if rule.frequency == "daily":
        return rule.start + timedelta(days=k * rule.interval)
    if rule.frequency == "weekly":
        return rule.start + timedelta(weeks=k * rule.interval)
    return add_months(rule.start, k * rule.interval)


def occurrences(rule: Rule) -> list[date]:
    """All dates of the series, in order."""
    out: list[date] = []
    k = 0
    while True:
        current = _nth(rule, k)
        if rule.until is not None and current >= rule.until:
            break
        if rule.count is not None and len(out) >= rule.count:
            break
        out.append(current)
        k += 1
    return out


def next_occurrence(rule: Rule, after: date) -> date | None:
    """First occurrence strictly after ``after``, or None when the series has ended."""
    for day in occurrences(rule):
        if day > after:
            return day
    return None
