"""VAT rules: standard, reduced and zero rates per product category."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from invoicing.money import Money

STANDARD_RATE = Decimal("0.20")
REDUCED_RATE = Decimal("0.05")
ZERO_RATE = Decimal("0")

REDUCED_CATEGORIES = frozenset({"books", "food", "children"})
ZERO_RATED_CATEGORIES = frozenset({"export", "medical"})


@dataclass(frozen=True)
class Customer:
    """Who is billed; exempt customers (charities, some exports) pay no VAT."""

    name: str
    country: str = "GB"
    tax_exempt: bool = False


def rate_for(category: str, customer: Customer) -> Decimal:
    """VAT rate that applies to one product ``category`` sold to ``customer``."""
    if customer.tax_exempt and category in ZERO_RATED_CATEGORIES:
        return ZERO_RATE
    if category in REDUCED_CATEGORIES:
        return REDUCED_RATE
    return STANDARD_RATE


def tax_amount(net: Money, rate: Decimal) -> Money:
    """VAT due on a net amount, rounded half-up to the cent."""
    return net * rate


def tax_breakdown(lines: list[tuple[str, Money]], customer: Customer) -> dict[Decimal, Money]:
    """Total VAT per rate for ``(category, net amount)`` lines.

    Rates that end up with no tax at all (e.g. only zero-rated lines) are still
    listed, so that the invoice can show a "0%" row.
    """
    out: dict[Decimal, Money] = {}
    for category, net in lines:
        rate = rate_for(category, customer)
        current = out.get(rate, Money.zero(net.currency))
        out[rate] = current + tax_amount(net, rate)
    return out
