import re
from decimal import Decimal

from invoicing.audit import audit_line
from invoicing.money import Money
from invoicing.statement import item_line, tax_line, total_line


def test_item_and_total_lines():
    assert item_line("Widget", Money(Decimal("2.50"))) == "Widget: €2.50"
    assert total_line(Money(Decimal("12"))) == "Total: €12.00"


def test_tax_line_in_euros():
    assert tax_line(Decimal("0.5"), "EUR") == "Tax (EUR): €0.50"


def test_audit_line_is_stamped():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ paid", audit_line("paid"))
