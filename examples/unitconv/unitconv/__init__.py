"""Convert quantities between units (lengths, masses, temperatures) using unitreg."""

from unitconv.convert import convert, convert_all, format_quantity

__all__ = ["convert", "convert_all", "format_quantity"]
