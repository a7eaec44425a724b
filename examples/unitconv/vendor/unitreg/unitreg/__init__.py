"""A tiny unit registry: each unit's dimension, and how it maps to the dimension's base unit.

``base = value * factor + offset``: metre, kilogram and kelvin are the base units.
"""

from __future__ import annotations

from dataclasses import dataclass

__version__ = "1.0.0"


@dataclass(frozen=True)
class Unit:
    name: str
    symbol: str
    dimension: str
    factor: float
    offset: float = 0.0


UNITS = {
    u.name: u
    for u in (
        Unit("m", "m", "length", 1.0),
        Unit("km", "km", "length", 1000.0),
        Unit("cm", "cm", "length", 0.01),
        Unit("in", "in", "length", 0.0254),
        Unit("ft", "ft", "length", 0.3048),
        Unit("kg", "kg", "mass", 1.0),
        Unit("g", "g", "mass", 0.001),
        Unit("lb", "lb", "mass", 0.45359237),
        Unit("K", "K", "temperature", 1.0),
        Unit("degC", "°C", "temperature", 1.0, 273.15),
        Unit("degF", "°F", "temperature", 5 / 9, 273.15 - 32 * 5 / 9),
    )
}


def lookup(name: str) -> Unit:
    """The unit called ``name``; KeyError lists the known ones."""
    try:
        return UNITS[name]
    except KeyError:
        raise KeyError(f"unknown unit {name!r}; known: {', '.join(sorted(UNITS))}") from None
