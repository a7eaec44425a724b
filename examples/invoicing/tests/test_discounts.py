from decimal import Decimal

import pytest

from invoicing.discounts import PromoCode, Tier, apply_percent, bulk_discount_percent
from invoicing.money import Money


def test_no_discount_below_first_tier():
    assert bulk_discount_percent(1) == Decimal("0")
    assert bulk_discount_percent(9) == Decimal("0")


def test_discount_between_tiers():
    assert bulk_discount_percent(11) == Decimal("5")
    assert bulk_discount_percent(49) == Decimal("5")
    assert bulk_discount_percent(75) == Decimal("10")
    assert bulk_discount_percent(500) == Decimal("15")


def test_discount_applies_at_exactly_the_tier_quantity():
    assert bulk_discount_percent(10) == Decimal("5")
    assert bulk_discount_percent(50) == Decimal("10")
    assert bulk_discount_percent(100) == Decimal("15")


def test_custom_tiers_in_any_order():
    tiers = (Tier(20, Decimal("12")), Tier(5, Decimal("2")))
    assert bulk_discount_percent(4, tiers) == Decimal("0")
    assert bulk_discount_percent(5, tiers) == Decimal("2")
    assert bulk_discount_percent(20, tiers) == Decimal("12")


def test_apply_percent():
    assert apply_percent(Money("200.00"), Decimal("15")) == Money("170.00")
    assert apply_percent(Money("9.99"), Decimal("0")) == Money("9.99")
    with pytest.raises(ValueError):
        apply_percent(Money("1.00"), Decimal("101"))


def test_promo_code_minimum_order():
    code = PromoCode("SPRING5", Money("5.00"), min_order=Money("25.00"))
    assert code.apply(Money("24.99")) == Money("24.99")
    assert code.apply(Money("25.00")) == Money("20.00")


def test_promo_code_never_goes_negative():
    code = PromoCode("FREEBIE", Money("50.00"), min_order=Money("0.00"))
    assert code.apply(Money("30.00")) == Money("0.00")
