"""The repair loop for one instance: plan → (generate → sandbox-test → critique → refine)*.

The loop is a plain function over a ``Steps`` bundle, so the same code runs through Prefect
tasks (``tasks/steps.py``) or as direct calls (tests, the orchestration benchmark). Each
attempt is handed to ``ctx.on_attempt`` as soon as it is judged, before the next step.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from patchsmith.config import Campaign, LLMTier, SearchTier, Tier
from patchsmith.domain import (
    Attempt,
    AttemptStatus,
    Candidate,
    ChangesetPart,
    Critique,
    GiveUp,
    Instance,
    Outcome,
    OutcomeStatus,
    Plan,
    SandboxConfig,
    TestReport,
    Usage,
    Verdict,
    patch_lines,
)
from patchsmith.errors import EditError, InfraError, Interrupted
from patchsmith.infra.envs import EnvError, Environments, ResolvedEnv
from patchsmith.infra.sandbox import Sandbox, running
from patchsmith.infra.settings import home as data_home
from patchsmith.infra.store import Store
from patchsmith.infra.workspace import WorkspaceManager
from patchsmith.tasks.critique import critique, lint_delta
from patchsmith.tasks.edits.diff import apply_diff
from patchsmith.tasks.edits.malformed import raise_if_malformed
from patchsmith.tasks.generate import Generator, make_generator
from patchsmith.tasks.planning import make_plan
from patchsmith.tasks.policy import (
    Ledger,
    Spend,
    TierSignals,
    TierStart,
    budget_left,
    call_refused,
    campaign_left,
    decide,
    early_escalation,
    tier_budget_left,
)
from patchsmith.tasks.refactor.evaluate import goal_after, non_guards, screen_refactor
from patchsmith.tasks.refactor.plan import in_scope_texts, refactor_plan, where
from patchsmith.tasks.refactor.progress import Progress
from patchsmith.tasks.refactor.split import parts as split_parts
from patchsmith.tasks.routing import route
from patchsmith.tasks.testing.precheck import (
    code_key,
    compile_error,
    file_versions,
    new_sources,
    present,
)
from patchsmith.tasks.testing.run import is_pytest, run_tests, split_command, staged_run
from patchsmith.tasks.testing.warm import WarmRunner

KEPT = "refactor:kept"
"""Generator name of the composed changes an unfinished refactoring verifies and ships."""
PART = "refactor:part"
"""Generator name of one part of a split refactoring, verified alone."""
R = TypeVar("R")

StepTracer = Callable[[str, dict[str, Any]], AbstractContextManager[Any]]


def _no_trace(name: str, attrs: dict[str, Any]) -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


@dataclass
class RepairContext:
    """Everything the steps of one campaign share.

    ``envs`` resolves (and builds once) each instance's environment; by default under
    ``$PATCHSMITH_HOME/envs`` with this context's sandbox and workspaces.
    """

    campaign: Campaign
    sandbox: Sandbox
    workspaces: WorkspaceManager
    on_attempt: Callable[[Attempt], None] = lambda attempt: None
    trace: StepTracer = _no_trace
    store: Store | None = None
    envs: Environments | None = None
    # Called with a tier's index before that tier starts (not before the first): a campaign
    # gives the instance's slot to cheaper work waiting and returns the seconds it waited
    # (tasks/slots.py); alone, an instance goes straight on.
    next_tier: Callable[[int], float] = lambda index: 0.0
    # What the campaign has spent over all instances (``campaign_budget:``); shared by the
    # copies a campaign makes per instance.
    ledger: Ledger = field(default_factory=Ledger)

    def __post_init__(self) -> None:
        if self.envs is None:
            self.envs = Environments(data_home() / "envs", self.sandbox, self.workspaces)
        # Not a field: Prefect walks a task's dataclass arguments field by field, and this
        # dict changes while other instances' steps run.
        self._screens: dict[str, Screen] = {}
        self._screens_lock = threading.Lock()

    def screen(self, instance: Instance) -> Screen:
        """The instance's screening state (created on first use, dropped by end_screen)."""
        with self._screens_lock:
            return self._screens.setdefault(instance.instance_id, Screen())

    def end_screen(self, instance: Instance) -> None:
        """Close the instance's warm session, if it had one."""
        with self._screens_lock:
            screen = self._screens.pop(instance.instance_id, None)
        if screen is not None and screen.warm is not None:
            screen.warm.close()


@dataclass
class Screen:
    """What screening remembers about one instance: the code already tested (by syntax
    tree, see ``testing/precheck.py``) and its warm pytest session."""

    seen: dict[str, str] = field(default_factory=dict)
    warm: WarmRunner | None = None


# ------------------------------------------------------------------ plain steps


def pristine_tree(workspaces: WorkspaceManager, instance: Instance) -> Path:
    """The pristine copy of the instance's repo, with its test patch applied once."""
    patch = instance.test_patch

    def apply_test_patch(path: Path) -> None:
        if patch:
            apply_diff(path, patch)

    return workspaces.pristine(instance, prepare=apply_test_patch if patch else None)


def prepare_pristine(ctx: RepairContext, instance: Instance) -> Path:
    """The pristine copy of the instance's repo, with its test patch applied once."""
    return pristine_tree(ctx.workspaces, instance)


def environment(ctx: RepairContext, instance: Instance, pristine: Path) -> ResolvedEnv:
    """The instance's environment, resolved (an ``install`` env is built once, then reused).

    Raises EnvError naming the instance, the cause and the fix.
    """
    assert ctx.envs is not None
    return ctx.envs.resolve(
        ctx.campaign.environment_for(instance),
        ctx.campaign.sandbox,
        repo=instance.repo,
        pristine=pristine,
        label=f"{ctx.campaign.name}/{instance.instance_id}",
    )


def sandbox_config(ctx: RepairContext, instance: Instance, pristine: Path) -> SandboxConfig:
    """The sandbox settings the instance's tests run under: the campaign's limits, in the
    instance's environment (binds, PATH, variables). Every test run goes through this."""
    return environment(ctx, instance, pristine).config


def plan_step(ctx: RepairContext, instance: Instance, pristine: Path) -> Plan:
    """Baseline run + localization in a throwaway workspace; for a refactoring, the
    recipe goal's occurrences (read from the pristine tree) and its check (in a fresh one).

    With warm screening, the baseline's second run (flaky tests) is the first run of the
    warm session that will screen the candidates (see ``make_plan``): one cold run fewer.
    """
    config = sandbox_config(ctx, instance, pristine)
    recipe = ctx.campaign.recipe_for(instance)

    agreed: list[bool] = []

    def warm_rerun(baseline: TestReport) -> bool:
        limits = baseline_limits(config, baseline)
        report = _warm_session(ctx, instance, pristine, limits).unchanged()
        agreed.append(report is not None and report.outcomes == baseline.outcomes)
        return agreed[-1]

    warm = ctx.campaign.screening == "warm" and recipe is None
    with ctx.workspaces.attempt(pristine) as ws:
        plan = make_plan(instance, ctx.sandbox, ws, config, ctx.campaign.tiers[0].name,
                         warm_rerun=warm_rerun if warm else None)  # fmt: skip
    screen = ctx.screen(instance)
    if agreed and screen.warm is not None:
        if agreed[-1]:  # every test as in the baseline: calibrated for these targets
            screen.warm.targets, screen.warm.guards = plan.fail_to_pass, plan.pass_to_pass
        else:  # no run, or a disagreement: the first candidate starts a calibrated one
            screen.warm.close()
            screen.warm = None
    if recipe is None:
        return plan
    with ctx.workspaces.attempt(pristine) as ws:
        return refactor_plan(plan, instance, recipe, ctx.sandbox, pristine, ws, config)


def generate_step(
    generator: Generator,
    instance: Instance,
    plan: Plan,
    pristine: Path,
    tried: set[str],
    feedback: list[str],
    n: int,
) -> list[Candidate]:
    """One round of candidates from the current tier's generator."""
    return generator.propose(instance, plan, pristine, tried, feedback, n)


CANDIDATE_TIMEOUT_FACTOR = 5.0
CANDIDATE_TIMEOUT_FLOOR_S = 3.0
CANDIDATE_TEST_FACTOR = 3.0
CANDIDATE_TEST_FLOOR_S = 1.0


def candidate_limits(config: SandboxConfig, plan: Plan) -> SandboxConfig:
    """Limits for testing a candidate of ``plan`` (see :func:`baseline_limits`)."""
    return baseline_limits(config, plan.baseline)


def baseline_limits(config: SandboxConfig, baseline: TestReport) -> SandboxConfig:
    """Limits for testing a candidate: the timeouts scale with the baseline run.

    A mutant that loops forever (``break`` → ``continue``) should cost a few times the
    suite's normal duration, not the whole configured limit; never more than that limit.
    The whole command: 5x the baseline, at least 3 s (what a loop costs where no per-test
    limit applies: ``python test.py``, ``make test``).
    Per test: 3x the baseline's whole duration without its hanging tests (Python
    and pytest start-up included), which bounds its slowest test, at least a second, at most
    half the command's limit and never above a configured ``test_timeout_s``, so a looping
    test fails alone as ``timeout`` soon after it would have passed.
    """
    if baseline.timed_out or baseline.duration_s <= 0:
        return config
    scaled = max(CANDIDATE_TIMEOUT_FLOOR_S, CANDIDATE_TIMEOUT_FACTOR * baseline.duration_s)
    timeout = min(config.timeout_s, scaled)
    per_test = max(CANDIDATE_TEST_FLOOR_S, CANDIDATE_TEST_FACTOR * baseline.duration_s)
    per_test = min(per_test, timeout / 2, config.test_timeout_s or timeout)
    return config.model_copy(update={"timeout_s": timeout, "test_timeout_s": per_test})


def test_step(
    ctx: RepairContext, instance: Instance, plan: Plan, pristine: Path, candidate: Candidate
) -> TestReport:
    """Screen one candidate: prechecks (compiles, new code), then the instance's warm
    session, else a cold run in a throwaway workspace; targets first, then the rest.

    A candidate its generator marked malformed raises its EditError before any workspace.
    """
    raise_if_malformed(candidate)
    sources = new_sources(pristine, candidate.diff)
    screen = ctx.screen(instance)
    problem = compile_error(sources)
    if problem is None:
        earlier = screen.seen.setdefault(code_key(sources), candidate.candidate_id)
        if earlier != candidate.candidate_id:
            problem = f"the same code as candidate {earlier} (formatting and comments aside)"
    if problem is not None:
        return TestReport(log_tail=f"patchsmith: {problem}", stopped_early=True, runner="precheck")
    limits = candidate_limits(sandbox_config(ctx, instance, pristine), plan)
    recipe = ctx.campaign.recipe_for(instance)
    if plan.goal is not None and recipe is not None:
        return screen_refactor(
            ctx.sandbox, ctx.workspaces, instance, plan, recipe, pristine, candidate.diff, limits
        )
    note: str | None = None
    if ctx.campaign.screening == "warm":
        warm = _warm_session(ctx, instance, pristine, limits, plan)
        note = warm.why_cold(candidate.diff, plan.fail_to_pass)
        if note is None:
            report = warm.run(present(sources), plan.fail_to_pass, limits)
            if report is not None:
                return report
            note = f"warm runner unavailable: {warm.broken or 'its session ended'}"
    with ctx.workspaces.attempt(pristine) as ws:
        apply_diff(ws, candidate.diff)
        report = staged_run(ctx.sandbox, ws, instance.test_cmd, limits, plan.fail_to_pass)
    return report.model_copy(update={"runner": "cold", "runner_note": note})


def _warm_session(
    ctx: RepairContext,
    instance: Instance,
    pristine: Path,
    limits: SandboxConfig,
    plan: Plan | None = None,
) -> WarmRunner:
    """The instance's warm session (made on first use, with candidates' ``limits``),
    calibrated against the plan's targets and guards when made after the plan."""
    screen = ctx.screen(instance)
    if screen.warm is None:
        screen.warm = WarmRunner(
            ctx.sandbox, ctx.workspaces, pristine, instance.test_cmd, limits,
            lifetime_s=ctx.campaign.budget.max_wall_s + limits.timeout_s,
            targets=plan.fail_to_pass if plan else (), guards=plan.pass_to_pass if plan else (),
        )  # fmt: skip
    return screen.warm


def run_tool(ctx: RepairContext, instance: Instance, tree: Path, command: str) -> dict[str, str]:
    """A codemod command in the sandbox on a throwaway workspace of ``tree``: path → text of
    the in-scope files afterwards (read without following symlinks). A command that fails
    still counts by what it changed; its tests decide."""
    config = sandbox_config(ctx, instance, tree)
    env, argv = split_command(command)
    with ctx.workspaces.attempt(tree) as ws:
        ctx.sandbox.run(ws, argv, config, env)
        return in_scope_texts(instance, ws)


def critique_step(
    plan: Plan,
    report: TestReport,
    candidate: Candidate,
    pristine: Path,
    generator: Generator | None = None,
) -> Critique:
    """Deterministic verdict, then the tier's critic. ruff (new errors on changed lines)
    runs only for a candidate the tests would accept: for the others it changes nothing."""
    verdict = critique(plan, report, candidate.diff)
    if verdict.verdict == Verdict.accept:
        versions = file_versions(pristine, candidate.diff)
        before = {p: old for p, (old, new) in versions.items() if new is not None}
        after = present({p: new for p, (_, new) in versions.items()})
        delta = lint_delta(candidate.diff, before, after)
        if delta:
            verdict = critique(plan, report, candidate.diff, delta)
    return generator.review(plan, candidate, report, verdict) if generator else verdict


def verify_step(
    ctx: RepairContext, instance: Instance, plan: Plan, pristine: Path, diff: str
) -> tuple[TestReport, Critique]:
    """Verify-only: the final patch on a fresh workspace, the full test command once more."""
    config = sandbox_config(ctx, instance, pristine)
    skip = non_guards(plan, instance.test_cmd) if plan.goal is not None else []
    with ctx.workspaces.attempt(pristine) as ws:
        apply_diff(ws, diff)
        report = run_tests(ctx.sandbox, ws, instance.test_cmd, config, deselect=skip)
    recipe = ctx.campaign.recipe_for(instance)
    if plan.goal is not None and recipe is not None:
        goal = goal_after(ctx.sandbox, ctx.workspaces, plan, recipe, pristine, diff, config)
        report = report.model_copy(update={"goal": goal})
    return report, critique(plan, report, diff)


def screen_step(run: Callable[[], R]) -> R | Interrupted:
    """Screen one round: ``run`` tests, judges and records each candidate in turn (the
    test and critique steps, called directly). One step per round, not three per candidate:
    a Prefect task run costs more than a warm test run (on the 71-program script corpus
    of ``bench/search_floor.py``, instances took 90.9 s with three task runs per
    candidate and 39.8 s with none). A stop comes back as a value, not raised: Prefect
    would log it as a failed task run."""
    try:
        return run()
    except Interrupted as exc:
        return exc


@dataclass(frozen=True)
class Steps:
    """The callables the loop uses; Prefect tasks or the plain functions above."""

    plan: Callable[..., Plan] = plan_step
    generate: Callable[..., list[Candidate]] = generate_step
    screen: Callable[..., Any] = screen_step
    test: Callable[..., TestReport] = test_step
    critique: Callable[..., Critique] = critique_step
    refine: Callable[..., tuple[Verdict, str]] = decide
    verify: Callable[..., tuple[TestReport, Critique]] = verify_step


DIRECT = Steps()


# ------------------------------------------------------------------ the loop


@dataclass
class _State:
    instance: Instance
    spend: Spend
    tried: set[str]
    number: int
    reasons: list[str] = field(default_factory=list)
    signals: dict[str, TierSignals] = field(default_factory=dict)  # per LLM tier reached
    rules: list[str] = field(default_factory=list)  # business rules that applied
    route: dict[str, Any] = field(default_factory=dict)  # intent routing's decision
    last: Attempt | None = None  # the attempt recorded last
    progress: Progress | None = None  # a refactoring's kept changes (tasks/refactor/)
    moved: bool = False  # the last candidate was kept: the next round starts from it
    final: str | None = None  # generator of the verified candidate

    def current(self, plan: Plan, pristine: Path) -> tuple[Plan, Path]:
        """The plan and tree the next round works on (a refactoring's kept base)."""
        if self.progress is None:
            return plan, pristine
        return self.progress.plan, self.progress.pristine


def _outcome(state: _State, status: OutcomeStatus, **kw: Any) -> Outcome:
    return Outcome(
        instance_id=state.instance.instance_id,
        status=status,
        attempts=state.spend.attempts,
        duration_s=round(state.spend.elapsed(), 3),
        reasons=state.reasons,
        usage=state.spend.usage,
        signals=_signals(state),
        rules=list(dict.fromkeys(state.rules)),
        route=state.route,
        goal=state.progress.record(status == OutcomeStatus.resolved, kw.get("tier"), state.final)
        if state.progress is not None
        else None,
        **kw,
    )


def _signals(state: _State) -> dict[str, dict[str, float]]:
    return {name: s.record() for name, s in state.signals.items()}


class RepairError(Exception):
    """An unexpected error ended the repair; carries the outcome so far (attempts, usage)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reasons[-1] if outcome.reasons else "repair failed")
        self.outcome = outcome


def _resumed_spend(prior: Sequence[Attempt]) -> Spend:
    """Budget already used by an interrupted run: attempts, usage and time all count."""
    usage = Usage()
    for attempt in prior:
        usage = usage + attempt.usage
    elapsed = sum(a.duration_s for a in prior)
    return Spend(started=time.monotonic() - elapsed, attempts=len(prior), usage=usage)


def _unverified(prior: Sequence[Attempt]) -> list[Attempt]:
    """Accepted attempts whose verify-only run never got recorded (killed during verify)."""
    settled = {a.candidate.candidate_id for a in prior if a.candidate and a.error}
    return [
        a
        for a in prior
        if a.status == AttemptStatus.accepted
        and a.candidate
        and a.candidate.generator not in (KEPT, PART)  # verify runs of their own
        and a.candidate.candidate_id not in settled
    ]


def repair(
    instance: Instance,
    ctx: RepairContext,
    steps: Steps = DIRECT,
    *,
    prior: Sequence[Attempt] = (),
) -> Outcome:
    """Repair one instance. ``prior`` = attempts of an interrupted run (not repeated).

    Expected endings are Outcomes; anything unexpected is raised as RepairError carrying
    the outcome so far, after every finished attempt has been handed to ``ctx.on_attempt``.
    """
    state = _State(
        instance=instance,
        spend=_resumed_spend(prior),
        tried={a.candidate.candidate_id for a in prior if a.candidate},
        number=max((a.number for a in prior), default=0),
    )
    if prior:
        state.reasons.append(f"resumed after {len(prior)} recorded attempt(s)")
    try:
        outcome = _repair(instance, ctx, steps, state, prior)
    except Interrupted:
        raise
    except Exception as exc:
        _check_stop(instance, exc)  # a step that failed because the stop killed it
        state.reasons.append(f"{type(exc).__name__}: {exc}")
        raise RepairError(_outcome(state, OutcomeStatus.error, give_up=GiveUp.error)) from exc
    finally:
        ctx.end_screen(instance)
    # An ending reached while stopping (a plan whose baseline was killed, say) is not
    # trusted: the instance gets no outcome and the next run resumes it.
    _check_stop(instance)
    return outcome


def _check_stop(instance: Instance, cause: BaseException | None = None) -> None:
    """Raise Interrupted once a stop is requested (Ctrl-C, SIGTERM); see errors.Interrupted."""
    if running.stop_requested():
        raise Interrupted(f"{instance.instance_id}: stopped before it finished") from cause


def _repair(
    instance: Instance, ctx: RepairContext, steps: Steps, state: _State, prior: Sequence[Attempt]
) -> Outcome:
    spent = budget_left(ctx.campaign.budget, state.spend) or _campaign_spent(ctx)
    if spent:
        state.reasons.append(spent)
        return _outcome(state, OutcomeStatus.unresolved, give_up=GiveUp.budget)
    pristine = prepare_pristine(ctx, instance)
    with ctx.trace("environment", {"instance_id": instance.instance_id}):
        problem = check_environment(ctx, instance, pristine)
    if problem:  # before any repair work: nothing here can be fixed by a patch
        state.reasons.append(problem)
        return _outcome(state, OutcomeStatus.error, give_up=GiveUp.environment)
    with ctx.trace("plan", {"instance_id": instance.instance_id}):
        plan = steps.plan(ctx, instance, pristine)
    state.reasons.extend(plan.notes)
    for check, code in (
        (_cannot_start, GiveUp.baseline_cannot_start),
        (_no_outcomes, GiveUp.baseline_no_outcomes),
    ):
        cannot = check(ctx, instance, plan.baseline)
        if cannot:
            state.reasons.append(cannot)
            return _outcome(state, OutcomeStatus.error, give_up=code)
    if plan.goal is not None and instance.recipe is not None:
        state.progress = Progress.start(instance.recipe, pristine, plan)
        if plan.goal.met:
            state.reasons.append(
                f"recipe {instance.recipe}: the goal is already met: nothing to refactor"
            )
            return _outcome(state, OutcomeStatus.unresolved, give_up=GiveUp.nothing_to_repair)
        _replay(ctx, state, prior)
    elif not plan.fail_to_pass:
        state.reasons.append("no failing target tests: nothing to repair")
        return _outcome(state, OutcomeStatus.unresolved, give_up=GiveUp.nothing_to_repair)
    tiers = {t.name: t for t in ctx.campaign.tiers}
    for attempt in _unverified(prior):
        assert attempt.candidate is not None
        tier = tiers.get(attempt.tier, ctx.campaign.tiers[0])
        candidate, first, tree = attempt.candidate, plan, pristine
        if state.progress is not None:  # its diff is against the base it saw: compose
            candidate = state.progress.cumulative(candidate)
            first, tree = state.progress.original_plan, state.progress.original
        outcome = _verify(ctx, steps, state, first, tree, tier, candidate, [])
        if outcome is not None:
            return outcome
    skipped = _ruled_out(ctx.campaign, state)
    if len(skipped) == len(ctx.campaign.tiers):
        state.reasons.append("business rules leave no tier to run: " + "; ".join(skipped.values()))
        return _outcome(state, OutcomeStatus.unresolved, give_up=GiveUp.exhausted)
    with ctx.trace("route", {"instance_id": instance.instance_id}):
        ordered, state.route = route(ctx.campaign, instance, plan, pristine)
    if state.route:
        state.reasons.append(f"route: start at {state.route['first']} ({state.route['evidence']})")
    started, ran = False, None
    for position, (index, tier) in enumerate(ordered):
        last = position == len(ordered) - 1
        if tier.name in skipped:
            state.reasons.append(f"{tier.name}: skipped: {skipped[tier.name]}")
            continue
        if started:
            _wait_for_tier(ctx, state, index, tier)
        started, ran = True, tier
        outcome = _run_tier(ctx, steps, state, plan, pristine, tier, last)
        if outcome is not None:
            # The tier's unattributed model usage was settled after the outcome was made.
            outcome = outcome.model_copy(
                update={"usage": state.spend.usage, "signals": _signals(state)}
            )
            return _finish(ctx, steps, state, outcome, tier)
    outcome = _outcome(state, OutcomeStatus.unresolved, give_up=GiveUp.exhausted)
    return _finish(ctx, steps, state, outcome, ran or ordered[-1][1])


def _replay(ctx: RepairContext, state: _State, prior: Sequence[Attempt]) -> None:
    """Rebuild a resumed refactoring's kept base from its recorded attempts, in order."""
    assert state.progress is not None
    for attempt in sorted(prior, key=lambda a: a.number):
        crit, report, candidate = attempt.critique, attempt.report, attempt.candidate
        if not (candidate and candidate.generator not in (KEPT, PART) and not attempt.error):
            continue  # a partial ending's composed verify run (or a part's) is no step
        if crit and crit.progress and report and report.goal:
            state.progress.advance(ctx.workspaces, attempt.tier, candidate, report.goal)
    if state.progress.kept:
        state.reasons.append(f"resumed from {len(state.progress.kept)} kept refactoring step(s)")


def _finish(
    ctx: RepairContext, steps: Steps, state: _State, outcome: Outcome, tier: Tier
) -> Outcome:
    """A refactoring's ending: its kept changes shipped when unfinished, then split into
    parts when its recipe says so."""
    outcome = _partial(ctx, steps, state, outcome, tier)
    recipe = ctx.campaign.recipe_for(state.instance)
    if recipe is None or recipe.split == "none" or not outcome.patch or state.progress is None:
        return outcome
    return _split(ctx, steps, state, outcome, tier, recipe.split)


def _split(
    ctx: RepairContext,
    steps: Steps,
    state: _State,
    outcome: Outcome,
    tier: Tier,
    split: Literal["file", "package"],
) -> Outcome:
    """Each part of the shipped change verified alone on the original tree."""
    assert state.progress is not None and outcome.patch is not None
    progress = state.progress
    pieces = split_parts(progress.original, outcome.patch, split)
    if len(pieces) < 2:
        return outcome
    made: list[ChangesetPart] = []
    for name, diff in pieces.items():
        part = Candidate(
            candidate_id=Candidate.make_id(diff), generator=PART, tier=tier.name, diff=diff,
            description=f"part {name}", files=sorted(file_versions(progress.original, diff)),
        )  # fmt: skip
        report, crit, started, t0 = _verify_on_original(ctx, steps, state, part)
        alone = bool(report.outcomes) and not crit.regressions and not report.timed_out
        ok = alone and (crit.verdict == Verdict.accept or crit.progress)
        note = "verified alone" if ok else "fails alone: " + "; ".join(crit.reasons)
        status = AttemptStatus.accepted if ok else AttemptStatus.rejected
        _record(ctx, state, tier, part, report, crit, None if ok else note, started, t0,
                status=status, verify=True)  # fmt: skip
        made.append(ChangesetPart(name=name, diff=diff, files=part.files,
                                  lines=patch_lines(diff), verified=ok, note=note))  # fmt: skip
    good = sum(p.verified for p in made)
    state.reasons.append(f"split by {split} into {len(made)} part(s), {good} verified alone")
    return outcome.model_copy(update={"parts": made, "reasons": state.reasons})


def _verify_on_original(
    ctx: RepairContext, steps: Steps, state: _State, candidate: Candidate
) -> tuple[TestReport, Critique, float, float]:
    """The verify-only run of ``candidate`` (a diff against the refactoring's original tree)
    on a fresh workspace of that tree, with when it started (wall, monotonic); a run the
    stop killed raises Interrupted (it proves nothing either way)."""
    assert state.progress is not None
    started, t0 = time.time(), time.monotonic()
    _check_stop(state.instance)
    try:
        with ctx.trace("verify", {"candidate": candidate.candidate_id, "run": 1}):
            report, crit = steps.verify(
                ctx, state.instance, state.progress.original_plan, state.progress.original,
                candidate.diff,
            )  # fmt: skip
    except Exception as exc:
        _check_stop(state.instance, exc)
        raise
    _check_stop(state.instance)
    return report, crit, started, t0


def _partial(
    ctx: RepairContext, steps: Steps, state: _State, outcome: Outcome, tier: Tier
) -> Outcome:
    """An unfinished refactoring ships what it kept: the composed changes, verified on a
    fresh workspace of the original tree (guards green, fewer occurrences), or nothing."""
    progress = state.progress
    if outcome.status != OutcomeStatus.unresolved or progress is None or not progress.base:
        return outcome
    original = progress.original_plan
    kept = Candidate(
        candidate_id=Candidate.make_id(progress.base),
        generator=KEPT,
        tier=tier.name,
        diff=progress.base,
        description=f"{progress.recipe}: {len(progress.kept)} kept step(s), composed",
        files=sorted(file_versions(progress.original, progress.base)),
        parent_ids=list(progress.kept),
    )
    report, final, started, t0 = _verify_on_original(ctx, steps, state, kept)
    held = final.progress
    why = None if held else "kept changes failed their verify-only run: " + "; ".join(final.reasons)
    _record(ctx, state, tier, kept, report, final, why, started, t0,
            status=AttemptStatus.rejected, verify=True)  # fmt: skip
    goal = progress.record(False, None)
    if not held:
        state.reasons.append(str(why))
        assert original.goal is not None
        goal = goal.model_copy(
            update={"after": goal.before, "by_tier": {}, "remaining": original.goal.occurrences}
        )
        return outcome.model_copy(update={"reasons": state.reasons, "goal": goal})
    ruling = [r for r in ctx.campaign.rules_for(state.instance) if r.matches_patch(kept.files)]
    review = [r.name for r in ruling if r.needs_review]
    state.rules.extend(r.name for r in ruling)
    if review:
        state.reasons.append(f"held for review by rule(s) {', '.join(review)}")
    state.reasons.append(
        f"partially done: {goal.before - goal.after} of {goal.before} occurrence(s) migrated, "
        f"verified on a fresh workspace; left: {where(goal.remaining) or 'none'}"
        + ("" if goal.check_passed is not False else "; the goal's check_cmd still fails")
    )
    return outcome.model_copy(
        update={
            "reasons": state.reasons,
            "goal": goal,
            "patch": progress.base,
            "needs_review": bool(review),
            "rules": list(dict.fromkeys(state.rules)),
            "attempts": state.spend.attempts,
            "tier": outcome.tier or tier.name,
        }
    )


def _ruled_out(campaign: Campaign, state: _State) -> dict[str, str]:
    """Tiers the instance's business rules skip (min_tier, require_critic), and why."""
    out: dict[str, str] = dict(campaign.tiers_for(state.instance))
    names = [t.name for t in campaign.tiers]
    for rule in campaign.rules_for(state.instance):
        state.rules.append(rule.name)
        if rule.min_tier is not None:
            for name in names[: names.index(rule.min_tier)]:
                out.setdefault(name, f"rule {rule.name!r} starts at tier {rule.min_tier!r}")
        if rule.require_critic:
            for tier in campaign.tiers:
                if not (isinstance(tier, LLMTier) and tier.critic is not None):
                    out.setdefault(tier.name, f"rule {rule.name!r} requires an LLM critic")
    return out


def _campaign_spent(ctx: RepairContext) -> str | None:
    return campaign_left(ctx.campaign.campaign_budget, ctx.ledger)


def _wait_for_tier(ctx: RepairContext, state: _State, index: int, tier: Tier) -> None:
    """Let cheaper tiers of other instances go first; the wait is not this instance's time
    (its wall budget and duration leave it out), but the reasons say how long it was."""
    waited = ctx.next_tier(index)
    _check_stop(state.instance)
    state.spend.started += waited
    if waited >= 1:
        state.reasons.append(
            f"{tier.name}: waited {waited:.0f}s for a slot while cheaper tiers ran"
        )


def check_environment(ctx: RepairContext, instance: Instance, pristine: Path) -> str | None:
    """Why the instance's tests cannot run at all (its environment failed to build, the test
    command cannot start in the sandbox), or None. Builds the environment if needed, then
    costs one or two sandbox starts."""
    try:
        resolved = environment(ctx, instance, pristine)
    except EnvError as exc:
        return str(exc)
    env, argv = split_command(instance.test_cmd)
    if not argv:
        return f"{instance.instance_id}: test_cmd is empty"
    python_m_pytest = is_pytest(instance.test_cmd) and Path(argv[0]).name not in (
        "pytest",
        "py.test",
    )
    assert ctx.envs is not None
    with ctx.workspaces.attempt(pristine) as ws:
        return ctx.envs.preflight(
            ws,
            argv,
            resolved.config,
            env,
            label=f"{ctx.campaign.name}/{instance.instance_id}",
            pytest_module=python_m_pytest,
        )


CANNOT_START = (126, 127)


def _cannot_start(ctx: RepairContext, instance: Instance, baseline: TestReport) -> str | None:
    """A baseline that exited 126/127 with no outcomes: a command inside the test command
    (past what the preflight checks, e.g. after ``&&``) is missing or not executable."""
    if baseline.exit_code not in CANNOT_START or baseline.outcomes.keys() - {instance.test_cmd}:
        return None
    last = baseline.log_tail.strip().splitlines()[-1:] or [""]
    return (
        f"{ctx.campaign.name}/{instance.instance_id}: the test command cannot start in the "
        f"sandbox (exit {baseline.exit_code}: {last[0]}); a program it runs is not visible "
        "there: fix: set environment.python to the interpreter or venv it needs (mounted "
        "read-only), or environment.install to build one from the repository's requirements"
    )


def _no_outcomes(ctx: RepairContext, instance: Instance, baseline: TestReport) -> str | None:
    """A baseline that failed without reporting a single test (a pytest usage or internal
    error, nothing collected): nothing can be localized or repaired, and it is the test
    command or the environment that needs fixing, not the code."""
    if baseline.outcomes or baseline.exit_code in (0, None):
        return None
    tail = " | ".join(baseline.log_tail.strip().splitlines()[-3:])
    return (
        f"{ctx.campaign.name}/{instance.instance_id}: the baseline ran but reported no test "
        f"outcome (exit {baseline.exit_code}: {tail or 'no output'}); fix the test_cmd "
        "(paths, options) or the environment (environment.python / environment.install) "
        "so that it runs the tests"
    )


def _run_tier(
    ctx: RepairContext,
    steps: Steps,
    state: _State,
    plan: Plan,
    pristine: Path,
    tier: Tier,
    last: bool,
) -> Outcome | None:
    """Rounds of one tier. An Outcome ends the instance; None escalates to the next tier."""
    recipe = ctx.campaign.recipe_for(state.instance)
    generator = make_generator(
        tier,
        ctx.store,
        recipe=recipe,
        run_tool=lambda inst, tree, cmd: run_tool(ctx, inst, tree, cmd),
    )
    try:
        return _tier_rounds(ctx, steps, state, plan, pristine, tier, last, generator)
    finally:
        # Calls whose replies no candidate paid for (repeats) still count, here and in
        # the campaign's ledger.
        leftover = generator.settle()
        state.spend.usage = state.spend.usage + leftover
        ctx.ledger.charge(leftover)


def _tier_rounds(
    ctx: RepairContext,
    steps: Steps,
    state: _State,
    plan: Plan,
    pristine: Path,
    tier: Tier,
    last: bool,
    generator: Generator,
) -> Outcome | None:
    feedback: list[str] = []
    budget = ctx.campaign.budget

    def give_up(why: str, *, exhausted: bool) -> Outcome:
        scope = generator.scope(plan, pristine, exhausted=exhausted)
        state.reasons.append(f"{why}: {scope}" if scope else why)
        if exhausted and not plan.suspicious and not plan.executed:
            code = GiveUp.no_evidence
        else:
            code = GiveUp.exhausted if exhausted else GiveUp.budget
        return _outcome(state, OutcomeStatus.unresolved, tier=tier.name, give_up=code)

    start = TierStart.of(state.spend)
    llm = isinstance(tier, LLMTier)
    # Mutation search proposes from the parsed tree alone (no model, no sandbox: nothing to
    # retry), in a plain call; its round is one task run, the screen step's. Saves a task
    # run per round: ~27 ms of the Prefect server's CPU each (bench/search_floor.py).
    propose = generate_step if isinstance(tier, SearchTier) else steps.generate
    rules = tier.escalate if isinstance(tier, LLMTier) else None
    signals = state.signals.setdefault(tier.name, TierSignals()) if llm else None

    def early_signal() -> Outcome | Literal["escalate"] | None:
        """The tier's escalation rules: hand over (the last tier gives up) when one holds."""
        why = early_escalation(rules, signals) if signals is not None else None
        if why is None:
            return None
        if last:
            state.reasons.append(f"{tier.name}: stopped early: {why}")
            return _outcome(state, OutcomeStatus.unresolved, tier=tier.name, give_up=GiveUp.signals)
        state.reasons.append(f"{tier.name}: escalating early: {why}")
        return "escalate"

    def tier_spent() -> str | None:
        """The tier's own share is spent: escalate (the reason says how far it got)."""
        why = tier_budget_left(tier.budget, state.spend, start)
        if why is None:
            return None
        scope = generator.scope(plan, pristine, exhausted=False)
        state.reasons.append(f"{tier.name}: {why}" + (f": {scope}" if scope else ""))
        return why

    def screen_round(
        round_: list[Candidate], plan: Plan, pristine: Path, judged: set[int]
    ) -> Outcome | Literal["escalate"] | None:
        """The round's candidates in turn: an Outcome or "escalate" ends the tier, None
        goes on to the next round. A retry after an infrastructure fault runs this again:
        the candidates it already judged are skipped, not the faulted one."""
        for position, candidate in enumerate(round_):
            if position in judged:
                continue
            _check_stop(state.instance)
            state.last = None
            outcome = _try(ctx, steps, state, plan, pristine, tier, generator, candidate, feedback)
            judged.add(position)  # not reached when the test raised
            if signals is not None and state.last is not None:
                signals.observe(state.last)
            if outcome is not None:
                return outcome
            if early := early_signal():
                return early
            if state.moved:  # kept: the next round starts from it (the rest are stale)
                state.moved = False
                return None
            verdict, why = decide(budget, state.spend, tier_exhausted=False, last_tier=last)
            if verdict == Verdict.give_up:
                return give_up(why, exhausted=False)
            if spent := _campaign_spent(ctx):  # other instances spend it too
                return give_up(spent, exhausted=False)
            if tier_budget_left(tier.budget, state.spend, start):
                return None  # the round's other candidates wait: escalate (or give up)
        return None

    while True:
        _check_stop(state.instance)
        plan, pristine = state.current(plan, pristine)
        spent = budget_left(budget, state.spend) or _campaign_spent(ctx)
        if spent:
            return give_up(spent, exhausted=False)
        if not last and tier_spent():
            return None
        room = budget.max_attempts - state.spend.attempts
        refused = call_refused(
            generator.estimate(min(tier.batch, room)),
            budget=budget,
            spend=state.spend,
            tier=tier.budget,
            start=start,
            campaign=ctx.campaign.campaign_budget,
            ledger=ctx.ledger,
        )
        if refused:
            level, why = refused
            if level == "tier" and not last:  # the tier's share: the next tier may go on
                state.reasons.append(f"{tier.name}: {why}")
                return None
            return give_up(f"{tier.name}: {why}", exhausted=False)
        with ctx.trace("generate", {"tier": tier.name}):
            round_ = propose(
                generator,
                state.instance,
                plan,
                pristine,
                set(state.tried),
                feedback,
                min(tier.batch, room),
            )
        if not round_ and signals is not None:
            signals.end_round(generator.repeats)
            if early := early_signal():
                return None if early == "escalate" else early
        if not round_:
            verdict, why = steps.refine(budget, state.spend, tier_exhausted=True, last_tier=last)
            if verdict == Verdict.escalate:
                scope = generator.scope(plan, pristine, exhausted=True)
                state.reasons.append(f"{tier.name}: {why}" + (f": {scope}" if scope else ""))
                return None
            return give_up(
                f"{tier.name}: {why}", exhausted=budget_left(budget, state.spend) is None
            )

        ended = steps.screen(functools.partial(screen_round, round_, plan, pristine, set()))
        if isinstance(ended, Interrupted):
            raise ended
        if ended is not None:
            return None if ended == "escalate" else ended
        if signals is not None:
            signals.end_round(generator.repeats)
            if early := early_signal():
                return None if early == "escalate" else early
        if last and (over := tier_budget_left(tier.budget, state.spend, start)):
            return give_up(f"{tier.name}: {over}", exhausted=False)


def _try(
    ctx: RepairContext,
    steps: Steps,
    state: _State,
    plan: Plan,
    pristine: Path,
    tier: Tier,
    generator: Generator,
    candidate: Candidate,
    feedback: list[str],
) -> Outcome | None:
    """Test and judge one candidate; record the attempt; verify and finish if accepted.

    A test run a stop cut short is no verdict: Interrupted, and no attempt is recorded.
    """
    started, t0 = time.time(), time.monotonic()
    state.tried.add(candidate.candidate_id)
    report: TestReport | None = None
    crit: Critique | None = None
    try:
        # Before the test step, not in it: a malformed reply is an expected ending, not a
        # failed Prefect task run (which Prefect would log at ERROR).
        raise_if_malformed(candidate)
        with ctx.trace("sandbox-test", {"candidate": candidate.candidate_id}):
            report = steps.test(ctx, state.instance, plan, pristine, candidate)
        _check_stop(state.instance)
        with ctx.trace("critique", {"candidate": candidate.candidate_id}):
            crit = steps.critique(plan, report, candidate, pristine, generator)
    except Interrupted:
        raise
    except EditError as exc:
        error = f"{type(exc).__name__}: {exc}"
        _record(ctx, state, tier, candidate, report, None, error, started, t0,
                status=AttemptStatus.malformed_edit)  # fmt: skip
        return None
    except Exception as exc:
        _check_stop(state.instance, exc)  # the stop killed its sandbox: not an attempt
        # Unexpected: keep the attempt (and what the candidate cost), then let it propagate.
        status = AttemptStatus.infra_error if isinstance(exc, InfraError) else AttemptStatus.error
        _record(ctx, state, tier, candidate, report, crit, f"{type(exc).__name__}: {exc}",
                started, t0, status=status)  # fmt: skip
        raise
    accepted = crit.verdict == Verdict.accept
    _record(ctx, state, tier, candidate, report, crit, None, started, t0,
            status=AttemptStatus.accepted if accepted else AttemptStatus.rejected)  # fmt: skip
    progress = state.progress
    if crit.progress and progress is not None and report is not None and report.goal is not None:
        progress.advance(ctx.workspaces, tier.name, candidate, report.goal)
        state.moved = True
        state.reasons.append(
            f"{tier.name}: kept {candidate.description or candidate.candidate_id} "
            f"({report.goal.summary()})"
        )
    if not accepted:
        feedback.append(crit.feedback)
        return None
    if progress is not None:  # verify the whole change against the original tree
        candidate = progress.cumulative(candidate)
        plan, pristine = progress.original_plan, progress.original
    return _verify(ctx, steps, state, plan, pristine, tier, candidate, feedback)


def _verify(
    ctx: RepairContext,
    steps: Steps,
    state: _State,
    plan: Plan,
    pristine: Path,
    tier: Tier,
    candidate: Candidate,
    feedback: list[str],
) -> Outcome | None:
    """Verify-only run of an accepted candidate; the resolved Outcome when it holds."""
    described = f"{tier.name}: {candidate.description or candidate.candidate_id}"
    if not ctx.campaign.verify:
        state.reasons += ["verify-only run skipped (verify: false)", described]
        return _outcome(state, OutcomeStatus.resolved, tier=tier.name, patch=candidate.diff)
    ruling = [r for r in ctx.campaign.rules_for(state.instance) if r.matches_patch(candidate.files)]
    runs = max([1, *(r.verify_runs for r in ruling)])
    for run in range(1, runs + 1):
        started, t0 = time.time(), time.monotonic()
        _check_stop(state.instance)
        try:
            with ctx.trace("verify", {"candidate": candidate.candidate_id, "run": run}):
                report, final = steps.verify(ctx, state.instance, plan, pristine, candidate.diff)
        except Exception as exc:
            _check_stop(state.instance, exc)
            raise
        _check_stop(state.instance)  # a verify run the stop killed proves nothing either way
        if final.verdict != Verdict.accept:
            of = f" (run {run} of {runs})" if runs > 1 else ""
            why = f"verify-only run failed{of}: " + "; ".join(final.reasons)
            _record(ctx, state, tier, candidate, report, final, why, started, t0,
                    status=AttemptStatus.rejected, verify=True)  # fmt: skip
            feedback.append(why)
            return None
    where = f"{runs} fresh workspaces" if runs > 1 else "a fresh workspace"
    state.reasons.append(f"verified on {where}: " + "; ".join(final.reasons))
    state.reasons.append(described)
    held = [r.name for r in ruling if r.needs_review]
    state.final = candidate.generator
    state.rules.extend(r.name for r in ruling)
    if held:
        state.reasons.append(f"held for review by rule(s) {', '.join(held)}")
    return _outcome(
        state, OutcomeStatus.resolved, tier=tier.name, patch=candidate.diff, needs_review=bool(held)
    )


def _record(
    ctx: RepairContext,
    state: _State,
    tier: Tier,
    candidate: Candidate,
    report: TestReport | None,
    crit: Critique | None,
    error: str | None,
    started: float,
    t0: float,
    *,
    status: AttemptStatus,
    verify: bool = False,
) -> None:
    """Count and hand over one finished attempt, before anything else happens.

    A verify-only run is its own attempt, but producing the candidate was paid for once.
    """
    usage = Usage() if verify else candidate.usage
    state.number += 1
    state.spend.attempts += 1
    state.spend.usage = state.spend.usage + usage
    ctx.ledger.charge(usage, attempts=1)
    attempt = Attempt(
        instance_id=state.instance.instance_id,
        number=state.number,
        tier=tier.name,
        generator=candidate.generator,
        candidate=candidate,
        report=report,
        critique=crit,
        usage=usage,
        model=candidate.model,
        status=status,
        error=error,
        started_at=started,
        duration_s=round(time.monotonic() - t0, 4),
    )
    if not verify:
        state.last = attempt
    ctx.on_attempt(attempt)
