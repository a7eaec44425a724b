from decimal import Decimal

import pytest

from invoicing.money import Money, sum_money, to_decimal


def test_amounts_are_rounded_half_up_to_cents():
    assert Money(Decimal("1.005")).amount == Decimal("1.01")
    assert Money(Decimal("2.675")).amount == Decimal("2.68")
    assert Money("3").amount == Decimal("3.00")


def test_float_is_rejected():
    with pytest.raises(TypeError):
        to_decimal(0.1)


def test_add_and_subtract():
    assert Money("10.10") + Money("0.95") == Money("11.05")
    assert Money("10.00") - Money("12.50") == Money("-2.50")


def test_currency_mismatch_is_an_error():
    with pytest.raises(ValueError, match="currency mismatch"):
        Money("1", "EUR") + Money("1", "USD")


def test_multiply_rounds_result():
    assert Money("0.10") * 3 == Money("0.30")
    assert Decimal("1.5") * Money("0.99") == Money("1.49")  # 1.485 rounds up


def test_cents_round_trip():
    assert Money("12.34").cents == 1234
    assert Money.from_cents(1234, "USD") == Money("12.34", "USD")
    assert Money.from_cents(-5).amount == Decimal("-0.05")


def test_sum_money():
    assert sum_money([Money("1.10"), Money("2.20"), Money("3.30")]) == Money("6.60")
    assert sum_money([], "GBP") == Money.zero("GBP")


def test_allocate_even_split():
    shares = Money("90.00").allocate([1, 1, 1])
    assert shares == [Money("30.00")] * 3


def test_allocate_gives_leftover_cents_to_first_shares():
    shares = Money("100.00").allocate([1, 1, 1])
    assert shares == [Money("33.34"), Money("33.33"), Money("33.33")]
    assert sum_money(shares) == Money("100.00")


def test_allocate_by_weights():
    shares = Money("0.05").allocate([3, 7])
    assert shares == [Money("0.02"), Money("0.03")]
    assert [s.cents for s in Money("10.00", "USD").allocate([1, 2, 2])] == [200, 400, 400]
    assert all(s.currency == "USD" for s in Money("10.00", "USD").allocate([1, 2, 2]))


def test_allocate_rejects_bad_ratios():
    for ratios in ([], [0, 0], [1, -1]):
        with pytest.raises(ValueError):
            Money("1.00").allocate(ratios)
