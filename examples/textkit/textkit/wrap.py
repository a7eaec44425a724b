"""Greedy word wrapping for plain-text output (e-mails, terminals)."""

from __future__ import annotations


def wrap(text: str, width: int = 72, indent: str = "") -> list[str]:
    """Wrap ``text`` into lines of at most ``width`` characters.

    Words are never split unless a single word is longer than the line; such words
    are put on a line of their own. ``indent`` is prepended to every line and counts
    towards the width.
    """
    if width <= len(indent):
        raise ValueError("width must be larger than the indent")
    room = width - len(indent)
    lines: list[str] = []
    current = ""
    for word in text.split():
        if not current:
            current = word
        elif len(current) + 1 + len(word) < room:
            current = f"{current} {word}"
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return [indent + line for line in lines]


def fill(text: str, width: int = 72, indent: str = "") -> str:
    """Like :func:`wrap` but joined into one string, paragraphs kept apart."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    return "\n\n".join("\n".join(wrap(p, width, indent)) for p in paragraphs)
