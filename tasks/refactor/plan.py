"""The goal's state on a tree, and the plan of a refactoring instance.

A refactor plan has no failing targets: the recipe goal's occurrences (file, line,
snippet) are the targets, the ``check_cmd``'s output says what else is wrong, and every
test that passes on the baseline is a guard. The occurrences are found in process, on the
pristine copy (read without following symlinks); the check runs in the sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from patchsmith.domain import (
    CheckRun,
    GoalState,
    Instance,
    Occurrence,
    Plan,
    SandboxConfig,
    SuspiciousLine,
)
from patchsmith.infra.sandbox import Sandbox
from patchsmith.recipes import Goal, Recipe
from patchsmith.tasks.localize import editable
from patchsmith.tasks.refactor.files import read_tree
from patchsmith.tasks.refactor.goal import scan
from patchsmith.tasks.testing.run import split_command

CHECK_TAIL = 4000
OCCURRENCES_SHOWN = 8


def in_scope_texts(instance: Instance, root: Path) -> dict[str, str]:
    """Path → text of the files a refactoring of ``instance`` may change."""
    return read_tree(root, lambda rel: editable(instance, rel))


def run_check(sandbox: Sandbox, workspace: Path, check_cmd: str, config: SandboxConfig) -> CheckRun:
    """The goal's check command, once, in the sandbox (a start failure propagates)."""
    env, argv = split_command(check_cmd)
    result = sandbox.run(workspace, argv, config, env)
    tail = (result.stdout_tail + result.stderr_tail)[-CHECK_TAIL:]
    return CheckRun(
        exit_code=result.exit_code, passed=result.ok, timed_out=result.timed_out, log_tail=tail
    )


def occurrences_after(
    before: list[Occurrence], goal: Goal, changed: Mapping[str, str | None]
) -> list[Occurrence]:
    """The goal's occurrences once ``changed`` (path → new text, None = deleted) applies:
    the unchanged files keep theirs, the changed ones are scanned again."""
    kept = [o for o in before if o.path not in changed]
    rescanned = scan({p: t for p, t in changed.items() if t is not None}, goal)
    return sorted([*kept, *rescanned], key=lambda o: (o.path, o.line, o.column, o.pattern))


def where(occurrences: list[Occurrence], limit: int = OCCURRENCES_SHOWN) -> str:
    """``path:line`` of the first occurrences, for reasons and feedback."""
    shown = ", ".join(o.where() for o in occurrences[:limit])
    more = len(occurrences) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def refactor_plan(
    plan: Plan,
    instance: Instance,
    recipe: Recipe,
    sandbox: Sandbox,
    pristine: Path,
    workspace: Path,
    config: SandboxConfig,
) -> Plan:
    """Turn a baseline plan into the plan of a refactoring: goal occurrences as targets
    (also ranked as the suspicious lines LLM tiers read), every passing test a guard.

    Occurrences come from ``pristine`` (never written by a sandbox), the check runs in
    ``workspace`` (a fresh one: the baseline's files do not sway it)."""
    occurrences = scan(in_scope_texts(instance, pristine), recipe.goal)
    check = None
    if recipe.goal.check_cmd is not None:
        check = run_check(sandbox, workspace, recipe.goal.check_cmd, config)
    goal = GoalState(occurrences=occurrences, check=check)
    notes = [n for n in plan.notes if "nothing to repair" not in n and "localization" not in n]
    notes.append(f"recipe {recipe.name}: {goal.summary()}")
    if occurrences:
        notes.append(f"occurrences: {where(occurrences)}")
    if check is not None and check.passed and occurrences:
        notes.append("the goal's check_cmd already passes on the baseline: only the forbidden "
                     "patterns say what is left")  # fmt: skip
    failing = plan.baseline.failing()
    if failing:
        notes.append(
            f"{len(failing)} test(s) fail on the baseline: not guards, not targets "
            f"({', '.join(failing[:5])})"
        )
    suspicious = [
        SuspiciousLine(path=o.path, line=o.line, score=1.0, sources=["goal"]) for o in occurrences
    ]
    return plan.model_copy(
        update={
            "fail_to_pass": [],
            "suspicious": suspicious,
            "goal": goal,
            "notes": notes,
            "localization": f"recipe goal: {len(occurrences)} occurrence(s)",
            "executed": {},
        }
    )
