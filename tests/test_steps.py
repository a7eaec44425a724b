"""Prefect steps retry infrastructure faults, and only those."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from prefect import flow

from patchsmith.domain import ExecResult, SandboxConfig
from patchsmith.errors import SandboxStartError
from patchsmith.infra.sandbox.subprocess_backend import SubprocessSandbox
from patchsmith.tasks.steps import plan as plan_task
from patchsmith.tasks.steps import retry_on_infra

pytestmark = pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning")


class FlakySandbox:
    """Fails to start ``failures`` times (an infra fault), then runs for real."""

    name = "flaky"

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or SandboxStartError("bwrap: setting up uid map: Permission denied")
        self.calls = 0
        self.real = SubprocessSandbox()

    def run(
        self,
        workspace: Path,
        argv: Sequence[str],
        config: SandboxConfig,
        env: Mapping[str, str] | None = None,
        *,
        pass_fds: Sequence[int] = (),
    ) -> ExecResult:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.real.run(workspace, argv, config, env, pass_fds=pass_fds)


def _ctx(home: Path, tmp_path: Path, sandbox: FlakySandbox, **campaign: object) -> object:
    from helpers import make_stats_project, write_campaign

    from patchsmith.config import load_campaign
    from patchsmith.infra.workspace import WorkspaceManager
    from patchsmith.tasks.repair import RepairContext

    make_stats_project(tmp_path)
    parsed = load_campaign(write_campaign(tmp_path, **campaign))
    return RepairContext(
        campaign=parsed, sandbox=sandbox, workspaces=WorkspaceManager(home / "workspaces")
    )


def test_infra_fault_is_retried_then_succeeds(
    prefect_harness: None, home: Path, tmp_path: Path
) -> None:
    from patchsmith.tasks.repair import RepairContext, prepare_pristine

    sandbox = FlakySandbox(failures=1)
    ctx = _ctx(home, tmp_path, sandbox)
    assert isinstance(ctx, RepairContext)
    instance = ctx.campaign.instances[0]

    @flow
    def one_plan() -> object:
        return plan_task(ctx, instance, prepare_pristine(ctx, instance))

    plan = one_plan()
    ctx.end_screen(instance)  # the warm session the plan's second run started
    assert sandbox.calls >= 3, "one failed start, then the baseline and the second run"
    assert plan.fail_to_pass == [
        "tests/test_windows.py::test_window_of_full_length",
        "tests/test_windows.py::test_window_sums_cover_the_last_window",
    ]


def test_other_errors_are_not_retried(prefect_harness: None, home: Path, tmp_path: Path) -> None:
    from patchsmith.tasks.repair import RepairContext, prepare_pristine

    sandbox = FlakySandbox(failures=5, error=ValueError("a bug, not an outage"))
    ctx = _ctx(home, tmp_path, sandbox)
    assert isinstance(ctx, RepairContext)
    instance = ctx.campaign.instances[0]

    @flow
    def one_plan() -> object:
        return plan_task(ctx, instance, prepare_pristine(ctx, instance))

    with pytest.raises(ValueError, match="not an outage"):
        one_plan()
    assert sandbox.calls == 1


def test_retry_condition_reads_the_exception_type() -> None:
    from prefect.states import Completed, Failed

    assert retry_on_infra(None, None, Failed(data=SandboxStartError("x")))  # type: ignore[arg-type]
    assert not retry_on_infra(None, None, Failed(data=AssertionError("x")))  # type: ignore[arg-type]
    assert not retry_on_infra(None, None, Completed(data=1))  # type: ignore[arg-type]


def test_no_retry_once_a_stop_was_requested() -> None:
    from prefect.states import Failed

    from patchsmith.infra.sandbox import running

    running.request_stop()
    try:
        assert not retry_on_infra(None, None, Failed(data=SandboxStartError("x")))  # type: ignore[arg-type]
    finally:
        running.reset()
    assert retry_on_infra(None, None, Failed(data=SandboxStartError("x")))  # type: ignore[arg-type]


def test_a_fault_while_screening_retries_the_round_and_tests_the_candidate_again(
    prefect_harness: None, home: Path, tmp_path: Path
) -> None:
    """A round's candidates are screened in one Prefect task run: a sandbox that fails to
    start under a candidate is recorded as an infra_error attempt, the task is retried, and
    the retry tests that same candidate again (it was never judged) and skips none."""
    import dataclasses

    from patchsmith.domain import Attempt, AttemptStatus, OutcomeStatus
    from patchsmith.tasks.repair import RepairContext, repair
    from patchsmith.tasks.steps import PREFECT_STEPS

    sandbox = FlakySandbox(failures=0)
    ctx = _ctx(home, tmp_path, sandbox, screening="cold")
    assert isinstance(ctx, RepairContext)
    attempts: list[Attempt] = []
    ctx = dataclasses.replace(ctx, on_attempt=attempts.append)
    instance = ctx.campaign.instances[0]

    def plan_then_arm(*args: object, **kwargs: object) -> object:
        planned = PREFECT_STEPS.plan(*args, **kwargs)
        sandbox.failures = sandbox.calls + 1  # the first candidate's sandbox fails to start
        return planned

    steps = dataclasses.replace(PREFECT_STEPS, plan=plan_then_arm)

    @flow
    def one_instance() -> object:
        return repair(instance, ctx, steps)

    outcome = one_instance()
    assert outcome.status == OutcomeStatus.resolved, outcome.reasons
    first, second = attempts[0], attempts[1]
    assert first.status == AttemptStatus.infra_error
    assert "Permission denied" in (first.error or "")
    assert first.candidate is not None and second.candidate is not None
    assert second.candidate.candidate_id == first.candidate.candidate_id
    assert second.status != AttemptStatus.infra_error
