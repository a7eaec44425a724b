"""The ``scripted`` backend: replays given completions, for tests and dry runs.

Replies come from ``options.replies`` in order (``cycle: true`` starts over at the end),
or from a function passed to the constructor. Token counts are whitespace word counts;
prompt and reply share ``max_context`` as with a real model.
Every request it saw is kept in ``requests`` so tests can look at the prompts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

from pydantic import Field

from patchsmith.domain import Strict, Usage
from patchsmith.errors import ConfigError
from patchsmith.infra.llm.config import ModelConfig
from patchsmith.infra.llm.types import ChatRequest, Completion


class Options(Strict):
    """``options:`` of a scripted model."""

    replies: list[str] = Field(default_factory=list, description="Completions, in order.")
    cycle: bool = Field(default=False, description="Start over after the last reply.")


class ScriptedBackend:
    """Deterministic fake model: no randomness, no I/O."""

    def __init__(
        self, config: ModelConfig, reply: Callable[[ChatRequest], str] | None = None
    ) -> None:
        self.config = config
        self.options = Options.model_validate(config.options)
        self._reply = reply
        self._next = 0
        self._lock = threading.Lock()
        self.requests: list[ChatRequest] = []

    def _text(self, request: ChatRequest) -> str:
        if self._reply is not None:
            return self._reply(request)
        replies = self.options.replies
        if self._next >= len(replies) and not (self.options.cycle and replies):
            raise ConfigError(
                f"scripted model {self.config.model!r} ran out of replies after {len(replies)}: "
                "add more to options.replies or set options.cycle: true"
            )
        text = replies[self._next % len(replies)]
        self._next += 1
        return text

    def complete(self, requests: list[ChatRequest]) -> list[Completion]:
        """The next scripted reply for each request, in order."""
        out = []
        for r in requests:
            if r.adapter is not None:
                self.config.adapter(r.adapter)
            with self._lock:
                self.requests.append(r)
                text = self._text(r)
            words = text.split()
            prompt = sum(len(m.content.split()) for m in r.messages)
            room = max(0, min(r.max_new_tokens, self.config.max_context - prompt))
            finish: Literal["stop", "length"] = "stop"
            if len(words) > room:  # like a real model: the prompt and reply share the context
                finish = "length"
                text = " ".join(words[:room])
            done = min(len(words), room)
            usage = Usage(
                prompt_tokens=prompt,
                completion_tokens=done,
                dollars=self.config.prices.dollars(prompt, done, 0.0),
            )
            out.append(
                Completion(
                    text=text,
                    usage=usage,
                    finish_reason=finish,
                    model=self.config.model,
                    adapter=r.adapter,
                )
            )
        return out
