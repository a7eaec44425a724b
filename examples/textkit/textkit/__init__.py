"""Text utilities: tokenizing, slugs, wrapping and word statistics."""

from textkit.slug import slugify
from textkit.tokens import ngrams, sentences, words
from textkit.wrap import wrap

__all__ = ["ngrams", "sentences", "slugify", "words", "wrap"]
