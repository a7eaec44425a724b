"""The operator prior of the mutation search: a fixed table, refit from recorded attempts.

A mutant's place in its stage is suspiciousness x ``prior[operator]`` (x a decay per
variant). :data:`operators.PRIOR` is the starting table. ``patchsmith tune-search`` counts,
over the store's single-mutation attempts, how often each operator was tried and how often
it was the accepted fix, and refits the table with :func:`fit`: a Beta-style smoothing
towards the fixed table (``strength`` pseudo-attempts each), so an operator seen a handful
of times moves a little and one seen hundreds of times follows its record. The result is
written to ``$PATCHSMITH_HOME/search-prior.json``; a search tier with ``prior: auto`` (the
default) uses it when it is there, ``prior: fixed`` never does, and a path names another.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from patchsmith.errors import ConfigError
from patchsmith.tasks.search.operators import PRIOR

PRIOR_FILE = "search-prior.json"
STRENGTH = 20.0
"""Pseudo-attempts of the fixed table behind every refit weight."""
FLOOR = 0.01
"""No operator's weight drops below this: it is still tried, just later."""


@dataclass(frozen=True)
class OperatorCount:
    operator: str
    tried: int
    fixed: int


def count(attempts: Iterable[tuple[bool, list[str]]]) -> list[OperatorCount]:
    """Per operator, single-mutation attempts tried and accepted (pairs are not counted:
    which of the two did the fixing is unknown)."""
    tried: dict[str, int] = {}
    fixed: dict[str, int] = {}
    for accepted, operators in attempts:
        if len(operators) != 1:
            continue
        (op,) = operators
        tried[op] = tried.get(op, 0) + 1
        fixed[op] = fixed.get(op, 0) + int(accepted)
    return [OperatorCount(op, tried[op], fixed[op]) for op in sorted(tried)]


def fit(counts: Iterable[OperatorCount], base: Mapping[str, float] = PRIOR) -> dict[str, float]:
    """The refit table: each weight is (fixed + s * r0) / (tried + s), where r0 is the
    fixed table's weight scaled to the observed overall fix rate; normalized to max 1."""
    counts = list(counts)
    tried = sum(c.tried for c in counts)
    fixed = sum(c.fixed for c in counts)
    if not tried or not fixed:
        return dict(base)
    mean_base = sum(base.values()) / len(base)
    scale = (fixed / tried) / mean_base
    by_op = {c.operator: c for c in counts}
    raw: dict[str, float] = {}
    for op, weight in base.items():
        c = by_op.get(op, OperatorCount(op, 0, 0))
        r0 = weight * scale
        raw[op] = (c.fixed + STRENGTH * r0) / (c.tried + STRENGTH)
    top = max(raw.values())
    return {op: max(FLOOR, round(w / top, 4)) for op, w in raw.items()}


def save(path: Path, table: Mapping[str, float], counts: Iterable[OperatorCount]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "operators": dict(sorted(table.items())),
        "counts": {c.operator: {"tried": c.tried, "fixed": c.fixed} for c in counts},
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)


def load(path: Path) -> dict[str, float]:
    """A saved table; ConfigError (naming the file and the fix) when it is not one."""
    fix = f"fix or delete {path}, or run `patchsmith tune-search` again"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"search prior {path} cannot be read ({exc}): {fix}") from None
    table = record.get("operators") if isinstance(record, dict) else None
    if not isinstance(table, dict):
        raise ConfigError(f"search prior {path} has no 'operators' table: {fix}")
    out: dict[str, float] = {}
    for op, weight in table.items():
        if op not in PRIOR:
            continue  # an operator this version does not have
        if not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
            raise ConfigError(f"search prior {path}: weight of {op!r} is {weight!r}: {fix}")
        out[op] = float(weight)
    return {**PRIOR, **out}


def resolve(setting: str, home: Path) -> tuple[dict[str, float], str]:
    """The table a tier's ``prior`` setting names, and where it came from (for records)."""
    if setting == "fixed":
        return dict(PRIOR), "fixed"
    path = home / PRIOR_FILE if setting == "auto" else Path(setting).expanduser()
    if setting == "auto" and not path.is_file():
        return dict(PRIOR), "fixed"
    return load(path), str(path)
