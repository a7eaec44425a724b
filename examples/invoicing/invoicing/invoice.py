"""Invoices: line items, totals, payment terms."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from invoicing.discounts import apply_percent, bulk_discount_percent
from invoicing.money import Money, sum_money
from invoicing.tax import Customer, rate_for, tax_amount


@dataclass(frozen=True)
class LineItem:
    """One billed product: ``quantity`` units at ``unit_price`` (net of VAT)."""

    description: str
    unit_price: Money
    quantity: int = 1
    category: str = "general"

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError("quantity must be positive")

    @property
    def gross(self) -> Money:
        """Price before any discount."""
        return self.unit_price * self.quantity

    @property
    def net(self) -> Money:
        """Price after the volume discount for this line's quantity."""
        return apply_percent(self.gross, bulk_discount_percent(self.quantity))


@dataclass
class Invoice:
    """An invoice issued to a customer on ``issued`` with ``terms_days`` to pay."""

    number: str
    customer: Customer
    issued: date
    terms_days: int = 30
    currency: str = "EUR"
    lines: list[LineItem] = field(default_factory=list)
    payments: list[Money] = field(default_factory=list)

    def add(self, item: LineItem) -> None:
        if item.unit_price.currency != self.currency:
            raise ValueError("line currency differs from invoice currency")
        self.lines.append(item)

    @property
    def subtotal(self) -> Money:
        return sum_money([line.net for line in self.lines], self.currency)

    @property
    def tax(self) -> Money:
        return sum_money(
            [tax_amount(line.net, rate_for(line.category, self.customer)) for line in self.lines],
            self.currency,
        )

    @property
    def total(self) -> Money:
        return self.subtotal + self.tax

    @property
    def due_date(self) -> date:
        return self.issued + timedelta(days=self.terms_days)

    def balance(self) -> Money:
        """What is still owed after the recorded payments."""
        return self.total - sum_money(self.payments, self.currency)

    def pay(self, amount: Money) -> None:
        self.payments.append(amount)

    def is_paid(self) -> bool:
        return self.balance().amount <= Decimal(0)

    def is_overdue(self, today: date) -> bool:
        """Unpaid and past the due date (paying on the due date itself is on time)."""
        return not self.is_paid() and today >= self.due_date

    def days_overdue(self, today: date) -> int:
        if not self.is_overdue(today):
            return 0
        return (today - self.due_date).days
