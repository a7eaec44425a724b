import pytest

from unitconv import convert, convert_all, format_quantity
from unitconv.convert import IncompatibleUnits


def test_lengths():
    assert convert(1, "km", "m") == pytest.approx(1000)
    assert convert(12, "in", "ft") == pytest.approx(1)


def test_masses():
    assert convert(1, "kg", "lb") == pytest.approx(2.20462, rel=1e-5)


def test_celsius_to_kelvin():
    assert convert(0, "degC", "K") == pytest.approx(273.15)


def test_kelvin_to_celsius():
    assert convert(273.15, "K", "degC") == pytest.approx(0)


def test_fahrenheit_to_celsius():
    assert convert(212, "degF", "degC") == pytest.approx(100)
    assert convert_all([32, 50], "degF", "degC") == pytest.approx([0, 10])


def test_incompatible_units_are_refused():
    with pytest.raises(IncompatibleUnits):
        convert(1, "kg", "m")


def test_format_uses_the_symbol():
    assert format_quantity(21.456, "degC") == "21.46 °C"
