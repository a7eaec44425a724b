"""Volume discounts and promotional codes."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from invoicing.money import Money


@dataclass(frozen=True)
class Tier:
    """A volume tier: ordering at least ``min_qty`` units gives ``percent`` off."""

    min_qty: int
    percent: Decimal


DEFAULT_TIERS = (
    Tier(10, Decimal("5")),
    Tier(50, Decimal("10")),
    Tier(100, Decimal("15")),
)


def bulk_discount_percent(quantity: int, tiers: tuple[Tier, ...] = DEFAULT_TIERS) -> Decimal:
    """Best discount percentage reached by ``quantity`` (0 when below every tier)."""
    best = Decimal(0)
    for tier in tiers:
        if quantity > tier.min_qty:
            best = max(best, tier.percent)
    return best


def apply_percent(amount: Money, percent: Decimal) -> Money:
    """``amount`` reduced by ``percent`` per cent."""
    if not Decimal(0) <= percent <= Decimal(100):
        raise ValueError(f"discount out of range: {percent}%")
    return amount * (1 - percent / 100)


@dataclass(frozen=True)
class PromoCode:
    """A promotional code: a fixed amount off orders of at least ``min_order``."""

    code: str
    amount_off: Money
    min_order: Money

    def applies_to(self, order_total: Money) -> bool:
        return order_total >= self.min_order

    def apply(self, order_total: Money) -> Money:
        """The order total after the code; never below zero."""
        if not self.applies_to(order_total):
            return order_total
        return max(order_total - self.amount_off, Money.zero(order_total.currency))
