from decimal import Decimal

from invoicing.money import Money


def test_small_amounts():
    assert Money("3.5").format() == "€3.50"
    assert Money("0", "USD").format() == "$0.00"


def test_negative_amount_puts_sign_before_symbol():
    assert Money("-3", "USD").format() == "-$3.00"


def test_unknown_currency_uses_code():
    assert Money("12.30", "CHF").format() == "CHF 12.30"


def test_thousands_are_grouped():
    assert Money("1234.5").format() == "€1,234.50"
    assert Money(Decimal("1000000"), "GBP").format() == "£1,000,000.00"


def test_str_uses_grouping_too():
    assert str(Money("-98765.43", "USD")) == "-$98,765.43"
