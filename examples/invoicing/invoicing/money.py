"""Money values with a fixed number of minor units (cents).

Amounts are stored as :class:`~decimal.Decimal` and always quantized to two decimal
places with half-up rounding (not banker's rounding), which is what our accounting team expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Sequence

CENT = Decimal("0.01")
SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}


def to_decimal(value: Decimal | int | str) -> Decimal:
    """Convert ``value`` to a Decimal rounded half-up to whole cents."""
    if isinstance(value, float):
        raise TypeError("use str or Decimal for money, never float")
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, order=True)
class Money:
    """An amount of money in a single currency."""

    amount: Decimal
    currency: str = "EUR"

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", to_decimal(self.amount))

    @classmethod
    def zero(cls, currency: str = "EUR") -> Money:
        return cls(Decimal(0), currency)

    @property
    def cents(self) -> int:
        """The amount in minor units."""
        return int(self.amount * 100)

    @classmethod
    def from_cents(cls, cents: int, currency: str = "EUR") -> Money:
        return cls(Decimal(cents) / 100, currency)

    def _check(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        return Money(self.amount * Decimal(factor), self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def is_zero(self) -> bool:
        return self.amount == 0

    def allocate(self, ratios: Sequence[int]) -> list[Money]:
        """Split the amount by integer ``ratios`` without losing a cent.

        Leftover cents go to the first shares, one each, so that the shares always
        add up to the original amount exactly.
        """
        if not ratios or any(r < 0 for r in ratios) or sum(ratios) == 0:
            raise ValueError("ratios must be non-negative and not all zero")
        total = self.cents
        weight = sum(ratios)
        shares = [total * r / weight for r in ratios]
        remainder = total - sum(shares)
        for i in range(remainder):
            shares[i] += 1
        return [Money.from_cents(s, self.currency) for s in shares]

    def format(self) -> str:
        """Human-readable amount, e.g. ``€1,234.50`` or ``-$3.00``."""
        symbol = SYMBOLS.get(self.currency, self.currency + " ")
        sign = "-" if self.amount < 0 else ""
        return f"{sign}{symbol}{abs(self.amount):.2f}"

    def __str__(self) -> str:
        return self.format()


def sum_money(values: Sequence[Money], currency: str = "EUR") -> Money:
    """Sum a sequence of Money values (zero in ``currency`` when empty)."""
    total = Money.zero(currency)
    for value in values:
        total = total + value
    return total
