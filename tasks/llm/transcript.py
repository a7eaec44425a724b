"""What a model was asked and what it answered, kept for every LLM attempt.

The generator stores each request's messages (``prompt``) and each reply's text (``reply``)
in the store's content-addressed artifacts; the attempt records their sha256s
(``model.prompt_sha256``, ``model.reply_sha256``). Two runs that answered one instance
differently can then be told apart: a different prompt, or the same prompt and another
reply. MLflow shows the same texts as the inputs and outputs of the attempt's LLM span.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from patchsmith.errors import StoreError
from patchsmith.infra.llm.types import ChatMessage
from patchsmith.infra.store import Store

PROMPT, REPLY = "prompt", "reply"


def prompt_blob(messages: Sequence[ChatMessage]) -> bytes:
    """A request's messages as stored: role and content of each, NUL-separated."""
    return "\0".join(f"{m.role}\0{m.content}" for m in messages).encode()


def prompt_digest(messages: Sequence[ChatMessage]) -> str:
    """sha256 of a request's messages (roles and contents), as attempts record it."""
    return hashlib.sha256(prompt_blob(messages)).hexdigest()


def keep(store: Store | None, data: bytes, kind: str) -> str:
    """Store ``data`` (once) when there is a store; its sha256 either way."""
    if store is not None:
        return store.put_artifact(data, kind)
    return hashlib.sha256(data).hexdigest()


def messages_of(blob: bytes) -> list[dict[str, str]]:
    """The messages of a stored prompt (the inverse of :func:`prompt_blob`)."""
    parts = blob.decode().split("\0")
    if len(parts) % 2:  # a NUL inside a message: keep the text whole rather than guess
        return [{"role": "user", "content": blob.decode().replace("\0", "\n")}]
    return [{"role": r, "content": c} for r, c in zip(parts[::2], parts[1::2], strict=True)]


def transcript(store: Store, model: Mapping[str, Any]) -> tuple[dict[str, Any], str] | None:
    """An attempt's request and reply, from its ``model`` record; None when either was
    not stored (an attempt of another generator, or one recorded without a store)."""
    prompt, reply = model.get("prompt_sha256"), model.get("reply_sha256")
    if not prompt or not reply:
        return None
    try:
        asked, answered = store.get_artifact(prompt), store.get_artifact(reply)
    except StoreError:
        return None
    return {"messages": messages_of(asked)}, answered.decode()
