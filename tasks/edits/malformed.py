"""Malformed candidates: an edit a generator could not use, kept so the attempt counts.

A generator that could not turn a model's reply into a diff still returns a candidate,
so the attempt is counted and recorded: its ``description`` starts with ``MALFORMED``
(``"malformed_edit: ApplyError: <reason>"``) and its ``diff`` holds the raw reply.
``raise_if_malformed`` turns such a candidate back into its EditError before testing.

Here, below ``generate`` (the contract and the factory) and the generators it makes, so
imports go one way: ``generate`` → ``llm.generator`` → ``edits.malformed``.
"""

from __future__ import annotations

from patchsmith.domain import Candidate
from patchsmith.errors import ApplyError, EditError, MalformedEdit

__all__ = ["MALFORMED", "is_malformed", "malformed_description", "raise_if_malformed"]

MALFORMED = "malformed_edit: "


def malformed_description(error: EditError) -> str:
    """The description of a candidate whose edit could not be used."""
    return f"{MALFORMED}{type(error).__name__}: {error}"


def is_malformed(candidate: Candidate) -> bool:
    """Whether a generator marked this candidate's edit as unusable."""
    return candidate.description.startswith(MALFORMED)


def raise_if_malformed(candidate: Candidate) -> None:
    """Raise the EditError a generator recorded on a malformed candidate (else nothing)."""
    if not is_malformed(candidate):
        return
    kind, _, reason = candidate.description.removeprefix(MALFORMED).partition(": ")
    if kind == ApplyError.__name__:
        raise ApplyError(reason)
    raise MalformedEdit(reason or kind)
