"""``SpanHandle``: what a tracker's ``step`` yields, shared by every ``Tracker``.

It lives here, below ``tracking`` (the contract and the factory) and ``tracking_mlflow``
(the MLflow backend), so that both can use it and imports go one way:
``tracking`` → ``tracking_mlflow`` → ``tracking_types``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SpanHandle"]


class SpanHandle:
    """What a ``step`` yields: add attributes or outputs to the span (no-op when off)."""

    def __init__(self, span: Any = None) -> None:
        self._span = span

    def set(self, attributes: dict[str, Any]) -> None:
        """Add attributes to the span; the key ``outputs`` sets the span's outputs."""
        if self._span is None:
            return
        attrs = dict(attributes)
        if "outputs" in attrs:
            self._span.set_outputs(attrs.pop("outputs"))
        if attrs:
            self._span.set_attributes(attrs)

    @property
    def trace_id(self) -> str | None:
        """The MLflow trace id of this span, None when tracking is off or failed."""
        return getattr(self._span, "trace_id", None)
