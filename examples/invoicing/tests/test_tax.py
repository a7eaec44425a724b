from decimal import Decimal

from invoicing.money import Money
from invoicing.tax import Customer, rate_for, tax_amount, tax_breakdown

SHOP = Customer("Corner Shop")
CHARITY = Customer("Food Bank", tax_exempt=True)


def test_standard_and_reduced_rates():
    assert rate_for("electronics", SHOP) == Decimal("0.20")
    assert rate_for("books", SHOP) == Decimal("0.05")
    assert rate_for("food", SHOP) == Decimal("0.05")


def test_zero_rated_categories():
    assert rate_for("export", SHOP) == Decimal("0")
    assert rate_for("medical", SHOP) == Decimal("0")


def test_exempt_customer_pays_no_tax_on_any_category():
    assert rate_for("electronics", CHARITY) == Decimal("0")
    assert rate_for("books", CHARITY) == Decimal("0")
    assert rate_for("medical", CHARITY) == Decimal("0")


def test_tax_amount_rounds_half_up():
    assert tax_amount(Money("10.00"), Decimal("0.20")) == Money("2.00")
    assert tax_amount(Money("0.10"), Decimal("0.05")) == Money("0.01")  # 0.005 -> 0.01


def test_breakdown_groups_by_rate():
    lines = [("electronics", Money("100.00")), ("books", Money("20.00")),
             ("toys", Money("50.00")), ("export", Money("70.00"))]
    assert tax_breakdown(lines, SHOP) == {
        Decimal("0.20"): Money("30.00"),
        Decimal("0.05"): Money("1.00"),
        Decimal("0"): Money("0.00"),
    }


def test_breakdown_for_exempt_customer_has_single_zero_row():
    lines = [("electronics", Money("100.00")), ("books", Money("20.00"))]
    assert tax_breakdown(lines, CHARITY) == {Decimal("0"): Money("0.00")}
