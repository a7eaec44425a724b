"""Conversions between any two units of the same dimension.

Every unit maps to its dimension's base unit by ``base = value * factor + offset``
(unitreg's convention), so a conversion goes to the base unit and back out again.
"""

from __future__ import annotations

from unitreg import Unit, lookup


class IncompatibleUnits(ValueError):
    """The two units measure different things (a length and a mass, say)."""


def _to_base(value: float, unit: Unit) -> float:
    return value * unit.factor + unit.offset


def _from_base(value: float, unit: Unit) -> float:
    return (value + unit.offset) / unit.factor


def convert(value: float, src: str, dst: str) -> float:
    """``value`` in unit ``src`` expressed in unit ``dst``."""
    a, b = lookup(src), lookup(dst)
    if a.dimension != b.dimension:
        raise IncompatibleUnits(f"cannot convert {a.dimension} ({src}) to {b.dimension} ({dst})")
    return _from_base(_to_base(value, a), b)


def convert_all(values: list[float], src: str, dst: str) -> list[float]:
    """Each of ``values`` converted from ``src`` to ``dst``."""
    return [convert(v, src, dst) for v in values]


def format_quantity(value: float, unit: str, digits: int = 2) -> str:
    """``value`` with the unit's symbol, rounded to ``digits`` decimals."""
    return f"{value:.{digits}f} {lookup(unit).symbol}"
