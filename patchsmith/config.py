"""Campaign files: YAML → validated pydantic models, with errors that say how to fix them.

A campaign lists instances inline and/or pulls them from SWE-bench JSON/JSONL files::

    name: example
    instances:
      - id: calc-off-by-one
        repo: calc                 # relative to this file's directory
        test_cmd: python -m pytest -q tests/test_calc.py
      - swebench: dev.jsonl        # SWE-bench instances ...
        repos: checkouts           # ... whose repos are checked out under this directory
    sandbox: {backend: auto, timeout_s: 60, memory_mb: 2048}
    environment:                   # default: patchsmith's interpreter (no plugin autoload)
      install: ["-r", "requirements.txt"]      # a venv built once per dependency-file hash
      find_links: [wheels]                     # offline: wheels from here only
    budget: {max_attempts: 200, max_wall_s: 600}

An instance may override ``environment`` (``python: PATH`` for an existing interpreter or
venv). Relative paths (``repo``, ``environment.python``, ``environment.find_links``) are
resolved against the campaign file's directory. Nothing here touches the repositories
except to check that they exist.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from patchsmith.domain import (
    Budget,
    CampaignBudget,
    Environment,
    Instance,
    SandboxConfig,
    Strict,
    TierBudget,
    config_hash,
)
from patchsmith.errors import ConfigError
from patchsmith.infra.envs import locate_python
from patchsmith.infra.llm.config import ModelConfig
from patchsmith.infra.sandbox.limits import sandbox_path
from patchsmith.recipes import CodemodTier, Recipe

GIT_URL = re.compile(r"^(https?://|ssh://|git@|git://|file://)")
URL_USERINFO = re.compile(r"^[a-z+]+://[^/@]*:[^/@]*@")  # scheme://user:secret@host


class SearchTier(Strict):
    """Tier 0: deterministic mutation search, no model, no GPU."""

    kind: Literal["search"] = "search"
    name: str = Field(default="search", description="Tier name used in records and reports.")
    generator: Literal["mutation"] = Field(default="mutation", description="Search generator.")
    max_order: int = Field(
        default=2, ge=1, le=2, description="Combine up to this many mutations per candidate."
    )
    batch: int = Field(
        default=32,
        gt=0,
        description="Candidates proposed (and screened in one step) per round.",
    )
    top_lines: int = Field(
        default=12, gt=0, description="Suspicious lines in the first stage (then it widens)."
    )
    widen: bool = Field(
        default=True,
        description="Widen past the top lines (their functions, every executed line, the "
        "whole files) before giving up; false: a quick pass that escalates sooner.",
    )
    prior: str = Field(
        default="auto",
        description="Operator prior: 'auto' (the table `patchsmith tune-search` wrote, if "
        "any, else the fixed one), 'fixed', or the path of a table.",
    )
    budget: TierBudget | None = Field(
        default=None, description="This tier's share of the budget; past it, escalate."
    )


ADAPTER_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9._+-]*$")


def _check_ref(ref: str) -> str:
    if not ADAPTER_REF.match(ref):
        raise ValueError(
            f"adapter reference {ref!r} must be name@version (e.g. bugfix@1); "
            "see `patchsmith adapters list`"
        )
    return ref


class CriticConfig(Strict):
    """An LLM critic: reads the diff and the test evidence, returns a structured verdict."""

    model: ModelConfig | None = Field(
        default=None, description="Critic model; None = the tier's own model."
    )
    adapter: str | None = Field(
        default=None,
        description="Guardrail adapter: name@version from the registry, or the name of an "
        "adapter configured on the critic model; None = the base model.",
    )
    review: Literal["accepted", "all"] = Field(
        default="accepted",
        description="accepted = only candidates the tests accepted (the critic may veto); "
        "all = every tested candidate (its feedback feeds the next round).",
    )
    max_new_tokens: int = Field(default=256, gt=0, description="Verdict length at most.")


MAX_MODE_SAMPLES = 4


class EscalateRules(Strict):
    """When an LLM tier hands over early (each unset rule is off). Checked after every
    attempt of the tier; the first rule that holds escalates (the last tier gives up)."""

    min_replies: int = Field(
        default=2, ge=1, description="Replies seen before the rate and log-prob rules apply."
    )
    malformed_rate: float | None = Field(
        default=None, gt=0, le=1, description="Share of replies that were not a usable edit."
    )
    min_logprob: float | None = Field(
        default=None, lt=0, description="Mean token log-probability of the replies below this."
    )
    repeats: int | None = Field(
        default=None, ge=1, description="Replies that repeated an edit already tried."
    )
    critic_rejections: int | None = Field(
        default=None, ge=1, description="Candidates the tier's LLM critic rejected."
    )
    stale_rounds: int | None = Field(
        default=None,
        ge=1,
        description="Rounds in a row in which no candidate fixed more target tests than before.",
    )


class LLMTier(Strict):
    """An LLM tier: plan → SEARCH/REPLACE edits → optional LLM critic, over a few rounds."""

    kind: Literal["llm"] = "llm"
    name: str = Field(default="llm", description="Tier name used in records and reports.")
    model: ModelConfig = Field(description="The model (backend, quantization, prices...).")
    adapters: list[str] = Field(
        default_factory=list,
        description="Functional LoRA adapters from the registry, as name@version; samples "
        "use them in turn. Empty = the adapters configured on the model, else the base.",
    )
    samples: int = Field(default=1, ge=1, le=32, description="Completions per round.")
    edit_format: Literal["search_replace", "function"] = Field(
        default="search_replace",
        description="How the model writes edits: SEARCH/REPLACE blocks, or whole corrected "
        "functions put in place of their namesakes (easier for small models).",
    )
    budget: TierBudget | None = Field(
        default=None, description="This tier's share of the budget; past it, escalate."
    )
    rounds: int = Field(default=3, ge=1, description="Rounds (with feedback) before escalating.")
    mode: Literal["fast", "max"] = Field(
        default="fast",
        description="fast: the settings as given; max: generate, critique every candidate, "
        "refine, with 4 samples a round (unless samples/critic are set). Put a max tier "
        "after a fast one on the same model: max only when fast did not do it.",
    )
    escalate: EscalateRules | None = Field(
        default=None,
        description="Escalate before the rounds are used up, on cheap signals that the tier "
        "is not getting there (see EscalateRules; `patchsmith tune-cascade` fits them).",
    )
    planner: bool = Field(default=True, description="Ask the model for a plan first.")
    critic: CriticConfig | None = Field(default=None, description="LLM critic, if any.")
    context_tokens: int = Field(
        default=3000, ge=200, description="Budget for the localization context in the prompt."
    )
    max_new_tokens: int = Field(default=1024, gt=0, description="Tokens per edit at most.")
    sample_temperature: float = Field(
        default=0.7,
        gt=0.0,
        le=2.0,
        description="Temperature used when samples > 1 and the model's sampling is greedy "
        "(greedy samples would all be the same).",
    )

    @property
    def batch(self) -> int:
        """Candidates proposed per round (the loop's name for it)."""
        return self.samples

    @field_validator("adapters")
    @classmethod
    def _refs(cls, refs: list[str]) -> list[str]:
        for ref in refs:
            _check_ref(ref)
        names = [r.split("@")[0] for r in refs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"adapters: one version per adapter name; repeated: {dupes}")
        return refs

    @model_validator(mode="before")
    @classmethod
    def _mode_defaults(cls, data: Any) -> Any:
        """``mode: max`` fills what it means where the tier does not say: 4 sampled
        replies a round and an LLM critic that reviews every tested candidate (its verdict
        feeds the next round). ``fast`` (the default) is the plain settings."""
        if isinstance(data, dict) and data.get("mode") == "max":
            data = {**data}
            data.setdefault("samples", MAX_MODE_SAMPLES)
            data.setdefault("critic", {"review": "all"})
        return data

    @model_validator(mode="after")
    def _critic_ref(self) -> LLMTier:
        ref = self.critic.adapter if self.critic else None
        if ref is not None and "@" in ref:
            _check_ref(ref)
        return self


def _tier_kind(value: Any) -> str:
    kind = value.get("kind", "search") if isinstance(value, dict) else getattr(value, "kind", None)
    return str(kind)


Tier = Annotated[
    Annotated[SearchTier, Tag("search")]
    | Annotated[LLMTier, Tag("llm")]
    | Annotated[CodemodTier, Tag("codemod")],
    Discriminator(
        _tier_kind,
        custom_error_type="tier_kind",
        custom_error_message="unknown tier kind: use kind: search, codemod or llm",
    ),
]


class RoutingConfig(Strict):
    """``routing:`` of a campaign: which tier each instance starts at (tasks/routing.py)."""

    mode: Literal["embed", "rules"] = Field(
        default="embed",
        description="embed: rules, then all-MiniLM-L6-v2 similarity to descriptions of "
        "mutation-shaped bugs vs changes that need a model; rules: the rules alone.",
    )
    margin: float = Field(
        default=0.02, ge=0, le=1, description="How much closer 'needs a model' must be."
    )
    model_tier: str | None = Field(
        default=None,
        description="The tier a model-shaped instance starts at (default: the first LLM tier).",
    )
    mutation_examples: list[str] = Field(
        default_factory=list, description="More descriptions of bugs search fixes."
    )
    model_examples: list[str] = Field(
        default_factory=list, description="More descriptions of changes that need a model."
    )


class BusinessRule(Strict):
    """Policy for the instances (and patches) a rule matches (``rules:`` of a campaign).

    ``repos`` / ``instances`` are glob patterns on the instance's repo (path or name) and id;
    a rule with neither matches every instance. ``paths`` (globs on the files a patch
    changes) narrows the patch-time actions (``verify_runs``, ``needs_review``); the
    tier-time actions (``min_tier``, ``require_critic``) use the instance patterns only,
    since no patch exists yet.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Recorded name.")
    repos: list[str] = Field(default_factory=list, description="Globs on the repo.")
    instances: list[str] = Field(default_factory=list, description="Globs on the instance id.")
    paths: list[str] = Field(default_factory=list, description="Globs on the patch's files.")
    min_tier: str | None = Field(
        default=None, description="Start at this tier: cheaper tiers are skipped."
    )
    require_critic: bool = Field(
        default=False, description="Only tiers with an LLM critic (a guardrail) may fix it."
    )
    verify_runs: int = Field(
        default=1, ge=1, le=10, description="Fresh-workspace runs of the full suite to accept."
    )
    needs_review: bool = Field(
        default=False, description="A verified patch is held for a person (needs_review)."
    )

    def matches_instance(self, instance: Instance) -> bool:
        from fnmatch import fnmatchcase

        repo = [instance.repo, Path(instance.repo).name]
        by_repo = any(fnmatchcase(r, p) for p in self.repos for r in repo)
        by_id = any(fnmatchcase(instance.instance_id, p) for p in self.instances)
        return (not self.repos and not self.instances) or by_repo or by_id

    def matches_patch(self, files: list[str]) -> bool:
        from fnmatch import fnmatchcase

        return not self.paths or any(fnmatchcase(f, p) for p in self.paths for f in files)


class PublishConfig(Strict):
    """``publish:`` of a campaign (see ``patchsmith publish``)."""

    branch: str | None = Field(default=None, description="Default: patchsmith/RECIPE.")
    remote: str | None = Field(default=None, description="Push the branch here.")
    partial: bool = Field(default=True, description="Publish partially done refactorings.")


def _default_tiers() -> list[Tier]:
    return [SearchTier()]


class Campaign(Strict):
    """A validated campaign: what to repair, where to run it, and within which budget."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Campaign name.")
    instances: list[Instance] = Field(min_length=1, description="Instances to repair.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    environment: Environment = Field(
        default_factory=Environment,
        description="Where the tests find their interpreter and dependencies (instances may "
        "override it); default: patchsmith's interpreter.",
    )
    budget: Budget = Field(default_factory=Budget)
    campaign_budget: CampaignBudget | None = Field(
        default=None,
        description="What the whole run may spend over all instances (tokens, dollars, "
        "model CPU/GPU-seconds, attempts, wall time); none by default.",
    )
    tiers: list[Tier] = Field(default_factory=_default_tiers, min_length=1)
    concurrency: int = Field(default=2, gt=0, description="Instances repaired in parallel.")
    screening: Literal["warm", "cold"] = Field(
        default="warm",
        description="How candidates are screened: 'warm' forks each from one pytest session "
        "per instance (falling back to cold where it cannot), 'cold' runs each in a fresh "
        "sandbox. Either way an accepted candidate is verified cold on a fresh workspace.",
    )
    verify: bool = Field(
        default=True, description="Re-run the full tests on a fresh workspace before accepting."
    )
    routing: RoutingConfig | None = Field(
        default=None,
        description="Intent routing: start each instance at the tier its plan suggests (the "
        "others follow); off by default.",
    )
    rules: list[BusinessRule] = Field(
        default_factory=list,
        description="Business rules: repo/path patterns that force a minimum tier, a critic, "
        "more verification or a person's review (see BusinessRule).",
    )
    approval: Literal["none", "required"] = Field(
        default="none",
        description="required: once the instances are done, the flow run pauses until a "
        "person approves or rejects each changeset a rule holds for review (Prefect UI).",
    )
    approval_timeout_s: int = Field(
        default=86400, gt=0, description="How long the flow waits for the approval."
    )
    publish: PublishConfig | None = Field(
        default=None,
        description="Publish verified changesets at the end of the run (after approval): "
        "a branch in a clone of each repository, pushed to remote when given.",
    )
    recipes: list[Recipe] = Field(
        default_factory=list,
        description="Refactoring recipes (patchsmith/recipes.py); each recipe's repos become "
        "refactor instances, and instances may name a recipe.",
    )
    gpu_pools: dict[str, int] = Field(
        default_factory=dict,
        description="GPU pools and their slots, e.g. {a100: 4}: a model with gpu_pool: a100 "
        "holds gpu_slots of the Prefect global concurrency limit gpu-a100 for each call "
        "(create them with `patchsmith infra setup CAMPAIGN`).",
    )

    @field_validator("gpu_pools")
    @classmethod
    def _pool_names(cls, value: dict[str, int]) -> dict[str, int]:
        for name, slots in value.items():
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
                raise ValueError(f"gpu_pools: {name!r}: use lowercase letters, digits and -")
            if slots < 1:
                raise ValueError(f"gpu_pools: {name!r} needs at least 1 slot, got {slots}")
        return value

    @model_validator(mode="after")
    def _models_in_known_pools(self) -> Campaign:
        for model in self.model_configs():
            if model.gpu_pool is None:
                continue
            slots = self.gpu_pools.get(model.gpu_pool)
            if slots is None:
                raise ValueError(
                    f"model {model.model!r} uses gpu_pool {model.gpu_pool!r}, which gpu_pools "
                    f"does not list (gpu_pools: {', '.join(self.gpu_pools) or 'none'})"
                )
            if model.gpu_slots > slots:
                raise ValueError(
                    f"model {model.model!r} occupies {model.gpu_slots} slot(s) of gpu_pool "
                    f"{model.gpu_pool!r}, which has {slots}: it could never run"
                )
        return self

    @model_validator(mode="before")
    @classmethod
    def _codemod_tier_for_recipes(cls, raw: Any) -> Any:
        """With recipes and no tiers given, the codemod tier runs first, then search."""
        if isinstance(raw, dict) and raw.get("recipes") and "tiers" not in raw:
            return {**raw, "tiers": [CodemodTier(), SearchTier()]}
        return raw

    @model_validator(mode="after")
    def _recipes_named(self) -> Campaign:
        recipes = {r.name: r for r in self.recipes}
        if len(recipes) != len(self.recipes):
            raise ValueError("recipes: two recipes share a name")
        names = {t.name for t in self.tiers}
        for recipe in self.recipes:
            unknown = [t for t in recipe.tiers if t not in names]
            if unknown:
                raise ValueError(
                    f"recipes: {recipe.name!r} names tiers {unknown} that this campaign does "
                    f"not have (tiers: {', '.join(sorted(names))})"
                )
        for inst in self.instances:
            if inst.intent.refactoring and inst.recipe is None:
                raise ValueError(
                    f"instance {inst.instance_id!r} has intent {inst.intent.value} but names "
                    "no recipe: add 'recipe: NAME' (one of the campaign's recipes)"
                )
            if inst.recipe is not None and inst.recipe not in recipes:
                raise ValueError(
                    f"instance {inst.instance_id!r} names recipe {inst.recipe!r}, which this "
                    f"campaign does not define (recipes: {', '.join(recipes) or 'none'})"
                )
        return self

    def recipe_for(self, instance: Instance) -> Recipe | None:
        """The recipe a refactoring instance applies (None for a repair instance)."""
        if instance.recipe is None:
            return None
        return next(r for r in self.recipes if r.name == instance.recipe)

    def tiers_for(self, instance: Instance) -> dict[str, str]:
        """Tiers that do not apply to the instance's intent (or its recipe), and why."""
        recipe = self.recipe_for(instance)
        out: dict[str, str] = {}
        for tier in self.tiers:
            if recipe is None and isinstance(tier, CodemodTier):
                out[tier.name] = "codemods apply to refactoring instances only"
            elif recipe is not None and isinstance(tier, SearchTier):
                out[tier.name] = "mutation search repairs failing tests; refactoring has none"
            elif recipe is not None and recipe.tiers and tier.name not in recipe.tiers:
                out[tier.name] = f"recipe {recipe.name!r} does not list it"
        return out

    @model_validator(mode="after")
    def _rules_name_tiers(self) -> Campaign:
        names = [t.name for t in self.tiers]
        routed = self.routing.model_tier if self.routing else None
        if routed is not None and routed not in names:
            raise ValueError(
                f"routing: model_tier {routed!r} is not a tier of this campaign "
                f"(tiers: {', '.join(names)})"
            )
        for rule in self.rules:
            if rule.min_tier is not None and rule.min_tier not in names:
                raise ValueError(
                    f"rules: {rule.name!r} has min_tier {rule.min_tier!r}, not a tier of "
                    f"this campaign (tiers: {', '.join(names)})"
                )
        return self

    def rules_for(self, instance: Instance) -> list[BusinessRule]:
        """The business rules whose instance patterns match ``instance``."""
        return [r for r in self.rules if r.matches_instance(instance)]

    def model_configs(self) -> list[ModelConfig]:
        """Every model the tiers call: each LLM tier's own and its critic's."""
        found: list[ModelConfig] = []
        for tier in self.tiers:
            if isinstance(tier, LLMTier):
                found.append(tier.model)
                if tier.critic is not None and tier.critic.model is not None:
                    found.append(tier.critic.model)
        return found

    def environment_for(self, instance: Instance) -> Environment:
        """The instance's own environment, else the campaign's."""
        return instance.environment or self.environment

    def instance_key(self, instance: Instance) -> str:
        """Key of the work for one instance: same key ⇒ same result expected (resume)."""
        return config_hash(
            instance,
            self.sandbox,
            self.budget,
            self.environment_for(instance),
            *self.tiers,
            *self.rules_for(instance),
            *([self.routing] if self.routing else []),
            *([recipe] if (recipe := self.recipe_for(instance)) else []),
        )


def _format_validation(path: Path, exc: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in exc.errors():
        loc = prefix + ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"])
        loc = loc.replace(".[", "[")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see the README's campaign format)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        else:
            msg = err["msg"]
        lines.append(f"  {loc or '<top>'}: {msg}")
    return f"{path}: invalid campaign:\n" + "\n".join(lines)


def _swebench_rows(file: Path) -> list[dict[str, Any]]:
    text = file.read_text()
    if file.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    return data if isinstance(data, list) else [data]


def _json_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    return list(value or [])


def swebench_instances(
    file: Path, repos: Path, test_cmd: str = "python -m pytest -q"
) -> list[dict[str, Any]]:
    """SWE-bench rows → raw instance dicts, with ``repo`` resolved under ``repos``."""
    out = []
    for i, row in enumerate(_swebench_rows(file)):
        missing = {"instance_id", "repo"} - row.keys()
        if missing:
            raise ConfigError(f"{file}: row {i}: missing {sorted(missing)}")
        name = str(row["repo"])
        options = [repos / name.replace("/", "__"), repos / name.split("/")[-1], repos / name]
        found = next((p for p in options if p.is_dir()), None)
        if found is None:
            raise ConfigError(
                f"{file}: row {i} ({row['instance_id']}): no checkout of {name!r} under {repos} "
                f"(looked for {', '.join(p.name for p in options)}): clone it there first"
            )
        out.append(
            {
                "id": row["instance_id"],
                "repo": str(found),
                "base_commit": row.get("base_commit"),
                "instruction": row.get("problem_statement") or "Fix the failing tests",
                "test_cmd": row.get("test_cmd", test_cmd),
                "fail_to_pass": _json_list(row.get("FAIL_TO_PASS")),
                "pass_to_pass": _json_list(row.get("PASS_TO_PASS")),
                "test_patch": row.get("test_patch") or None,
                "tags": ["swebench"],
            }
        )
    return out


def _expand_instances(raw: Any, base: Path, path: Path) -> list[Any]:
    if not isinstance(raw, list):
        raise ConfigError(
            f"{path}: instances: expected a list of instances, got {type(raw).__name__}"
        )
    out: list[Any] = []
    for i, item in enumerate(raw):
        if isinstance(item, dict) and "swebench" in item:
            extra = set(item) - {"swebench", "repos", "test_cmd"}
            if extra or "repos" not in item:
                raise ConfigError(
                    f"{path}: instances[{i}]: a SWE-bench source takes 'swebench' (file), "
                    f"'repos' (directory of checkouts) and optional 'test_cmd'"
                    + (f"; unknown keys {sorted(extra)}" if extra else "; 'repos' is missing")
                )
            file, repos = base / item["swebench"], base / item["repos"]
            for label, p in (("swebench", file), ("repos", repos)):
                if not p.exists():
                    raise ConfigError(f"{path}: instances[{i}].{label}: {p} does not exist")
            out.extend(swebench_instances(file, repos, item.get("test_cmd", "python -m pytest -q")))
        elif isinstance(item, dict) and isinstance(item.get("repo"), str):
            repo = item["repo"]
            if GIT_URL.match(repo) and URL_USERINFO.match(repo):
                raise ConfigError(
                    f"{path}: instances[{i}].repo: the URL carries credentials; campaign files "
                    f"and run records must never hold them: remove 'user:token@' and give git "
                    f"a credential helper or GIT_ASKPASS in the orchestrator's environment"
                )
            if not GIT_URL.match(repo):
                resolved = (base / repo).resolve()
                if not resolved.is_dir():
                    raise ConfigError(
                        f"{path}: instances[{i}].repo: {repo!r} does not exist "
                        f"(looked at {resolved}; relative paths start at the campaign file's "
                        f"directory)"
                    )
                item = {**item, "repo": str(resolved)}
            out.append(item)
        else:
            out.append(item)
    return out


INTERNAL_SANDBOX_KEYS = {
    "rw_paths": "only an environment build writes outside the workspace",
    "network": "tests never get the network; to let an install reach a package index, set "
    "environment.network: true (it applies to the build step alone)",
}
ENV_PYTHON_FIX = (
    "give an existing interpreter (…/bin/python) or venv directory (relative paths start at "
    "the campaign file's directory), or use environment.install to build one"
)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _refuse_internal(path: Path, raw: dict[str, Any]) -> None:
    sandbox = raw.get("sandbox")
    if not isinstance(sandbox, dict):
        return
    for key, why in INTERNAL_SANDBOX_KEYS.items():
        if key in sandbox:
            raise ConfigError(f"{path}: sandbox.{key}: not allowed in campaign files ({why})")


def _resolve_env_paths(raw: Any, base: Path) -> Any:
    """``environment`` with relative python/find_links paths made absolute (from ``base``)."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    python = out.get("python")
    if isinstance(python, str) and "/" not in python and shutil.which(python):
        out["python"] = shutil.which(python)  # a bare name: found on this machine's PATH
    elif isinstance(python, str):
        out["python"] = str((base / Path(python).expanduser()).absolute())
    if isinstance(out.get("find_links"), list):
        out["find_links"] = [
            str((base / Path(p).expanduser()).resolve()) if isinstance(p, str) else p
            for p in out["find_links"]
        ]
    return out


def _check_environment(path: Path, where: str, env: Environment) -> None:
    if env.python is None:
        return
    try:
        locate_python(env.python)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: {where}.python: {exc}; {ENV_PYTHON_FIX}") from exc


def _sandbox_search_path(campaign: Campaign, inst: Instance, base: str | None) -> str | None:
    """The PATH the instance's tests get: the environment's bin first; None when it is not
    known before the environment is built (an ``install`` env)."""
    env = campaign.environment_for(inst)
    default = base or os.pathsep.join([*campaign.sandbox.path_prepend, sandbox_path()])
    if env.install:
        return None
    if env.python is not None:
        return os.pathsep.join([locate_python(env.python).bin_dir, default])
    return default


def _check_test_cmd(path: Path, index: int, inst: Instance, search_path: str | None) -> None:
    try:
        argv = shlex.split(inst.test_cmd)
    except ValueError as exc:
        raise ConfigError(f"{path}: instances[{index}].test_cmd: cannot parse: {exc}") from exc
    while argv and _ASSIGNMENT.match(argv[0]):
        argv.pop(0)
    if not argv:
        raise ConfigError(f"{path}: instances[{index}].test_cmd: empty command")
    if search_path is None:  # an install env: its bin/ exists only after the build, and
        return  # the preflight in the sandbox checks the command before any work
    if shutil.which(argv[0], path=search_path) is None:
        raise ConfigError(
            f"{path}: instances[{index}].test_cmd: {argv[0]!r} is not on the sandbox PATH "
            f"({search_path}); use a command installed there, e.g. 'python -m pytest -q', "
            "or give the instance an environment (environment.python / environment.install)"
        )


GLOB_CHARS = re.compile(r"[*?\[]")


def _recipe_repos(value: Any, path: Path, where: str) -> list[str]:
    """A recipe's ``repos:``: a list of paths / git URLs (paths may be globs of checkouts),
    or one string: a file listing them (one per line, ``#`` comments), else a glob."""
    base = path.resolve().parent
    if isinstance(value, str):
        listed = base / value
        if listed.is_file():
            lines = [ln.split("#", 1)[0].strip() for ln in listed.read_text().splitlines()]
            value = [ln for ln in lines if ln]
        else:
            value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {where}: expected a list of repositories, a glob or a file")
    out: list[str] = []
    for item in value:
        if GIT_URL.match(item) or not GLOB_CHARS.search(item):
            out.append(item)
            continue
        found = sorted(str(p) for p in base.glob(item) if p.is_dir())
        if not found:
            raise ConfigError(f"{path}: {where}: {item!r} matches no directory under {base}")
        out.extend(found)
    return out


def _recipe_instances(raw: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """The instances a campaign's recipes name through ``repos:`` (id RECIPE-REPONAME)."""
    recipes = raw.get("recipes")
    if not isinstance(recipes, list):
        return []
    out: list[dict[str, Any]] = []
    for i, recipe in enumerate(recipes):
        if not isinstance(recipe, dict):
            raise ConfigError(f"{path}: recipes[{i}]: expected a mapping")
        repos = _recipe_repos(recipe.get("repos", []), path, f"recipes[{i}].repos")
        recipe["repos"] = repos
        for repo in repos:
            name = Path(str(repo).rstrip("/")).name.removesuffix(".git")
            item: dict[str, Any] = {
                "id": f"{recipe.get('name')}-{name}",
                "repo": repo,
                "recipe": recipe.get("name"),
                "intent": recipe.get("intent", "refactor"),
                "instruction": recipe.get("instruction", ""),
            }
            for key in ("test_cmd", "scope", "exclude"):
                if key in recipe:
                    item[key] = recipe[key]
            out.append(item)
    return out


def load_campaign(path: str | Path, *, search_path: str | None = None) -> Campaign:
    """Read, expand and validate a campaign file. Raises ConfigError before any work."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: campaign file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'name' and 'instances' at the top")
    base = path.resolve().parent
    raw = dict(raw)
    _refuse_internal(path, raw)
    if "environment" in raw:
        raw["environment"] = _resolve_env_paths(raw["environment"], base)
    if extra := _recipe_instances(raw, path):
        listed = raw.get("instances") or []
        raw["instances"] = [*listed, *extra] if isinstance(listed, list) else listed
    if "instances" in raw:
        raw["instances"] = [
            {**item, "environment": _resolve_env_paths(item["environment"], base)}
            if isinstance(item, dict) and "environment" in item
            else item
            for item in _expand_instances(raw["instances"], base, path)
        ]
    try:
        campaign = Campaign.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation(path, exc)) from exc
    _check_environment(path, "environment", campaign.environment)
    seen: set[str] = set()
    for i, inst in enumerate(campaign.instances):
        if inst.instance_id in seen:
            raise ConfigError(f"{path}: instances[{i}].id: duplicate id {inst.instance_id!r}")
        seen.add(inst.instance_id)
        if inst.environment is not None:
            _check_environment(
                path, f"instances[{i}] ({inst.instance_id}).environment", inst.environment
            )
        _check_test_cmd(path, i, inst, _sandbox_search_path(campaign, inst, search_path))
    return campaign
