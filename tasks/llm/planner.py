"""The LLM planner: localization context + instruction → a validated plan.

The plan names the files and functions to change and the intended change. Output that
does not parse or validate (unknown files, files outside the instance's scope) is asked
again once with the error; a second failure is recorded as ``malformed`` and the tier goes
on without a plan. The plan steers the generator's context (its files come first) and is
quoted in the generator's prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from patchsmith.domain import Instance, Plan, Usage
from patchsmith.infra.llm.types import ChatMessage, ModelBackend
from patchsmith.prompts import prompt_hashes, render
from patchsmith.tasks.llm.context import build_context, in_scope
from patchsmith.tasks.llm.models import ask_json

PROMPTS = ("planner_system", "planner_user", "retry_json")


class LLMPlan(BaseModel):
    """What the model intends to change (unknown keys are ignored)."""

    model_config = ConfigDict(extra="ignore")

    files: list[str] = Field(min_length=1, description="Files to edit, relative to the repo.")
    functions: list[str] = Field(default_factory=list, description="Functions to change.")
    intended_change: str = Field(min_length=1, description="The change, in a sentence or two.")

    def as_text(self) -> str:
        """The plan as the generator's prompt quotes it."""
        funcs = f"\nFunctions: {', '.join(self.functions)}" if self.functions else ""
        return f"Plan:\nFiles: {', '.join(self.files)}{funcs}\nChange: {self.intended_change}\n"


class PlannerResult(BaseModel):
    """The plan (None when malformed), its record for the attempts, and its cost."""

    plan: LLMPlan | None
    record: dict[str, Any]
    usage: Usage


def _checker(instance: Instance, root: Path) -> Any:
    def check(plan: LLMPlan) -> str | None:
        missing = [f for f in plan.files if not (root / f).is_file()]
        if missing:
            return f"files do not exist in the repository: {', '.join(missing)}"
        outside = [f for f in plan.files if not in_scope(instance, f)]
        if outside:
            return f"files outside what may be edited (tests are read-only): {', '.join(outside)}"
        return None

    return check


def run_planner(
    backend: ModelBackend,
    instance: Instance,
    plan: Plan,
    root: Path,
    *,
    adapter: str | None,
    context_tokens: int,
    max_new_tokens: int = 256,
) -> PlannerResult:
    """Ask for a plan; retried once on invalid output, then recorded as malformed."""
    context = build_context(instance, plan, root, context_tokens)
    messages = [
        ChatMessage(role="system", content=render("planner_system")),
        ChatMessage(
            role="user",
            content=render("planner_user", instruction=instance.instruction, context=context),
        ),
    ]
    reply = ask_json(
        backend,
        messages,
        LLMPlan,
        adapter=adapter,
        max_new_tokens=max_new_tokens,
        check=_checker(instance, root),
    )
    record: dict[str, Any] = {
        "status": "ok" if reply.value is not None else "malformed",
        "tries": reply.tries,
        "prompts": prompt_hashes(*PROMPTS),
    }
    if reply.value is not None:
        record["plan"] = reply.value.model_dump()
    else:
        record["error"] = reply.error
        record["raw"] = reply.raw[:2000]
    return PlannerResult(plan=reply.value, record=record, usage=reply.usage)
