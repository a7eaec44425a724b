"""Run tracking: the ``Tracker`` contract, tracking-off, prices, and the factory.

A campaign is one MLflow run (the parent) in an experiment named after the campaign; each
instance is a child run tagged ``mlflow.parentRunId``. Steps and model calls become spans
of one MLflow trace per instance, linked to the instance run. The MLflow backend lives in
``tracking_mlflow`` (imported only when tracking is on); what goes into params, metrics
and tags is decided in ``tracking_params`` and ``tracking_metrics``. ``SpanHandle``, which
``step`` yields, is in ``tracking_types`` so that the backend need not import this module.

Every method takes run ids explicitly: nothing here uses MLflow's per-thread active run,
so instances may run on any thread (fluent calls from task threads leave orphan runs).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from patchsmith.config import Campaign
from patchsmith.domain import Attempt, Instance, Outcome, Usage
from patchsmith.infra.llm.config import Prices  # one price model for tiers and tracking
from patchsmith.infra.tracking_types import SpanHandle

if TYPE_CHECKING:
    from patchsmith.infra.tracking_mlflow import MlflowTracker

__all__ = [
    "MlflowTracker",
    "NullTracker",
    "Prices",
    "Tracker",
    "make_tracker",
    "price",
]

log = logging.getLogger(__name__)


class Tracker(Protocol):
    """Records a campaign, its instances, their steps, model calls and attempts."""

    failed: bool
    """True once tracking gave up after an MLflow error (the store still has everything)."""

    def run_url(self, run_id: str | None) -> str | None:
        """Link to a run in a tracking UI, when one is known."""
        ...

    def start_campaign(
        self, campaign: Campaign, *, config_hash: str, flow_run_id: str | None
    ) -> str | None: ...

    def start_instance(
        self,
        campaign_run_id: str | None,
        instance: Instance,
        *,
        key: str,
        params: dict[str, Any],
        flow_run_id: str | None,
    ) -> str | None: ...

    def step(
        self,
        run_id: str | None,
        name: str,
        *,
        span_type: str = "CHAIN",
        attributes: dict[str, Any] | None = None,
    ) -> AbstractContextManager[SpanHandle]: ...

    def model_call(
        self,
        run_id: str | None,
        *,
        model: str,
        usage: Usage,
        attributes: dict[str, Any],
        transcript: tuple[dict[str, Any], str] | None = None,
    ) -> None: ...

    def log_attempt(self, run_id: str | None, attempt: Attempt) -> None: ...

    def end_instance(
        self, run_id: str | None, outcome: Outcome, *, logs: dict[str, str]
    ) -> None: ...

    def abort_instance(self, run_id: str | None) -> None:
        """The instance was stopped before it had an outcome: close what is open, KILLED."""
        ...

    def abandon_instance(self, campaign_run_id: str | None, instance_id: str) -> int | None:
        """Runs of ``instance_id`` under the campaign run still RUNNING after their process
        died: tagged ``patchsmith.crashed``, KILLED. Returns how many."""
        ...

    def attach_campaign(self, run_id: str | None, campaign: Campaign, *, config_hash: str) -> None:
        """Use the campaign run ``run_id`` another process started (distributed mode)."""
        ...

    def end_campaign(
        self,
        run_id: str | None,
        outcomes: list[Outcome],
        *,
        config_yaml: str,
        interrupted: bool = False,
    ) -> None: ...


class NullTracker:
    """Tracking off: every method is a no-op and run ids are None."""

    failed = False
    errors = 0

    def start_campaign(
        self, campaign: Campaign, *, config_hash: str, flow_run_id: str | None
    ) -> str | None:
        return None

    def start_instance(
        self,
        campaign_run_id: str | None,
        instance: Instance,
        *,
        key: str,
        params: dict[str, Any],
        flow_run_id: str | None,
    ) -> str | None:
        return None

    @contextmanager
    def step(
        self,
        run_id: str | None,
        name: str,
        *,
        span_type: str = "CHAIN",
        attributes: dict[str, Any] | None = None,
    ) -> Iterator[SpanHandle]:
        yield SpanHandle()

    def model_call(
        self,
        run_id: str | None,
        *,
        model: str,
        usage: Usage,
        attributes: dict[str, Any],
        transcript: tuple[dict[str, Any], str] | None = None,
    ) -> None:
        return None

    def log_attempt(self, run_id: str | None, attempt: Attempt) -> None:
        return None

    def end_instance(self, run_id: str | None, outcome: Outcome, *, logs: dict[str, str]) -> None:
        return None

    def abort_instance(self, run_id: str | None) -> None:
        return None

    def abandon_instance(self, campaign_run_id: str | None, instance_id: str) -> int:
        return 0

    def attach_campaign(self, run_id: str | None, campaign: Campaign, *, config_hash: str) -> None:
        return None

    def end_campaign(
        self,
        run_id: str | None,
        outcomes: list[Outcome],
        *,
        config_yaml: str,
        interrupted: bool = False,
    ) -> None:
        return None

    def run_url(self, run_id: str | None) -> str | None:
        return None


def make_tracker(enabled: bool, home: Path) -> Tracker:
    """``MlflowTracker`` on ``$MLFLOW_TRACKING_URI`` or ``<home>/mlflow.db``; else a NullTracker."""
    if not enabled:
        return NullTracker()
    from patchsmith.infra.tracking_mlflow import MlflowTracker

    return MlflowTracker(home=home)


def __getattr__(name: str) -> Any:
    # MlflowTracker is importable from here, but mlflow is imported only when asked for.
    if name == "MlflowTracker":
        from patchsmith.infra.tracking_mlflow import MlflowTracker

        return MlflowTracker
    raise AttributeError(name)


# ------------------------------------------------------------------------------ cost


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(reason: str) -> None:
    with _warned_lock:
        if reason in _warned:
            return
        _warned.add(reason)
    log.warning("cost recorded as unknown: %s (add prices to the tier's model config)", reason)


def price(
    usage_tokens_in: int, usage_tokens_out: int, gpu_seconds: float, prices: Prices | None
) -> float | None:
    """Dollars for some usage, or None when a price needed for it is missing (warns once).

    Nothing used costs 0.0. Token prices cover tokens and a GPU-hour price covers GPU
    time; when only one kind of price is given it is taken to cover the whole usage (a
    self-hosted model priced per GPU-hour does not also pay per token). A missing price
    is never read as $0.
    """
    if usage_tokens_in == 0 and usage_tokens_out == 0 and gpu_seconds == 0:
        return 0.0
    if prices is None:
        _warn_once("no prices configured")
        return None
    by_tokens = prices.per_1k_prompt is not None or prices.per_1k_completion is not None
    by_gpu = prices.per_gpu_hour is not None
    if not by_tokens and not by_gpu:
        _warn_once("prices are all empty")
        return None
    total = 0.0
    if by_gpu and prices.per_gpu_hour is not None:
        if gpu_seconds == 0 and not by_tokens:
            _warn_once("priced per GPU-hour but no GPU-seconds were measured")
            return None
        total += gpu_seconds / 3600.0 * prices.per_gpu_hour
    if by_tokens:
        for tokens, per_1k, kind in (
            (usage_tokens_in, prices.per_1k_prompt, "input"),
            (usage_tokens_out, prices.per_1k_completion, "output"),
        ):
            if tokens and per_1k is None:
                _warn_once(f"{kind} tokens used but per_1k_{kind} is not set")
                return None
            total += tokens / 1000.0 * (per_1k or 0.0)
    return total
