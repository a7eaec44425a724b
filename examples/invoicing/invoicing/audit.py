"""Audit trail lines: what happened to an invoice, stamped in UTC."""

from __future__ import annotations

from datetime import datetime


def audit_line(event: str) -> str:
    """``event`` stamped with the current UTC time to the minute."""
    return f"{datetime.utcnow():%Y-%m-%dT%H:%M}Z {event}"
