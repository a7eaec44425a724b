"""Lines of a customer statement."""

from __future__ import annotations

from decimal import Decimal

from invoicing.fmt import legacy_format
from invoicing.money import Money


def item_line(label: str, price: Money) -> str:
    return f"{label}: {legacy_format(price.amount)}"


def total_line(total: Money) -> str:
    return f"Total: {legacy_format(total.amount)}"


def tax_line(tax: Decimal, currency: str) -> str:
    return f"Tax ({currency}): {legacy_format(tax)}"
