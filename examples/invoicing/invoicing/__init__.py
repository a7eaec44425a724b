"""Small billing library: money arithmetic, tax rules, discounts and invoices."""

from invoicing.money import Money

__all__ = ["Money"]
