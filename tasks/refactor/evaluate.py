"""Testing a refactoring candidate: every guard in a cold run, then the goal on its tree.

Refactor candidates are screened cold: the goal's check command needs the patched tree in
a workspace of its own anyway, and a candidate is rare (codemods propose a handful). The
check runs only when the guards are green (otherwise the candidate is rejected already).
"""

from __future__ import annotations

from pathlib import Path

from patchsmith.domain import GoalState, Instance, Plan, SandboxConfig, TestReport
from patchsmith.infra.sandbox import Sandbox
from patchsmith.infra.workspace import WorkspaceManager
from patchsmith.recipes import Recipe
from patchsmith.tasks.edits.diff import apply_diff
from patchsmith.tasks.refactor.plan import occurrences_after, run_check
from patchsmith.tasks.testing.precheck import new_sources
from patchsmith.tasks.testing.run import is_pytest, run_tests


def non_guards(plan: Plan, test_cmd: str) -> list[str]:
    """Baseline tests that are not guards (they failed, hung or were flaky): left out of a
    refactoring's pytest runs, where they could only cost time (a hang: a time-out)."""
    if not is_pytest(test_cmd):
        return []
    guards = set(plan.pass_to_pass)
    return sorted(t for t in plan.baseline.outcomes if t not in guards)


def goal_after(
    sandbox: Sandbox,
    workspaces: WorkspaceManager,
    plan: Plan,
    recipe: Recipe,
    pristine: Path,
    diff: str,
    config: SandboxConfig,
    *,
    check: bool = True,
) -> GoalState:
    """The goal's state once ``diff`` applies to ``pristine``: occurrences rescanned in the
    changed files (in process), the check command in a fresh workspace (when ``check``)."""
    assert plan.goal is not None
    occurrences = occurrences_after(plan.goal.occurrences, recipe.goal, new_sources(pristine, diff))
    result = None
    if recipe.goal.check_cmd is not None and check:
        with workspaces.attempt(pristine) as ws:
            apply_diff(ws, diff)
            result = run_check(sandbox, ws, recipe.goal.check_cmd, config)
    return GoalState(occurrences=occurrences, check=result)


def screen_refactor(
    sandbox: Sandbox,
    workspaces: WorkspaceManager,
    instance: Instance,
    plan: Plan,
    recipe: Recipe,
    pristine: Path,
    diff: str,
    config: SandboxConfig,
) -> TestReport:
    """The full test command on the patched tree (every guard), then the goal."""
    with workspaces.attempt(pristine) as ws:
        apply_diff(ws, diff)
        report = run_tests(
            sandbox, ws, instance.test_cmd, config, deselect=non_guards(plan, instance.test_cmd)
        )
    green = bool(report.outcomes) and not any(t in report.failing() for t in plan.pass_to_pass)
    goal = goal_after(sandbox, workspaces, plan, recipe, pristine, diff, config, check=green)
    return report.model_copy(update={"goal": goal, "runner": "cold"})
