"""``MlflowTracker``: the MLflow backend of ``Tracker`` (runs, metrics, artifacts, traces).

Layout: experiment = campaign name; a parent run per campaign; a child run per instance
(``mlflow.parentRunId``); one trace per instance whose root span opens in
``start_instance`` and closes in ``end_instance``, with a span per step and per model call
(linked to the instance run through the trace's ``mlflow.sourceRun``).

Thread safety: only ``MlflowClient`` calls with explicit run ids, never the fluent active
run. Span nesting is kept in a context variable per (thread/context, run), so steps of
different instances never nest into each other even when Prefect copies contexts.

Failure isolation: MLflow, network, database and disk errors are caught at each public
method, logged with their type and message, counted in ``errors``, and switch tracking
off for the rest of the process (``failed``; later calls are counted in ``skipped``). The
campaign goes on; the store keeps everything for ``patchsmith sync-tracking``. Other
exceptions (bugs) propagate.

MLflow exports traces to the process-wide tracking URI, so the constructor sets it. One
tracking URI per process.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow
from mlflow import MlflowClient
from mlflow.entities import LiveSpan, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracing.constant import TraceMetadataKey
from requests.exceptions import RequestException
from sqlalchemy.exc import SQLAlchemyError

from patchsmith.config import Campaign
from patchsmith.domain import Attempt, Instance, Outcome, OutcomeStatus, Usage
from patchsmith.infra.tracking_metrics import (
    InstanceAccount,
    InstanceRecord,
    Stats,
    instance_summary,
    summarize,
)
from patchsmith.infra.tracking_params import (
    campaign_params,
    flatten,
    instance_params,
)
from patchsmith.infra.tracking_types import SpanHandle

log = logging.getLogger(__name__)

TRACKING_ERRORS = (MlflowException, RequestException, SQLAlchemyError, OSError)
_STACK: contextvars.ContextVar[tuple[tuple[str, LiveSpan], ...]] = contextvars.ContextVar(
    "patchsmith_tracking_spans", default=()
)
P = ParamSpec("P")
R = TypeVar("R")


def default_uri(home: Path | None) -> str:
    """``$MLFLOW_TRACKING_URI``, else ``sqlite:///<home>/mlflow.db`` (home: $PATCHSMITH_HOME)."""
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri
    home = home or Path(os.environ.get("PATCHSMITH_HOME", ".patchsmith"))
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home.resolve() / 'mlflow.db'}"


def _guarded(method: Callable[P, R | None]) -> Callable[P, R | None]:
    """Run a tracker method; tracking errors become a warning, a count and ``failed``."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
        self = args[0]
        assert isinstance(self, MlflowTracker)
        if self.failed:
            self.skipped += 1
            return None
        try:
            return method(*args, **kwargs)
        except TRACKING_ERRORS as exc:
            self._fail(method.__name__, exc)
            return None

    return wrapper


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class MlflowTracker:
    """Tracks campaigns in MLflow; see the module docstring for layout and guarantees."""

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        home: Path | None = None,
        ui_url: str | None = None,
        flush_s: float = 30.0,
    ) -> None:
        self.tracking_uri = tracking_uri or default_uri(home)
        self.ui_url = ui_url or os.environ.get("PATCHSMITH_MLFLOW_UI_URL")
        if self.ui_url is None and self.tracking_uri.startswith(("http://", "https://")):
            self.ui_url = self.tracking_uri
        self.flush_s = flush_s  # attempt metrics are written at most this often (and at end)
        self.failed = False
        self.errors = 0
        self.skipped = 0
        mlflow.set_tracking_uri(self.tracking_uri)  # the tracer exports to the global URI
        self._client: MlflowClient | None = None
        self._client_lock = threading.Lock()
        self._experiments: dict[str, str] = {}
        self._run_experiment: dict[str, str] = {}
        self._campaign_params: dict[str, dict[str, str]] = {}
        self._accounts: dict[str, InstanceAccount] = {}
        self._roots: dict[str, LiveSpan] = {}
        self._pending: dict[str, list[Metric]] = {}  # attempt metrics not yet written
        self._pending_files: dict[str, dict[str, str]] = {}  # attempt artifacts, likewise
        self._last_write: dict[str, float] = {}

    @property
    def client(self) -> MlflowClient:
        """The MLflow client, made on first use (a new sqlite store migrates then)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = MlflowClient(self.tracking_uri)
        return self._client

    # ------------------------------------------------------------------ helpers

    def _fail(self, op: str, exc: BaseException) -> None:
        self.errors += 1
        first = not self.failed
        self.failed = True
        log.warning(
            "MLflow tracking failed in %s: %s: %s%s",
            op,
            type(exc).__name__,
            str(exc)[:500],
            " — tracking is off for the rest of this run; the campaign goes on and the "
            "store keeps every attempt (push it later with `patchsmith sync-tracking`)"
            if first
            else "",
        )

    def _experiment(self, name: str) -> str:
        if name in self._experiments:
            return self._experiments[name]
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            location = None
            if self.tracking_uri.startswith("sqlite:///"):
                db = Path(self.tracking_uri[len("sqlite:///") :])
                location = (db.parent / "mlartifacts" / name).resolve().as_uri()
            try:
                exp_id = self.client.create_experiment(name, artifact_location=location)
            except MlflowException as exc:  # created meanwhile by another worker
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                exp_id = self.client.get_experiment_by_name(name).experiment_id  # type: ignore[union-attr]
        else:
            exp_id = exp.experiment_id
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp_id)
        self._experiments[name] = exp_id
        return exp_id

    def _log(
        self,
        run_id: str,
        *,
        metrics: dict[str, float] | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        step: int = 0,
        extra: list[Metric] | None = None,
    ) -> None:
        now = int(time.time() * 1000)
        ms = [Metric(k, float(v), now, step) for k, v in (metrics or {}).items()]
        ms += extra or []
        ps = [Param(k, v) for k, v in (params or {}).items()]
        ts = [RunTag(k, v) for k, v in (tags or {}).items()]
        if len(ms) <= 1000 and len(ps) + len(ts) <= 100:  # one write (~50 ms on sqlite)
            self.client.log_batch(run_id, metrics=ms, params=ps, tags=ts)
            return
        for chunk in _chunks(ms, 1000):
            self.client.log_batch(run_id, metrics=chunk)
        for chunk in _chunks(ps, 100):
            self.client.log_batch(run_id, params=chunk)
        for chunk in _chunks(ts, 100):
            self.client.log_batch(run_id, tags=chunk)

    def _write_pending(self, run_id: str) -> None:
        self._last_write[run_id] = time.time()
        pending = self._pending.pop(run_id, [])
        for chunk in _chunks(pending, 1000):
            self.client.log_batch(run_id, metrics=chunk)
        self._write_files(run_id)

    def _write_files(self, run_id: str) -> None:
        files = self._pending_files.pop(run_id, {})
        if files:  # one artifact upload for every attempt since the last write
            with tempfile.TemporaryDirectory(prefix="patchsmith-attempts-") as tmp:
                for name, text in files.items():
                    Path(tmp, name).write_text(text)
                self.client.log_artifacts(run_id, tmp, "attempts")

    def _parent(self, run_id: str) -> LiveSpan | None:
        for owner, span in reversed(_STACK.get()):
            if owner == run_id:
                return span
        return self._roots.get(run_id)

    def _start_span(
        self,
        run_id: str,
        name: str,
        span_type: str,
        attributes: dict[str, Any] | None,
        start_time_ns: int | None = None,
    ) -> LiveSpan:
        parent = self._parent(run_id)
        if parent is not None:
            return mlflow.start_span_no_context(
                name,
                span_type=span_type,
                parent_span=parent,
                attributes=attributes,
                start_time_ns=start_time_ns,
            )
        return mlflow.start_span_no_context(
            name,
            span_type=span_type,
            attributes=attributes,
            experiment_id=self._run_experiment.get(run_id),
            metadata={TraceMetadataKey.SOURCE_RUN: run_id},
            start_time_ns=start_time_ns,
        )

    def run_url(self, run_id: str | None) -> str | None:
        """Link to a run in the MLflow UI (for a Prefect link artifact), if a UI is known."""
        if run_id is None or self.ui_url is None or run_id not in self._run_experiment:
            return None
        return (
            f"{self.ui_url.rstrip('/')}/#/experiments/{self._run_experiment[run_id]}/runs/{run_id}"
        )

    def flush(self) -> None:
        """Wait until every finished trace has been written (traces are written async)."""
        try:
            mlflow.flush_trace_async_logging()
        except TRACKING_ERRORS as exc:
            self._fail("flush", exc)

    # ---------------------------------------------------------------- campaign

    @_guarded
    def start_campaign(
        self, campaign: Campaign, *, config_hash: str, flow_run_id: str | None
    ) -> str | None:
        """Create the campaign's parent run (experiment = campaign name) with its params."""
        exp_id = self._experiment(campaign.name)
        tags = {
            "patchsmith.kind": "campaign",
            "patchsmith.campaign": campaign.name,
            "patchsmith.config_hash": config_hash,
        }
        if flow_run_id:
            tags["patchsmith.flow_run_id"] = flow_run_id
        run_id: str = self.client.create_run(exp_id, tags=tags, run_name=campaign.name).info.run_id
        self._run_experiment[run_id] = exp_id
        params = campaign_params(campaign, config_hash)
        self._campaign_params[run_id] = params
        self._log(run_id, params=params)
        return run_id

    @_guarded
    def attach_campaign(self, run_id: str | None, campaign: Campaign, *, config_hash: str) -> None:
        """Instance runs of this process go under ``run_id`` (started by the parent flow)."""
        if run_id is None:
            return
        self._run_experiment[run_id] = self.client.get_run(run_id).info.experiment_id
        self._campaign_params[run_id] = campaign_params(campaign, config_hash)

    @_guarded
    def abandon_instance(self, campaign_run_id: str | None, instance_id: str) -> int | None:
        """KILLED, tagged ``patchsmith.crashed``: the RUNNING runs of a lost process."""
        if campaign_run_id is None:
            return 0
        exp_id = (
            self._run_experiment.get(campaign_run_id)
            or self.client.get_run(campaign_run_id).info.experiment_id
        )
        lost = [
            r.info.run_id
            for r in self._children(exp_id, campaign_run_id)
            if r.info.status == "RUNNING"
            and r.data.tags.get("patchsmith.instance_id") == instance_id
        ]
        for run_id in lost:
            self.client.set_tag(run_id, "patchsmith.crashed", "true")
            self.client.set_terminated(run_id, "KILLED")
        return len(lost)

    @_guarded
    def end_campaign(
        self,
        run_id: str | None,
        outcomes: list[Outcome],
        *,
        config_yaml: str,
        interrupted: bool = False,
    ) -> None:
        """Campaign metrics from its instance runs, the effective config; run FINISHED
        (KILLED when ``interrupted``: metrics then cover the instances that finished)."""
        if run_id is None:
            return
        try:
            if interrupted:
                self.client.set_tag(run_id, "patchsmith.interrupted", "true")
            self.client.log_text(run_id, config_yaml, "campaign.yaml")
            exp_id = (
                self._run_experiment.get(run_id) or self.client.get_run(run_id).info.experiment_id
            )
            records = [
                InstanceRecord.from_run(r.info.run_id, r.data.metrics, r.data.tags, r.data.params)
                for r in self._children(exp_id, run_id)
            ]
            summary = summarize(records)
            overall: Stats = summary.overall
            # outcomes are authoritative for how many instances there were and were resolved
            overall.instances = len(outcomes)
            overall.resolved = sum(o.status == OutcomeStatus.resolved for o in outcomes)
            metrics = overall.metrics()
            for tier, stats in summary.by_tier.items():
                if overall.resolved:
                    metrics[f"share_solved.{tier}"] = stats.resolved / overall.resolved
            outcome_rows = [o.model_dump(mode="json", exclude={"patch"}) for o in outcomes]
            self.client.log_text(run_id, json.dumps(outcome_rows, indent=1), "outcomes.json")
            self._log(run_id, metrics=metrics)
        finally:
            self.client.set_terminated(run_id, "KILLED" if interrupted else "FINISHED")
            self.flush()

    def _children(self, exp_id: str, run_id: str) -> Iterator[Any]:
        token: str | None = None
        while True:
            page = self.client.search_runs(
                [exp_id],
                filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
                max_results=1000,
                page_token=token,
            )
            yield from page
            token = page.token
            if not token:
                return

    # ---------------------------------------------------------------- instance

    @_guarded
    def start_instance(
        self,
        campaign_run_id: str | None,
        instance: Instance,
        *,
        key: str,
        params: dict[str, Any],
        flow_run_id: str | None,
    ) -> str | None:
        """Create a child run of the campaign run and open the instance's trace."""
        if campaign_run_id is None:
            return None
        exp_id = (
            self._run_experiment.get(campaign_run_id)
            or self.client.get_run(campaign_run_id).info.experiment_id
        )
        tags = {
            "mlflow.parentRunId": campaign_run_id,
            "patchsmith.kind": "instance",
            "patchsmith.instance_id": instance.instance_id,
            "patchsmith.key": key,
        }
        if flow_run_id:
            tags["patchsmith.flow_run_id"] = flow_run_id
        run = self.client.create_run(exp_id, tags=tags, run_name=instance.instance_id)
        run_id: str = run.info.run_id
        self._run_experiment[run_id] = exp_id
        merged = dict(self._campaign_params.get(campaign_run_id, {}))
        merged.update(flatten("", params))
        merged.update(instance_params(instance, key))
        self._log(run_id, params=merged)
        self._accounts[run_id] = InstanceAccount()
        self._last_write[run_id] = time.time()
        self._roots[run_id] = self._start_span(
            run_id,
            f"instance {instance.instance_id}",
            "AGENT",
            {"patchsmith.instance_id": instance.instance_id, "patchsmith.key": key},
        )
        return run_id

    @_guarded
    def end_instance(self, run_id: str | None, outcome: Outcome, *, logs: dict[str, str]) -> None:
        """Metrics, final patch and logs; close the trace; run FINISHED (FAILED on error)."""
        if run_id is None:
            return
        failed = outcome.status == OutcomeStatus.error
        try:
            self._last_write.pop(run_id, None)
            account = self._accounts.pop(run_id, None) or InstanceAccount()
            metrics, tags, params = instance_summary(account, outcome)
            self._log(run_id, metrics=metrics, params=params, tags=tags,
                      extra=self._pending.pop(run_id, []))  # fmt: skip
            self._write_files(run_id)
            if outcome.patch:
                self.client.log_text(run_id, outcome.patch, "patch.diff")
            for name, text in logs.items():
                self.client.log_text(run_id, text, f"logs/{Path(name).name}.log")
            summary = outcome.model_dump(mode="json", exclude={"patch"})
            self.client.log_text(run_id, json.dumps(summary, indent=1), "outcome.json")
        finally:
            root = self._roots.pop(run_id, None)
            if root is not None:
                root.end(
                    outputs={"status": str(outcome.status), "attempts": outcome.attempts},
                    status="ERROR" if failed else "OK",
                )
            self.client.set_terminated(run_id, "FAILED" if failed else "FINISHED")

    @_guarded
    def abort_instance(self, run_id: str | None) -> None:
        """Stopped before an outcome: pending attempt metrics written, trace closed, KILLED."""
        if run_id is None:
            return
        try:
            self._last_write.pop(run_id, None)
            self._accounts.pop(run_id, None)
            self._write_pending(run_id)
            self.client.set_tag(run_id, "patchsmith.interrupted", "true")
        finally:
            root = self._roots.pop(run_id, None)
            if root is not None:
                root.end(outputs={"status": "interrupted"}, status="ERROR")
            self.client.set_terminated(run_id, "KILLED")

    @_guarded
    def log_attempt(self, run_id: str | None, attempt: Attempt) -> None:
        """Step-indexed attempt metrics (written every ``flush_s`` and at the end), the
        attempt's patch and a JSON summary (written now)."""
        if run_id is None:
            return
        account = self._accounts.setdefault(run_id, InstanceAccount())
        cid = account.add(attempt)
        report, critique, usage = attempt.report, attempt.critique, attempt.usage
        metrics = {
            "attempt_well_formed": float(attempt.status != "malformed_edit"),
            "attempt_accepted": float(attempt.status == "accepted"),
            "attempt_duration_s": attempt.duration_s,
            "attempt_tokens_in": float(usage.prompt_tokens),
            "attempt_tokens_out": float(usage.completion_tokens),
            "attempt_gpu_seconds": usage.gpu_seconds,
        }
        if usage.dollars is not None:
            metrics["attempt_dollars"] = usage.dollars
        if report is not None:
            metrics["attempt_tests_failing"] = float(len(report.failing()))
            metrics["attempt_warm"] = float(report.runner == "warm")
        if critique is not None:
            metrics["attempt_regressions"] = float(len(critique.regressions))
        stamp = int((attempt.started_at + attempt.duration_s) * 1000)
        pending = self._pending.setdefault(run_id, [])
        pending.extend(Metric(k, float(v), stamp, attempt.number) for k, v in metrics.items())
        # one log_batch costs ~50 ms on sqlite: write attempt metrics every flush_s, not each
        if time.time() - self._last_write.get(run_id, 0.0) >= self.flush_s:
            self._write_pending(run_id)
        # The patch and a JSON summary go out with the metrics, as one upload per write.
        files = self._pending_files.setdefault(run_id, {})
        stem = f"{attempt.number:03d}"
        if attempt.candidate is not None:
            files[f"{stem}.patch"] = attempt.candidate.diff
        detail = attempt.model_dump(mode="json", exclude={"candidate": {"diff"}})
        detail["config_id"] = cid
        files[f"{stem}.json"] = json.dumps(detail, indent=1)

    # ------------------------------------------------------------------ traces

    @contextmanager
    def step(
        self,
        run_id: str | None,
        name: str,
        *,
        span_type: str = "CHAIN",
        attributes: dict[str, Any] | None = None,
    ) -> Iterator[SpanHandle]:
        """A span for a pipeline step, nested in the current step of the same run."""
        span = self._open(run_id, name, span_type, attributes) if run_id else None
        if span is None:
            yield SpanHandle()
            return
        token = _STACK.set((*_STACK.get(), (run_id, span)))  # type: ignore[arg-type]
        error: Exception | None = None
        try:
            yield SpanHandle(span)
        except Exception as exc:
            error = exc
            raise
        finally:
            _STACK.reset(token)
            self._close(span, error)

    @_guarded
    def _open(
        self, run_id: str, name: str, span_type: str, attributes: dict[str, Any] | None
    ) -> LiveSpan | None:
        return self._start_span(run_id, name, span_type, attributes)

    @_guarded
    def _close(self, span: LiveSpan, error: Exception | None) -> None:
        if isinstance(error, Exception):
            span.record_exception(error)  # sets status ERROR with the exception as an event
            span.end(status="ERROR")
        else:
            span.end()

    @_guarded
    def model_call(
        self,
        run_id: str | None,
        *,
        model: str,
        usage: Usage,
        attributes: dict[str, Any],
        transcript: tuple[dict[str, Any], str] | None = None,
    ) -> None:
        """An LLM span with token usage and cost (unknown cost: ``patchsmith.cost_unknown``),
        and the request's messages and the reply as its inputs and outputs when given."""
        if run_id is None:
            return
        now = time.time_ns()
        attrs: dict[str, Any] = {
            "patchsmith.model": model,
            "mlflow.chat.tokenUsage": {
                "input_tokens": usage.prompt_tokens,
                "output_tokens": usage.completion_tokens,
                "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            },
            "patchsmith.gpu_seconds": usage.gpu_seconds,
            "patchsmith.latency_s": usage.latency_s,
        }
        if usage.dollars is None:
            # A null mlflow.llm.cost breaks MLflow's trace export, and with the model name
            # present MLflow would price the call from its own catalog: leave both out.
            attrs["patchsmith.cost_unknown"] = True
        else:
            attrs["mlflow.llm.model"] = model
            attrs["mlflow.llm.cost"] = {"total_cost": usage.dollars}
        attrs.update(attributes)
        start = now - int(usage.latency_s * 1e9)
        span = self._start_span(run_id, f"model {model}", "LLM", attrs, start_time_ns=start)
        if transcript is not None:
            span.set_inputs(transcript[0])
            span.set_outputs(transcript[1])
        span.end(end_time_ns=now)
