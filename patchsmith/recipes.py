"""Refactoring recipes: what to change, what "done" means, and the codemods to try first.

A campaign's ``recipes:`` each name an instruction (for people and LLM tiers), a **goal**
checkable by a machine and the deterministic codemods of the ``codemod`` tier::

    recipes:
      - name: utcnow
        instruction: Replace naive datetime.utcnow() with timezone-aware datetime.now(UTC).
        goal:
          forbid:                            # ast-grep patterns that must no longer match
            - pattern: datetime.utcnow()
              rewrite: datetime.now(UTC)     # structural rewrite ($X metavariables kept)
              imports: ["from datetime import UTC"]
          check_cmd: ruff check --select DTZ003 .   # must fail before and pass after
        codemods:
          ruff: [UP017]                      # ruff's fixers for these rules
          commands: ["python tools/migrate.py"]    # any command that edits the workspace
        repos: [services/billing, services/ledger] # each becomes an instance (intent refactor)

Every test that passes on the baseline is a guard: a candidate that breaks one is rejected.
Patterns are ast-grep patterns (tree-sitter syntax trees, not regexes): ``$X`` matches one
node, ``$$$ARGS`` any number; a ``rewrite`` uses the same names.
"""

from __future__ import annotations

import ast
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from patchsmith.domain import DEFAULT_EXCLUDE, Intent, Strict, TierBudget

RECIPE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
METAVAR = re.compile(r"\$\$\$([A-Z_][A-Z0-9_]*)|\$([A-Z_][A-Z0-9_]*)")
RUFF_RULE = re.compile(r"^[A-Z]+[0-9]*$")


def _parses(code: str) -> bool:
    """True when ``code`` parses as Python once its metavariables are plain names."""
    plain = METAVAR.sub(lambda m: f"_mv_{m.group(1) or m.group(2)}", code)
    try:
        ast.parse(plain)
    except SyntaxError:
        return False
    return True


class ForbidPattern(Strict):
    """A structural pattern that must not occur in scope once the recipe is done."""

    pattern: str = Field(min_length=1, description="ast-grep pattern, e.g. datetime.utcnow().")
    rewrite: str | None = Field(
        default=None,
        description="What a match becomes (the codemod tier applies it); metavariables of "
        "the pattern ($X, $$$ARGS) are filled in. None: codemods cannot fix it.",
    )
    imports: list[str] = Field(
        default_factory=list,
        description="Import lines a rewritten file needs (added once, after its imports).",
    )
    message: str = Field(default="", description="Why it is forbidden (shown in reports).")

    @model_validator(mode="after")
    def _rewrite_names(self) -> ForbidPattern:
        for label, code in (("pattern", self.pattern), ("rewrite", self.rewrite)):
            if code is not None and not _parses(code):
                raise ValueError(f"{label} {code!r} is not Python code (with $X metavariables)")
        if self.rewrite is None:
            return self
        known = {a or b for a, b in METAVAR.findall(self.pattern)}
        unknown = {a or b for a, b in METAVAR.findall(self.rewrite)} - known
        if unknown:
            raise ValueError(
                f"rewrite {self.rewrite!r} uses ${', $'.join(sorted(unknown))}, which the "
                f"pattern {self.pattern!r} does not bind"
            )
        for line in self.imports:
            if not line.startswith(("import ", "from ")):
                raise ValueError(f"imports: {line!r} is not an import statement")
        return self


class Goal(Strict):
    """What "done" means for a recipe, checked by a machine."""

    forbid: list[ForbidPattern] = Field(
        default_factory=list, description="Patterns that must no longer occur in scope."
    )
    check_cmd: str | None = Field(
        default=None,
        description="A command (in the sandbox, in the repository) that must fail before "
        "and pass after, e.g. 'ruff check --select UP006,UP035 .'.",
    )

    @model_validator(mode="after")
    def _something(self) -> Goal:
        if not self.forbid and self.check_cmd is None:
            raise ValueError("a goal needs forbid patterns, a check_cmd, or both")
        return self


class Codemods(Strict):
    """The deterministic tools the ``codemod`` tier runs, cheapest first."""

    rewrites: bool = Field(
        default=True, description="Apply the goal's forbid → rewrite rules (in process)."
    )
    ruff: list[str] = Field(
        default_factory=list,
        description="ruff rule codes whose fixers run in the sandbox (ruff check --fix).",
    )
    ruff_target: str | None = Field(
        default=None,
        pattern=r"^py3[0-9]+$",
        description="ruff --target-version for its fixers (e.g. py311, which UP017 needs); "
        "None: the repository's own ruff settings.",
    )
    commands: list[str] = Field(
        default_factory=list,
        description="Commands that edit the workspace (run in the sandbox, in turn).",
    )

    @field_validator("ruff")
    @classmethod
    def _rules(cls, rules: list[str]) -> list[str]:
        for rule in rules:
            if not RUFF_RULE.match(rule):
                raise ValueError(f"ruff: {rule!r} is not a rule code or prefix (e.g. UP017, UP)")
        return rules


class Recipe(Strict):
    """A refactoring or migration to apply to many repositories."""

    name: str = Field(pattern=RECIPE_NAME, description="Recorded name; instance id prefix.")
    instruction: str = Field(min_length=1, description="What to change, in words.")
    goal: Goal
    codemods: Codemods = Field(default_factory=Codemods)
    intent: Literal["refactor", "migration", "migrate"] = Field(
        default="refactor", description="Intent of the instances it makes."
    )
    tiers: list[str] = Field(
        default_factory=list,
        description="Tiers to try, by name (default: every codemod and LLM tier).",
    )
    split: Literal["none", "file", "package"] = Field(
        default="none",
        description="Split each repository's change into reviewable parts (one per file, "
        "or per top-level package), each verified alone and published as its own branch.",
    )
    repos: list[str] = Field(
        default_factory=list,
        description="Repositories (paths relative to the campaign file, or git URLs) that "
        "each become an instance of this recipe.",
    )
    test_cmd: str = Field(default="python -m pytest -q", description="Tests of every repo.")
    scope: list[str] = Field(default_factory=lambda: ["**/*.py"], description="Files to change.")
    exclude: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUDE), description="Files left alone."
    )

    @property
    def instance_intent(self) -> Intent:
        return Intent.refactor if self.intent == "refactor" else Intent.migration


class CodemodTier(Strict):
    """Tier 0 of refactoring: the recipe's deterministic codemods, no model."""

    kind: Literal["codemod"] = "codemod"
    name: str = Field(default="codemod", description="Tier name used in records and reports.")
    batch: int = Field(
        default=1,
        gt=0,
        description="Candidates per round: one tool at a time, so that each next tool "
        "starts from the progress the last one made.",
    )
    budget: TierBudget | None = Field(
        default=None, description="This tier's share of the budget; past it, escalate."
    )
