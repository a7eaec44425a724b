"""Splitting text into words, sentences and n-grams."""

from __future__ import annotations

import re
from typing import Iterator, Sequence, TypeVar

T = TypeVar("T")

# A word is a run of letters/digits, optionally with inner apostrophes or hyphens
# ("don't", "state-of-the-art"); surrounding punctuation is dropped.
WORD_RE = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
ABBREVIATIONS = frozenset({"e.g.", "i.e.", "mr.", "mrs.", "dr.", "etc.", "vs."})


def words(text: str, lower: bool = False) -> list[str]:
    """The words of ``text`` in order, optionally lower-cased."""
    found = WORD_RE.findall(text)
    return [w.lower() for w in found] if lower else found


def sentences(text: str) -> list[str]:
    """Split ``text`` into sentences, keeping common abbreviations intact."""
    parts = SENTENCE_END_RE.split(text.strip())
    out: list[str] = []
    for part in parts:
        if out and out[-1].split()[-1].lower() in ABBREVIATIONS:
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return [s for s in out if s]


def ngrams(items: Sequence[T], n: int) -> list[tuple[T, ...]]:
    """All contiguous ``n``-grams of ``items``, in order."""
    if n <= 0:
        raise ValueError("n must be positive")
    return [tuple(items[i : i + n]) for i in range(len(items) - n)]


def iter_windows(items: Sequence[T], size: int, step: int = 1) -> Iterator[Sequence[T]]:
    """Windows of ``size`` items, advancing by ``step``; the last may be shorter."""
    if size <= 0 or step <= 0:
        raise ValueError("size and step must be positive")
    for start in range(0, len(items), step):
        yield items[start : start + size]
        if start + size >= len(items):
            break
