"""Values that cross the model-backend boundary, and the backend contract."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import Field

from patchsmith.domain import Usage, Value
from patchsmith.infra.llm.config import Sampling


class ChatMessage(Value):
    """One turn of a chat."""

    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(Value):
    """One completion wanted from a backend."""

    messages: list[ChatMessage] = Field(min_length=1, description="The conversation so far.")
    adapter: str | None = Field(default=None, description="LoRA adapter name; None = base.")
    max_new_tokens: int = Field(default=256, gt=0, description="Completion tokens at most.")
    sampling: Sampling | None = Field(
        default=None, description="Overrides the model's sampling settings for this request."
    )
    json_schema: dict[str, Any] | None = Field(
        default=None,
        description="Constrain the output to this JSON schema where the backend supports it "
        "(openai against vLLM / transformers serve, vllm); hf and scripted ignore it.",
    )

    @classmethod
    def user(cls, text: str, **kwargs: Any) -> ChatRequest:
        """A one-message request: ``ChatRequest.user("fix this", adapter="a")``."""
        return cls(messages=[ChatMessage(role="user", content=text)], **kwargs)


class Completion(Value):
    """What a backend produced for one request."""

    text: str
    usage: Usage
    mean_logprob: float | None = Field(
        default=None, description="Mean log-probability of the completion tokens, if known."
    )
    finish_reason: Literal["stop", "length"] = Field(
        description="stop = end of sequence or stop string; length = token limit reached."
    )
    model: str
    adapter: str | None = None


class ModelBackend(Protocol):
    """A model that completes a batch of chat requests, in order."""

    def complete(self, requests: list[ChatRequest]) -> list[Completion]:
        """One completion per request, in the same order."""
        ...
