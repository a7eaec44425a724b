"""Campaign outputs: outcomes.jsonl, predictions.jsonl (SWE-bench), patches/, summary.md.

Files are rewritten atomically (temp file + rename) after every finished instance, so a
crash never leaves a half-written line and a resumed campaign never duplicates one.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from patchsmith.domain import Changeset, Instance, Outcome, OutcomeStatus

CHANGESETS = "changesets"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _safe_name(instance_id: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in instance_id)


class OutputWriter:
    """Collects outcomes of one campaign and keeps the output directory in step."""

    def __init__(
        self, out_dir: Path, model_name: str = "patchsmith", *, keep_existing: bool = False
    ) -> None:
        """``keep_existing`` keeps the outcomes already in ``out_dir`` (one-instance runs
        update a campaign's outputs instead of replacing them)."""
        self.dir = out_dir
        self.model_name = model_name
        self._outcomes: dict[str, Outcome] = read_outcomes(out_dir) if keep_existing else {}
        self._lock = threading.Lock()
        (out_dir / "patches").mkdir(parents=True, exist_ok=True)
        (out_dir / CHANGESETS).mkdir(exist_ok=True)

    def add(self, outcome: Outcome, instance: Instance | None = None) -> Outcome:
        """Record an outcome (writing its patch file) and rewrite the JSONL files; a
        refactoring's verified patch also gets its changeset (``changesets/ID.json``)."""
        if outcome.patch:
            rel = f"patches/{_safe_name(outcome.instance_id)}.diff"
            _atomic_write(self.dir / rel, outcome.patch)
            outcome = outcome.model_copy(update={"patch_file": rel})
            if outcome.goal is not None and instance is not None:
                changeset = Changeset.of(instance, outcome)
                _atomic_write(
                    self.dir / CHANGESETS / f"{_safe_name(outcome.instance_id)}.json",
                    changeset.model_dump_json(indent=2),
                )
        with self._lock:
            self._outcomes[outcome.instance_id] = outcome
            ordered = list(self._outcomes.values())
            _atomic_write(self.dir / "outcomes.jsonl", "".join(_outcome_line(o) for o in ordered))
            _atomic_write(
                self.dir / "predictions.jsonl",
                "".join(self._prediction_line(o) for o in ordered),
            )
        return outcome

    def _prediction_line(self, o: Outcome) -> str:
        row = {
            "instance_id": o.instance_id,
            "model_name_or_path": o.model_name_or_path or self.model_name,
            "model_patch": o.patch or "",
        }
        return json.dumps(row) + "\n"

    def outcomes(self) -> list[Outcome]:
        with self._lock:
            return list(self._outcomes.values())

    def write_summary(self, name: str) -> str:
        """Write summary.md and return its Markdown."""
        md = summary_markdown(name, self.outcomes())
        _atomic_write(self.dir / "summary.md", md)
        return md


def read_outcomes(out_dir: Path) -> dict[str, Outcome]:
    """Outcomes written earlier to ``out_dir`` (with their patches), by instance id."""
    path = out_dir / "outcomes.jsonl"
    if not path.is_file():
        return {}
    found: dict[str, Outcome] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        patch_file = row.get("patch_file")
        patch = (out_dir / patch_file).read_text() if patch_file else None
        found[row["instance_id"]] = Outcome(**row, patch=patch)
    return found


def _outcome_line(o: Outcome) -> str:
    row = {
        "instance_id": o.instance_id,
        "status": o.status.value,
        "attempts": o.attempts,
        "tier": o.tier,
        "duration_s": o.duration_s,
        "patch_file": o.patch_file,
        "give_up": o.give_up.value if o.give_up else None,
        "reasons": o.reasons,
    }
    return json.dumps(row) + "\n"


def summary_rows(outcomes: Iterable[Outcome]) -> list[dict[str, object]]:
    """One row per instance, for tables (terminal, Markdown, Prefect artifact)."""
    return [
        {
            "instance": o.instance_id,
            "status": o.status.value
            + (f" ({o.give_up.value})" if o.give_up else "")
            + (" (needs review)" if o.needs_review else ""),
            "tier": o.tier or "-",
            "attempts": o.attempts,
            "seconds": round(o.duration_s, 1),
            "note": (o.reasons[-1] if o.reasons else "")[:80],
        }
        for o in sorted(outcomes, key=lambda o: o.instance_id)
    ]


def summary_markdown(name: str, outcomes: list[Outcome]) -> str:
    """A Markdown summary: totals, then a table of instances."""
    counts = Counter(o.status.value for o in outcomes)
    total = len(outcomes)
    resolved = counts.get(OutcomeStatus.resolved.value, 0)
    lines = [
        f"# Campaign `{name}`",
        "",
        f"**{resolved}/{total} resolved**, {counts.get('unresolved', 0)} unresolved, "
        f"{counts.get('error', 0)} error(s); "
        f"{sum(o.attempts for o in outcomes)} attempts in all.",
        "",
        "| instance | status | tier | attempts | seconds | note |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for row in summary_rows(outcomes):
        note = str(row["note"]).replace("|", "\\|")
        lines.append(
            f"| {row['instance']} | {row['status']} | {row['tier']} | {row['attempts']} "
            f"| {row['seconds']} | {note} |"
        )
    return "\n".join(lines) + "\n"
