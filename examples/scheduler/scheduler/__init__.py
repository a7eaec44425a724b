"""Meeting-room scheduling: intervals, recurring events, capacity, free slots."""

from scheduler.interval import Interval

__all__ = ["Interval"]
