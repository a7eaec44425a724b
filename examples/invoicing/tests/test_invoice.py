from datetime import date
from decimal import Decimal

import pytest

from invoicing.invoice import Invoice, LineItem
from invoicing.money import Money
from invoicing.tax import Customer

ACME = Customer("ACME Ltd")


def make_invoice(**kw) -> Invoice:
    inv = Invoice("INV-0042", ACME, issued=date(2024, 3, 1), **kw)
    inv.add(LineItem("Consulting hour", Money("80.00"), quantity=3))
    inv.add(LineItem("Handbook", Money("12.50"), quantity=2, category="books"))
    return inv


def test_line_item_totals():
    item = LineItem("Cable", Money("2.00"), quantity=12)
    assert item.gross == Money("24.00")
    assert item.net == Money("22.80")  # 5% volume discount
    with pytest.raises(ValueError):
        LineItem("Nothing", Money("1.00"), quantity=0)


def test_invoice_totals():
    inv = make_invoice()
    assert inv.subtotal == Money("265.00")
    assert inv.tax == Money("49.25")  # 20% of 240 + 5% of 25
    assert inv.total == Money("314.25")


def test_currency_must_match():
    inv = make_invoice()
    with pytest.raises(ValueError):
        inv.add(LineItem("Imported", Money("1.00", "USD")))


def test_balance_after_payments():
    inv = make_invoice()
    inv.pay(Money("300.00"))
    assert inv.balance() == Money("14.25")
    assert not inv.is_paid()
    inv.pay(Money("14.25"))
    assert inv.is_paid()


def test_due_date_uses_terms():
    assert make_invoice().due_date == date(2024, 3, 31)
    assert make_invoice(terms_days=14).due_date == date(2024, 3, 15)


def test_not_overdue_before_due_date():
    inv = make_invoice()
    assert not inv.is_overdue(date(2024, 3, 20))
    assert inv.days_overdue(date(2024, 3, 20)) == 0


def test_paying_on_the_due_date_is_not_overdue():
    inv = make_invoice(terms_days=14)
    assert not inv.is_overdue(date(2024, 3, 15))
    assert inv.days_overdue(date(2024, 3, 15)) == 0


def test_overdue_after_due_date():
    inv = make_invoice(terms_days=14)
    assert inv.is_overdue(date(2024, 3, 16))
    assert inv.days_overdue(date(2024, 4, 1)) == 17


def test_paid_invoice_is_never_overdue():
    inv = make_invoice()
    inv.pay(inv.total)
    assert not inv.is_overdue(date(2025, 1, 1))
    assert inv.balance().amount == Decimal("0.00")
