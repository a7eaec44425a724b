"""URL slugs from arbitrary titles."""

from __future__ import annotations

import re
import unicodedata

NON_SLUG_RE = re.compile(r"[^a-z0-9]+")


def slugify(title: str, max_length: int = 60, separator: str = "-") -> str:
    """Lower-case ASCII slug of ``title``, e.g. ``"Crème Brûlée!"`` → ``"creme-brulee"``.

    Accented letters are transliterated to their base letter; other characters become
    separators. Slugs longer than ``max_length`` are cut at a separator so that no word
    is split.
    """
    ascii_title = title.encode("ascii", "ignore").decode()
    slug = NON_SLUG_RE.sub(separator, ascii_title.lower()).strip(separator)
    if len(slug) <= max_length:
        return slug
    cut = slug[: max_length + 1]
    if separator in cut:
        cut = cut[: cut.rindex(separator)]
    return cut[:max_length].strip(separator)


def unique_slug(title: str, taken: set[str], max_length: int = 60) -> str:
    """A slug for ``title`` not in ``taken``, adding ``-2``, ``-3``… when needed."""
    base = slugify(title, max_length=max_length)
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"
