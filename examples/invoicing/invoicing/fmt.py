"""Formatting amounts for documents.

``legacy_format`` is the old API: it assumed every amount was in euros. New code calls
``format_amount(amount, currency=...)`` with the currency of the amount.
"""

from __future__ import annotations

from decimal import Decimal

SIGNS = {"EUR": "€", "USD": "$", "GBP": "£"}


def format_amount(amount: Decimal, currency: str) -> str:
    """``amount`` with its currency sign and two decimals."""
    sign = SIGNS.get(currency, f"{currency} ")
    return f"{sign}{amount:.2f}"


def legacy_format(amount: Decimal) -> str:
    """Deprecated: formats every amount as euros. Use format_amount(amount, currency=...)."""
    return format_amount(amount, "EUR")
