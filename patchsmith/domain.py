"""Domain types shared by every layer (flows, tasks, adapters, infra).

Everything here is a plain pydantic value: safe to pass between Prefect tasks, to
persist as JSON, and to compare in tests. Behaviour lives elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|CREDENTIAL)", re.I)


class Strict(BaseModel):
    """Base for config-like models: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Value(BaseModel):
    """Base for result values produced by the pipeline."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- inputs


class Intent(StrEnum):
    bugfix = "bugfix"
    refactor = "refactor"
    migration = "migration"
    tests = "tests"

    @property
    def refactoring(self) -> bool:
        """True for the intents a recipe's goal drives (no failing tests needed)."""
        return self in (Intent.refactor, Intent.migration)


class Environment(Strict):
    """Where a repository's tests find their interpreter and dependencies.

    Default (nothing set): patchsmith's own interpreter, without autoloading patchsmith's
    pytest plugins. ``python``: an existing interpreter or venv, mounted read-only.
    ``install``: requirements built once into a cached venv under ``$PATCHSMITH_HOME/envs/``.
    """

    python: str | None = Field(
        default=None,
        description="An existing interpreter (…/bin/python) or venv directory; mounted "
        "read-only in the sandbox and first on its PATH.",
    )
    install: list[str] = Field(
        default_factory=list,
        description='pip/uv install arguments, e.g. ["-e", ".[test]"] or '
        '["-r", "requirements-dev.txt"]; built once per dependency-file content hash.',
    )
    network: bool = Field(
        default=False,
        description="Allow network for the install step only (default off: only find_links "
        "/ index_url given here are used).",
    )
    find_links: list[str] = Field(
        default_factory=list, description="Local directories of wheels/sdists for install."
    )
    index_url: str | None = Field(
        default=None, description="A package index for install (e.g. a local file:// index)."
    )
    timeout_s: float = Field(default=900.0, gt=0, description="Wall-clock limit of a build.")

    @property
    def is_default(self) -> bool:
        """True when the tests run on patchsmith's own interpreter."""
        return self.python is None and not self.install


DEFAULT_EXCLUDE = (
    *("tests/**", "**/tests/**", "test/**", "**/test/**", "test_*.py", "**/test_*.py"),
    *("*_test.py", "**/*_test.py", "test.py", "**/test.py", "tests.py", "**/tests.py"),
    "**/conftest.py",
)
"""Test files by the usual conventions (pytest's, unittest's, a plain ``test.py``)."""


class Instance(Strict):
    """One task instance: a repository state, an instruction and how to test it."""

    instance_id: str = Field(
        validation_alias=AliasChoices("id", "instance_id"),
        description="Unique id of the instance within a campaign.",
        min_length=1,
    )
    repo: str = Field(description="Local path (git repo or plain dir), or a git URL.")
    base_commit: str | None = Field(
        default=None, description="Commit to test at; None = the working tree as it is."
    )
    instruction: str = Field(default="Fix the failing tests", description="What to do.")
    test_cmd: str = Field(
        default="python -m pytest -q", description="Command that runs the tests (shell words)."
    )
    fail_to_pass: list[str] = Field(
        default_factory=list,
        description="Tests that must go from failing to passing; computed when empty.",
    )
    pass_to_pass: list[str] = Field(
        default_factory=list,
        description="Tests that must keep passing; computed when empty.",
    )
    scope: list[str] = Field(
        default_factory=lambda: ["**/*.py"],
        description="Globs of files a patch may touch (relative to the repo root).",
    )
    exclude: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUDE),
        description="Globs of files a patch must not touch (tests by default).",
    )
    intent: Intent = Field(default=Intent.bugfix, description="Kind of change wanted.")
    tags: list[str] = Field(default_factory=list, description="Free-form labels.")
    test_patch: str | None = Field(
        default=None, description="Unified diff applied before testing (SWE-bench)."
    )
    environment: Environment | None = Field(
        default=None, description="This instance's environment; None = the campaign's."
    )
    recipe: str | None = Field(
        default=None,
        description="The campaign recipe a refactor/migration instance applies (by name).",
    )

    @field_validator("intent", mode="before")
    @classmethod
    def _migrate_alias(cls, value: Any) -> Any:
        return Intent.migration if value == "migrate" else value


class SandboxConfig(Strict):
    """Where and under which limits commands run."""

    backend: Literal["auto", "bwrap", "subprocess", "docker"] = Field(
        default="auto",
        description="auto = bwrap where bubblewrap exists, else subprocess; docker = a "
        "container per command on DOCKER_HOST (the docker extra).",
    )
    timeout_s: float = Field(default=60.0, gt=0, description="Wall-clock limit per command.")
    memory_mb: int = Field(default=2048, gt=0, description="Address-space limit per process.")
    max_procs: int = Field(default=256, gt=0, description="Process/thread limit.")
    tmp_mb: int = Field(default=256, gt=0, description="Size of the private /tmp.")
    file_mb: int = Field(
        default=1024, gt=0, description="Largest file a command may write (RLIMIT_FSIZE)."
    )
    disk_mb: int = Field(
        default=1024,
        gt=0,
        description="Bytes one attempt may write in its workspace in all (a size-limited "
        "overlay upper layer); past it writes fail and the run reports limit_hit: disk.",
    )
    inodes: int = Field(
        default=65536, gt=0, description="Files and directories one attempt may create."
    )
    test_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Per-test wall-clock limit for pytest commands (a looping test fails "
        "with outcome 'timeout' instead of costing the whole run); None = derived from "
        "timeout_s and the baseline.",
    )
    output_kb: int = Field(default=64, gt=0, description="Bytes of stdout/stderr kept (tail).")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment for every sandboxed command (plain settings only: "
        "the sandbox environment is otherwise cleared, and credentials never belong here).",
    )
    ro_paths: list[str] = Field(
        default_factory=list,
        description="Extra host paths bound read-only at the same path (an environment's "
        "interpreter, patchsmith's helpers). Usually filled in by patchsmith, not by hand.",
    )
    path_prepend: list[str] = Field(
        default_factory=list,
        description="Directories put before the default PATH inside the sandbox (an "
        "environment's bin/).",
    )
    rw_paths: list[str] = Field(
        default_factory=list,
        description="Internal: extra host paths bound read-write (only an environment build "
        "sets this: the new env dir). Refused in campaign files.",
    )
    network: bool = Field(
        default=False,
        description="Internal: share the host network (only an environment build with "
        "environment.network: true sets this). Refused in campaign files.",
    )

    @field_validator("env")
    @classmethod
    def _no_secrets(cls, env: dict[str, str]) -> dict[str, str]:
        for key in env:
            if SECRET_NAME.search(key):
                raise ValueError(
                    f"{key!r} looks like a credential; the sandbox must never see secrets"
                )
        return env


class Budget(Strict):
    """Per-instance budget. The loop stops at the first limit reached."""

    max_attempts: int = Field(default=200, gt=0, description="Candidates tested at most.")
    max_wall_s: float = Field(default=600.0, gt=0, description="Wall time per instance.")
    max_tokens: int | None = Field(default=None, description="Model tokens (in+out) at most.")
    max_dollars: float | None = Field(default=None, description="Cost at most.")
    max_cpu_s: float | None = Field(
        default=None, gt=0, description="CPU-seconds of in-process model calls at most."
    )
    max_gpu_s: float | None = Field(
        default=None, gt=0, description="GPU-seconds of model calls at most (as servers report)."
    )


class CampaignBudget(Strict):
    """What the whole campaign may spend, over all its instances (``campaign_budget:``).

    Checked before every candidate and before every model call, like the per-instance
    budget: once spent, the instances still running give up (reason ``campaign ... budget
    spent``) and those not started end without work.
    """

    max_attempts: int | None = Field(default=None, gt=0, description="Candidates tested.")
    max_wall_s: float | None = Field(default=None, gt=0, description="Wall time of the run.")
    max_tokens: int | None = Field(default=None, gt=0, description="Model tokens (in+out).")
    max_dollars: float | None = Field(default=None, gt=0, description="Cost.")
    max_cpu_s: float | None = Field(default=None, gt=0, description="Model CPU-seconds.")
    max_gpu_s: float | None = Field(default=None, gt=0, description="Model GPU-seconds.")


class TierBudget(Strict):
    """What one tier may spend of the instance's budget before the cascade escalates.

    Without it a tier runs until it has nothing left (a search scope of hundreds of
    candidates) and the next tier is never reached; with it, the tier's spend past a limit
    escalates to the next tier (the last tier gives up). The instance's budget still binds.
    """

    max_attempts: int | None = Field(default=None, gt=0, description="Candidates tested.")
    max_wall_s: float | None = Field(default=None, gt=0, description="Wall seconds in the tier.")
    max_tokens: int | None = Field(default=None, gt=0, description="Model tokens (in+out).")


# ---------------------------------------------------------------- sandbox values


class ExecResult(Value):
    """What one sandboxed command did."""

    argv: list[str]
    exit_code: int | None = Field(description="None when killed before it exited.")
    timed_out: bool = False
    limit_hit: Literal["timeout", "memory", "procs", "file_size", "disk", "output"] | None = None
    duration_s: float
    stdout_tail: str = ""
    stderr_tail: str = ""
    backend: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


# ---------------------------------------------------------------- pipeline values


class TestOutcome(StrEnum):
    passed = "passed"
    failed = "failed"
    error = "error"
    skipped = "skipped"
    timeout = "timeout"  # the test itself ran past its per-test limit (a hang)


FAILING = frozenset({TestOutcome.failed, TestOutcome.error, TestOutcome.timeout})
"""Outcomes that count as a failing test (targets, regressions)."""


TestOutcome.__test__ = False  # type: ignore[attr-defined]  # not a pytest test class


class TestReport(Value):
    """Per-test results of one test run (or of a staged run: targets, then the rest)."""

    __test__ = False  # keep pytest from collecting this class

    outcomes: dict[str, TestOutcome] = Field(default_factory=dict)
    exit_code: int | None = None
    duration_s: float = 0.0
    timed_out: bool = False
    limit_hit: str | None = None
    log_tail: str = ""
    stopped_early: bool = Field(
        default=False, description="True when a target failed and the rest was not run."
    )
    infra_error: str | None = Field(
        default=None, description="Set when the sandbox could not run the tests at all."
    )
    runner: Literal["cold", "warm", "precheck"] = Field(
        default="cold",
        description="How the candidate was screened: 'warm' (a fork of a warm pytest "
        "session), 'cold' (a fresh sandboxed run) or 'precheck' (rejected before any test "
        "ran: it does not compile, or it is the same code as an earlier candidate).",
    )
    runner_note: str | None = Field(
        default=None, description="Why a candidate ran cold when warm screening was on."
    )
    crashed: str | None = Field(
        default=None,
        description="The test whose process died of a signal (runaway recursion that "
        "overflowed the C stack, say): outcome error, and the run stopped there.",
    )
    goal: GoalState | None = Field(
        default=None, description="Refactor candidates: the goal's state on the patched tree."
    )

    def failing(self) -> list[str]:
        return sorted(t for t, o in self.outcomes.items() if o in FAILING)

    def passing(self) -> list[str]:
        return sorted(t for t, o in self.outcomes.items() if o == TestOutcome.passed)


class SuspiciousLine(Value):
    path: str = Field(description="Path relative to the repository root.")
    line: int = Field(ge=1)
    score: float = Field(description="Higher is more suspicious.")
    sources: list[str] = Field(default_factory=list, description="e.g. ochiai, traceback.")


class Occurrence(Value):
    """One place a refactoring goal's forbidden pattern still matches."""

    path: str = Field(description="Path relative to the repository root.")
    line: int = Field(ge=1)
    column: int = Field(default=0, ge=0)
    pattern: str = Field(description="The forbid pattern that matched.")
    text: str = Field(default="", description="The matched code (first line, clipped).")

    def where(self) -> str:
        return f"{self.path}:{self.line}"


class CheckRun(Value):
    """The goal's ``check_cmd`` run once in the sandbox."""

    exit_code: int | None
    passed: bool
    timed_out: bool = False
    log_tail: str = ""


class GoalState(Value):
    """How far a tree is from a refactoring goal: what still matches, what the check says."""

    occurrences: list[Occurrence] = Field(default_factory=list)
    check: CheckRun | None = None

    @property
    def met(self) -> bool:
        return not self.occurrences and (self.check is None or self.check.passed)

    def summary(self) -> str:
        parts = [f"{len(self.occurrences)} occurrence(s) left"]
        if self.check is not None:
            parts.append("check passes" if self.check.passed else "check fails")
        return ", ".join(parts)


class Plan(Value):
    instance_id: str
    intent: Intent
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    flaky: list[str] = Field(default_factory=list)
    suspicious: list[SuspiciousLine] = Field(default_factory=list)
    baseline: TestReport
    tier: str = Field(description="Name of the first tier to try.")
    notes: list[str] = Field(default_factory=list)
    localization: str = Field(
        default="", description="Which evidence ranked the suspicious lines, in words."
    )
    executed: dict[str, list[int]] = Field(
        default_factory=dict,
        description="In-scope lines the failing tests ran (path -> sorted lines): the scope "
        "the search widens to once the suspicious lines are exhausted.",
    )
    goal: GoalState | None = Field(
        default=None,
        description="Refactor/migration plans: the recipe goal's state on the baseline tree "
        "(its occurrences are the targets; every passing test is a guard).",
    )


class Usage(Value):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    gpu_seconds: float = 0.0
    cpu_seconds: float = Field(
        default=0.0, description="CPU time of in-process model calls (the process's, shared out)."
    )
    dollars: float | None = Field(default=0.0, description="None = price unknown.")

    def __add__(self, other: Usage) -> Usage:
        dollars = (
            None if self.dollars is None or other.dollars is None else self.dollars + other.dollars
        )
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            latency_s=self.latency_s + other.latency_s,
            gpu_seconds=self.gpu_seconds + other.gpu_seconds,
            cpu_seconds=self.cpu_seconds + other.cpu_seconds,
            dollars=dollars,
        )


class Candidate(Value):
    """A proposed edit, always normalized to a unified diff (a/ b/ prefixes)."""

    candidate_id: str = Field(description="Stable id: sha256 of the diff, first 16 hex.")
    generator: str
    tier: str
    diff: str
    description: str = ""
    score: float = 0.0
    files: list[str] = Field(default_factory=list)
    parent_ids: list[str] = Field(default_factory=list, description="For combined edits.")
    operators: list[str] = Field(
        default_factory=list,
        description="Mutation operators of a search candidate (what tune-search refits).",
    )
    usage: Usage = Field(
        default_factory=lambda: Usage(), description="What producing this candidate cost."
    )
    model: dict[str, Any] = Field(
        default_factory=dict,
        description="Model id, adapters (name, version, sha256), quantization (LLM tiers).",
    )

    @staticmethod
    def make_id(diff: str) -> str:
        return hashlib.sha256(diff.encode()).hexdigest()[:16]


class Verdict(StrEnum):
    accept = "accept"
    refine = "refine"
    escalate = "escalate"
    give_up = "give_up"


class Critique(Value):
    verdict: Verdict
    score: float = 0.0
    reasons: list[str] = Field(default_factory=list)
    feedback: str = ""
    fixed: list[str] = Field(default_factory=list)
    still_failing: list[str] = Field(default_factory=list)
    regressions: list[str] = Field(default_factory=list)
    lint_delta: int = 0
    diff_lines: int = 0
    progress: bool = Field(
        default=False,
        description="Refactoring: the goal is not met, but the candidate removed occurrences "
        "with every guard green; the next round starts from it.",
    )


class AttemptStatus(StrEnum):
    accepted = "accepted"
    rejected = "rejected"
    malformed_edit = "malformed_edit"
    infra_error = "infra_error"
    error = "error"


class Attempt(Value):
    instance_id: str
    number: int = Field(ge=1)
    tier: str
    generator: str
    candidate: Candidate | None
    report: TestReport | None
    critique: Critique | None
    usage: Usage = Field(default_factory=Usage)
    status: AttemptStatus
    error: str | None = None
    started_at: float
    duration_s: float
    model: dict[str, Any] = Field(
        default_factory=dict, description="Model id, adapters, quantization (LLM tiers)."
    )


class OutcomeStatus(StrEnum):
    resolved = "resolved"
    unresolved = "unresolved"
    error = "error"


class GiveUp(StrEnum):
    """Why an instance ended without a fix (``Outcome.give_up``)."""

    budget = "budget"  # attempts, wall time, tokens or dollars spent; reasons: share tried
    exhausted = "exhausted"  # every tier ran out of candidates; reasons: the scope searched
    no_evidence = "no-evidence"  # nothing localized and nothing executed in scope
    nothing_to_repair = "nothing-to-repair"  # the baseline has no failing target
    baseline_cannot_start = "baseline-cannot-start"  # a program the command runs is missing
    baseline_no_outcomes = "baseline-no-outcomes"  # the baseline reported no test at all
    environment = "environment"  # the environment failed to build or the command to start
    signals = "signals"  # the last tier stopped early on its escalation rules (see reasons)
    error = "error"  # an unexpected error (see the reasons)


class GoalProgress(Value):
    """What a refactoring instance achieved against its recipe's goal."""

    recipe: str
    before: int = Field(description="Occurrences on the baseline tree.")
    after: int = Field(description="Occurrences left on the verified patch (or baseline).")
    by_tier: dict[str, int] = Field(
        default_factory=dict, description="Occurrences removed per tier (codemod, LLM, …)."
    )
    remaining: list[Occurrence] = Field(default_factory=list)
    check_passed: bool | None = Field(default=None, description="None: no check_cmd.")
    guards: int = Field(default=0, description="Tests that passed before: all must still pass.")
    steps: list[str] = Field(
        default_factory=list, description="The generators whose changes it is made of, in order."
    )

    @property
    def state(self) -> Literal["done", "partial", "untouched"]:
        if self.after == 0 and self.check_passed is not False:
            return "done"
        return "partial" if self.after < self.before else "untouched"


class ChangesetPart(Value):
    """One reviewable piece of a split refactoring, verified on its own."""

    name: str
    diff: str
    files: list[str]
    lines: int
    verified: bool
    note: str = ""


class Outcome(Value):
    instance_id: str
    status: OutcomeStatus
    attempts: int = 0
    tier: str | None = None
    duration_s: float = 0.0
    patch: str | None = None
    patch_file: str | None = None
    reasons: list[str] = Field(default_factory=list)
    model_name_or_path: str = "patchsmith"
    usage: Usage = Field(default_factory=Usage)
    give_up: GiveUp | None = Field(
        default=None,
        description="Why an unresolved or failed instance ended (see GiveUp); the reasons "
        "say the details: the scope searched, the share of it tried.",
    )
    rules: list[str] = Field(
        default_factory=list, description="The business rules that applied (by name)."
    )
    route: dict[str, str | float] = Field(
        default_factory=dict,
        description="Intent routing's decision: the first tier, the evidence, similarities.",
    )
    needs_review: bool = Field(
        default=False,
        description="Resolved and verified, but a business rule holds the patch for a person.",
    )
    goal: GoalProgress | None = Field(
        default=None,
        description="Refactor/migration instances: occurrences before and after, who "
        "migrated them, what is left (a patch on an unresolved one is partial progress).",
    )
    parts: list[ChangesetPart] = Field(
        default_factory=list,
        description="A refactoring split by its recipe (split: file | package): the parts, "
        "each verified alone on the original tree.",
    )
    signals: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Per LLM tier it reached, the escalation signals (replies, malformed, "
        "mean log-prob, repeats, critic rejections, stale rounds) after its first round "
        "(keys first_*) and when it ended: what `patchsmith tune-cascade` fits.",
    )


def patch_lines(patch: str) -> int:
    """Lines a unified diff adds plus the lines it removes."""
    return sum(
        1
        for line in patch.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))
    )


class Changeset(Value):
    """A refactoring's verified change to one repository, ready to publish as a branch."""

    instance_id: str
    repo: str
    base_commit: str | None
    recipe: str
    instruction: str
    state: Literal["done", "partial", "untouched"]
    goal: GoalProgress
    patch_file: str | None
    files: list[str]
    lines: int = Field(description="Lines added plus removed.")
    tier: str | None
    needs_review: bool
    parts: list[ChangesetPart] = Field(
        default_factory=list, description="Reviewable parts (a branch each when published)."
    )
    review: Literal["none", "pending", "approved", "rejected"] = Field(
        default="none", description="A person's decision on a held changeset (approval gate)."
    )
    verified: str = Field(description="How it was verified, in words.")

    @classmethod
    def of(cls, instance: Instance, outcome: Outcome) -> Changeset:
        assert outcome.goal is not None and outcome.patch is not None
        files = sorted(
            {line[6:] for line in outcome.patch.splitlines() if line.startswith("+++ b/")}
            | {line[6:] for line in outcome.patch.splitlines() if line.startswith("--- a/")}
        )
        lines = patch_lines(outcome.patch)
        goal = outcome.goal
        check = {None: "", True: "; the goal's check_cmd passes", False: "; check_cmd fails"}
        verified = (
            f"applied to a fresh copy of the repository in patchsmith's sandbox: all "
            f"{goal.guards} test(s) that passed before still pass{check[goal.check_passed]}"
        )
        return cls(
            instance_id=instance.instance_id,
            repo=instance.repo,
            base_commit=instance.base_commit,
            recipe=goal.recipe,
            instruction=instance.instruction,
            state=goal.state,
            goal=goal,
            patch_file=outcome.patch_file,
            files=files,
            lines=lines,
            tier=outcome.tier,
            needs_review=outcome.needs_review,
            review="pending" if outcome.needs_review else "none",
            parts=outcome.parts,
            verified=verified,
        )


def config_hash(*parts: BaseModel | dict[str, Any] | str | None) -> str:
    """Stable sha256 over pydantic models / dicts / strings (order matters)."""
    blob = json.dumps(
        [p.model_dump(mode="json") if isinstance(p, BaseModel) else p for p in parts],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()
