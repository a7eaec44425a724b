"""Word statistics for articles: frequencies, reading time, lexical variety."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from textkit.tokens import sentences, words

STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it of on or the this to was with".split()
)


def word_frequencies(text: str, skip_stopwords: bool = True) -> Counter[str]:
    """Case-insensitive word counts."""
    counts = Counter(words(text, lower=True))
    if skip_stopwords:
        for stop in STOPWORDS:
            counts.pop(stop, None)
    return counts


def top_words(text: str, n: int = 5) -> list[tuple[str, int]]:
    """The ``n`` most frequent non-stopwords; ties broken alphabetically."""
    ranked = sorted(word_frequencies(text).items(), key=lambda kv: (-kv[1], kv[0]))
    return ranked[:n]


def reading_time_minutes(text: str, words_per_minute: int = 200) -> int:
    """Minutes needed to read ``text``, rounded up (an empty text takes 0 minutes)."""
    return math.ceil(len(words(text)) // words_per_minute)


def lexical_diversity(text: str) -> float:
    """Distinct words divided by total words (type/token ratio)."""
    tokens = words(text, lower=True)
    if not tokens:
        return 0.0
    return len(set(tokens)) / len(tokens)


@dataclass(frozen=True)
class Summary:
    words: int
    sentences: int
    reading_minutes: int
    average_sentence_length: float


def summarize(text: str) -> Summary:
    """Headline numbers shown next to an article in the editor."""
    n_words = len(words(text))
    n_sentences = len(sentences(text))
    avg = n_words / n_sentences if n_sentences else 0.0
    return Summary(n_words, n_sentences, reading_time_minutes(text), round(avg, 1))
