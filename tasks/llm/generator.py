"""The LLM generator: SEARCH/REPLACE edits from a model, one round per ``propose``.

Per round it builds the prompt (instruction, the LLM plan if any, the localization
context within the tier's budget, feedback from earlier rounds), asks for ``samples``
completions in one batched call (samples take the tier's adapters in turn) and turns
each reply into a candidate with the tolerant applier (exact, then
whitespace-insensitive matching). A reply that does not parse or apply, or that edits
files outside the instance's scope, becomes a malformed candidate (see ``edits/malformed.py``)
so the loop records a ``malformed_edit`` attempt with the reason.

Each candidate carries the model that produced it (id, backend, adapters with sha256,
quantization, attention, sampling, prompt hashes, the planner's record) and the usage of
its own completion; the planner's usage goes on the first candidate, the critic's is
added in ``review``. ``ModelUnavailable`` propagates so Prefect retries the step.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from patchsmith.adapters.resolve import AdapterUse, resolve_tier
from patchsmith.config import LLMTier
from patchsmith.domain import Candidate, Critique, Instance, Plan, TestReport, Usage, Verdict
from patchsmith.errors import ApplyError, ConfigError, EditError
from patchsmith.infra.llm.config import Sampling
from patchsmith.infra.llm.types import ChatMessage, ChatRequest, Completion, ModelBackend
from patchsmith.infra.store import Store
from patchsmith.prompts import prompt_hashes, render
from patchsmith.tasks.edits.diff import parse_diff
from patchsmith.tasks.edits.functions import cut_off, functions_to_diff
from patchsmith.tasks.edits.malformed import is_malformed, malformed_description
from patchsmith.tasks.edits.search_replace import blocks_to_diff
from patchsmith.tasks.llm import critic as llm_critic
from patchsmith.tasks.llm.context import (
    CHARS_PER_TOKEN,
    PLAN_TOKENS,
    build_context,
    first_prompt_tokens,
    function_context,
    in_scope,
    prompt_forms,
    steady,
)
from patchsmith.tasks.llm.models import backend_for, provenance
from patchsmith.tasks.llm.planner import PROMPTS as PLANNER_PROMPTS
from patchsmith.tasks.llm.planner import LLMPlan, run_planner
from patchsmith.tasks.llm.transcript import PROMPT, REPLY, keep, prompt_blob

GENERATOR = "llm"
FEEDBACK_CHARS = 1500
MIN_CONTEXT_TOKENS = 32  # below this the prompt shows no code worth answering


def edit_to_diff(
    instance: Instance,
    root: Path,
    text: str,
    likely: Sequence[str] = (),
    form: str = "search_replace",
    *,
    truncated: bool = False,
) -> str:
    """The normalized diff of a reply; EditError says why there is none. ``likely``: the
    files the prompt showed (where whole functions go; a block naming a missing file may
    mean one of them)."""
    shown = [p for p in likely if in_scope(instance, p)]
    if form == "function":
        diff = functions_to_diff(root, text, shown, truncated=truncated)
    else:
        diff = blocks_to_diff(root, text, shown)
    outside = [fp.path for fp in parse_diff(diff) if not in_scope(instance, fp.path)]
    if outside:
        raise ApplyError(f"edits files outside the instance's scope: {', '.join(outside)}")
    return diff


class LLMGenerator:
    """Proposes SEARCH/REPLACE edits from one LLM tier's model (and reviews with its critic)."""

    def __init__(self, tier: LLMTier, store: Store | None = None) -> None:
        self.tier = tier
        self.models = resolve_tier(tier, store)
        self.store = store  # keeps each prompt and reply (tasks/llm/transcript.py)
        self.rounds = 0
        self.samples = 0
        self.instruction = ""
        self.llm_plan: LLMPlan | None = None
        self.planner_record: dict[str, Any] | None = None
        self.unpaid = Usage()  # spent on calls not yet charged to a candidate
        self.repeats = 0  # replies that repeated an edit already tried (an escalation signal)
        self.own_feedback: list[str] = []
        self.shown: list[str] = []  # the files of the last prompt
        self.context_tokens = tier.context_tokens  # shrinks when prompts overflow the model
        self.context_chars = 0  # the last prompt's context
        self.prompt_tokens = 0  # the last request's prompt, in the model's tokens
        self.prompt_sha256 = ""  # the last request's messages
        self.seconds_per_token: tuple[float, float] | None = None  # CPU, GPU, per reply token
        self.system_prompt, self.user_prompt = prompt_forms(tier.edit_format)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ propose

    def propose(
        self,
        instance: Instance,
        plan: Plan,
        pristine: Path,
        tried: set[str],
        feedback: list[str],
        n: int,
    ) -> list[Candidate]:
        """The next round's candidates; [] once the tier's rounds are used up."""
        with self._lock:
            self.instruction = instance.instruction
            backend = backend_for(self.models.generator)
            if self.tier.planner and self.planner_record is None:
                self._plan(backend, instance, plan, pristine)
            out: list[Candidate] = []
            limit = self.tier.escalate.repeats if self.tier.escalate else None
            while not out and self.rounds < self.tier.rounds:
                if limit is not None and self.repeats >= limit:
                    break  # only repeats: the repeats rule decides, not more rounds
                self.rounds += 1
                out = self._round(backend, instance, plan, pristine, tried, feedback, n)
            return out

    def estimate(self, n: int) -> Usage:
        """About what the next ``propose(n)`` asks of the model: each request's prompt (the
        last one's size, else the context budget and the prompts' text) plus a full reply,
        the planner's call when it is still to come, and model seconds at the rate the
        earlier replies took (unknown before the first)."""
        if self.rounds >= self.tier.rounds:
            return Usage()
        k = max(1, min(self.tier.samples, n))
        prompt = self.prompt_tokens
        if not prompt:  # before the first call: the context budget and the prompts' text
            prompt = first_prompt_tokens(self.tier.edit_format, self.context_tokens)
        prompt_tokens, completion_tokens = k * prompt, k * self.tier.max_new_tokens
        if self.tier.planner and self.planner_record is None:
            prompt_tokens += prompt
            completion_tokens += min(PLAN_TOKENS, self.tier.max_new_tokens)
        cpu_s, gpu_s = self.seconds_per_token or (0.0, 0.0)
        prices = self.models.generator.prices
        return Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cpu_seconds=cpu_s * completion_tokens,
            gpu_seconds=gpu_s * completion_tokens,
            dollars=prices.dollars(prompt_tokens, completion_tokens, gpu_s * completion_tokens),
        )

    def settle(self) -> Usage:
        """Usage of calls no candidate was charged for (replies that repeated a tried edit
        at the end of the tier); handed over once, so that it still counts."""
        unpaid, self.unpaid = self.unpaid, Usage()
        return unpaid

    def _adapter(self, i: int) -> AdapterUse | None:
        uses = self.models.adapters
        return uses[i % len(uses)] if uses else None

    def _plan(self, backend: ModelBackend, instance: Instance, plan: Plan, root: Path) -> None:
        first = self._adapter(0)
        result = run_planner(
            backend,
            instance,
            plan,
            root,
            adapter=first.request_name if first else None,
            context_tokens=self.tier.context_tokens,
            max_new_tokens=min(PLAN_TOKENS, self.tier.max_new_tokens),
        )
        self.llm_plan = result.plan
        self.planner_record = result.record
        self.unpaid = self.unpaid + result.usage

    def _sampling(self, k: int) -> Sampling:
        base = self.tier.model.sampling
        if k > 1 and base.greedy:
            return base.model_copy(update={"temperature": self.tier.sample_temperature})
        return base

    def _prompt(self, instance: Instance, plan: Plan, root: Path, feedback: list[str]) -> str:
        focus = self.llm_plan.files if self.llm_plan else []
        notes = [f for f in [*feedback[-2:], *self.own_feedback[-1:]] if f]
        fb = ""
        if notes:
            fb = "Earlier attempts and what was wrong with them:\n" + "\n---\n".join(
                steady(n)[-FEEDBACK_CHARS:] for n in notes
            )
            fb += "\n"
        if self.tier.edit_format == "function":
            context = function_context(instance, plan, root, self.context_tokens)
        else:
            context = build_context(instance, plan, root, self.context_tokens, focus)
        self.context_chars = len(context)
        return render(
            self.user_prompt,
            instruction=instance.instruction,
            plan=self.llm_plan.as_text() if self.llm_plan else "",
            context=context,
            feedback=fb,
        )

    def _round(
        self,
        backend: ModelBackend,
        instance: Instance,
        plan: Plan,
        root: Path,
        tried: set[str],
        feedback: list[str],
        n: int,
    ) -> list[Candidate]:
        k = max(1, min(self.tier.samples, n))
        sampling = self._sampling(k)
        self.shown = list(dict.fromkeys(s.path for s in plan.suspicious))
        uses = [self._adapter(self.samples + i) for i in range(k)]
        self.samples += k
        completions = self._complete(backend, instance, plan, root, feedback, uses, sampling)
        seen = set(tried)
        out = []
        for use, completion in zip(uses, completions, strict=True):
            self.unpaid = self.unpaid + completion.usage
            candidate = self._candidate(backend, instance, root, completion, use, sampling)
            if not is_malformed(candidate) and candidate.candidate_id in seen:
                self.repeats += 1
                continue  # a repeat: its cost goes on the next new candidate
            seen.add(candidate.candidate_id)
            candidate.usage, self.unpaid = self.unpaid, Usage()
            out.append(candidate)
        return out

    def _complete(
        self,
        backend: ModelBackend,
        instance: Instance,
        plan: Plan,
        root: Path,
        feedback: list[str],
        uses: list[AdapterUse | None],
        sampling: Sampling,
    ) -> list[Completion]:
        """One batched call; asked again with less context when the prompt left the model
        no room to answer (no reply token at all), and later rounds keep the smaller budget."""
        for _ in range(2):
            system = render(self.system_prompt)
            user = self._prompt(instance, plan, root, feedback)
            messages = [
                ChatMessage(role="system", content=system),
                ChatMessage(role="user", content=user),
            ]
            self.prompt_sha256 = keep(self.store, prompt_blob(messages), PROMPT)
            requests = [
                ChatRequest(
                    messages=messages,
                    adapter=u.request_name if u else None,
                    max_new_tokens=self.tier.max_new_tokens,
                    sampling=sampling if sampling != self.tier.model.sampling else None,
                )
                for u in uses
            ]
            completions = backend.complete(requests)
            self._observe(completions)
            if not self._fit(completions[0].usage.prompt_tokens, len(system) + len(user)):
                break
            if any(c.usage.completion_tokens for c in completions):
                break  # short replies still count; the next round asks with less context
            for c in completions:  # the refused call's time is still spent
                self.unpaid = self.unpaid + c.usage
        return completions

    def _observe(self, completions: list[Completion]) -> None:
        """Remember the prompt's size and the model seconds per reply token (estimates)."""
        self.prompt_tokens = max(c.usage.prompt_tokens for c in completions)
        out = sum(c.usage.completion_tokens for c in completions)
        if out:
            cpu = sum(c.usage.cpu_seconds for c in completions) / out
            gpu = sum(c.usage.gpu_seconds for c in completions) / out
            self.seconds_per_token = (cpu, gpu)

    def _fit(self, prompt_tokens: int, prompt_chars: int) -> bool:
        """Shrinks the context budget when a prompt of ``prompt_tokens`` overflowed the model's
        context with the tier's reply budget; True when it did."""
        limit = self.models.generator.max_context - self.tier.max_new_tokens
        over = prompt_tokens - limit
        if over <= 0 or prompt_chars <= 0:
            return False
        per_char = prompt_tokens / prompt_chars  # this model's tokens per character
        cut = int(over / per_char / CHARS_PER_TOKEN * 1.1) + 1
        budget = min(self.context_tokens, self.context_chars // CHARS_PER_TOKEN) - cut
        if budget < MIN_CONTEXT_TOKENS:
            raise ConfigError(
                f"tier {self.tier.name!r}: the prompt takes {prompt_tokens} tokens and the reply "
                f"{self.tier.max_new_tokens} more, past the model's max_context "
                f"{self.models.generator.max_context} even with almost no code shown; raise "
                "the model's max_context or lower the tier's max_new_tokens"
            )
        self.context_tokens = min(self.context_tokens - 1, budget)
        return True

    def _candidate(
        self,
        backend: ModelBackend,
        instance: Instance,
        root: Path,
        completion: Completion,
        use: AdapterUse | None,
        sampling: Sampling,
    ) -> Candidate:
        model = provenance(self.models.generator, backend, [use] if use else [], sampling)
        prompts = (self.system_prompt, self.user_prompt)
        model["prompts"] = prompt_hashes(*prompts, *(PLANNER_PROMPTS if self.tier.planner else ()))
        model["edit_format"] = self.tier.edit_format
        # Which exact prompt: two runs whose replies differ can be told apart from two
        # runs that asked differently.
        model["prompt_sha256"] = self.prompt_sha256
        model["finish_reason"] = completion.finish_reason
        model["reply_sha256"] = keep(self.store, completion.text.encode(), REPLY)
        if self.planner_record is not None:
            model["planner"] = {k: v for k, v in self.planner_record.items() if k != "prompts"}
        via = f" via {use.name}@{use.version}" if use and use.version else ""
        try:
            truncated = cut_off(completion.text, completion.finish_reason)
            diff = edit_to_diff(
                instance, root, completion.text, self.shown, self.tier.edit_format,
                truncated=truncated,
            )  # fmt: skip
        except EditError as exc:
            reason = str(exc)
            if completion.finish_reason == "length":
                reason += " (the reply hit the token limit)"
            error = type(exc)(reason)
            self.own_feedback.append(f"Your reply could not be applied: {reason}")
            return Candidate(
                candidate_id=Candidate.make_id(completion.text),
                generator=GENERATOR,
                tier=self.tier.name,
                diff=completion.text,
                description=malformed_description(error),
                model=model,
            )
        files = [fp.path for fp in parse_diff(diff)]
        return Candidate(
            candidate_id=Candidate.make_id(diff),
            generator=GENERATOR,
            tier=self.tier.name,
            diff=diff,
            description=f"edit to {', '.join(files)}{via}",
            score=completion.mean_logprob or 0.0,
            files=files,
            model=model,
        )

    # ------------------------------------------------------------------- review

    def scope(self, plan: Plan, pristine: Path, *, exhausted: bool) -> str | None:
        """An LLM tier's scope is its rounds, already in the reasons: nothing to add."""
        return None

    def review(
        self, plan: Plan, candidate: Candidate, report: TestReport, critique: Critique
    ) -> Critique:
        """Fold the tier's LLM critic (if any) into the deterministic critique.

        The critic's usage is added to the candidate's, and its model and guardrail
        adapter to ``candidate.model["critic"]``, so the attempt records them.
        """
        config, settings = self.models.critic, self.tier.critic
        if config is None or settings is None:
            return critique
        if settings.review == "accepted" and critique.verdict != Verdict.accept:
            return critique
        backend = backend_for(config)
        guard = self.models.critic_adapter
        reply = llm_critic.run_critic(
            backend,
            self.instruction,
            candidate.diff,
            report,
            critique,
            adapter=guard.request_name if guard else None,
            max_new_tokens=settings.max_new_tokens,
        )
        record = provenance(config, backend, [guard] if guard else [], config.sampling)
        record.update(
            prompts=prompt_hashes(*llm_critic.PROMPTS),
            tries=reply.tries,
            verdict=reply.value.model_dump() if reply.value else None,
            error=reply.error,
        )
        candidate.usage = candidate.usage + reply.usage
        candidate.model = {**candidate.model, "critic": record}
        return llm_critic.combine(critique, reply.value, reply.error)
