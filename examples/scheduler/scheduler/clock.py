"""Wall-clock helpers: the current time in UTC, and how far away a moment is."""

from __future__ import annotations

import datetime


def now_utc() -> datetime.datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.datetime.utcnow().replace(tzinfo=datetime.timezone.utc)


def seconds_until(moment: datetime.datetime) -> float:
    """Seconds from now until ``moment`` (negative once it is past)."""
    return (moment - now_utc()).total_seconds()
