"""Time stamps for log lines."""

from __future__ import annotations

from datetime import datetime, timezone


def stamp(text: str) -> str:
    """``text`` prefixed with today's date in UTC."""
    return f"[{datetime.utcnow():%Y-%m-%d}] {text}"


def utc_offset_label() -> str:
    """The UTC offset label log lines carry (always +0000)."""
    return datetime.now(timezone.utc).strftime("%z")
