"""Prompt templates shipped with the package, rendered with ``string.Template``.

Each step has a ``<step>_system.txt`` and a ``<step>_user.txt`` (``$name`` placeholders;
``$$`` for a literal dollar). The sha256 of every template used is recorded with the
candidates it produced, so a prompt change shows up in the run records::

    text = render("generator_user", instruction="...", context="...")
    prompt_hash("generator_user")   # 16 hex digits
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files
from string import Template

from patchsmith.errors import ConfigError


@cache
def _source(name: str) -> str:
    resource = files(__package__).joinpath(f"{name}.txt")
    if not resource.is_file():
        known = sorted(p.name[:-4] for p in files(__package__).iterdir() if p.name.endswith(".txt"))
        raise ConfigError(f"no prompt template {name!r}; known: {', '.join(known)}")
    return resource.read_text(encoding="utf-8")


def render(name: str, **values: object) -> str:
    """The template ``name`` with ``values`` filled in; a missing value is a KeyError."""
    return Template(_source(name)).substitute({k: str(v) for k, v in values.items()})


def prompt_hash(name: str) -> str:
    """First 16 hex digits of the sha256 of the template's text."""
    return hashlib.sha256(_source(name).encode()).hexdigest()[:16]


def prompt_hashes(*names: str) -> dict[str, str]:
    """``{name: hash}`` for the templates a step used."""
    return {name: prompt_hash(name) for name in names}
