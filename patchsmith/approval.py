"""The approval gate: changesets a business rule holds for review wait for a person.

With ``approval: required`` in the campaign, ``run_campaign`` ends by pausing its Prefect
flow run for input: one yes/no field per held changeset (its recipe, state, files and
size in the field's description), so a person approves in the Prefect UI (or
``resume_flow_run(id, run_input={...})``). The decisions are written into the changesets
(``review``: approved / rejected) and to ``approvals.json``; with ``publish:`` set, the
approved changesets and those no rule held are then published (``patchsmith/publish.py``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prefect.input import RunInput
from pydantic import Field, create_model

from patchsmith.config import Campaign
from patchsmith.domain import Changeset
from patchsmith.outputs import CHANGESETS, _atomic_write, _safe_name

POLL_S = 2

FIELD = re.compile(r"[^a-z0-9_]")


def field_name(instance_id: str) -> str:
    """The input field of one changeset (a Python identifier)."""
    return "approve_" + FIELD.sub("_", instance_id.lower())


def held(run_dir: Path) -> list[Changeset]:
    """Changesets of ``run_dir`` waiting for a person's decision."""
    folder = run_dir / CHANGESETS
    found = [Changeset.model_validate_json(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return [c for c in found if c.needs_review and c.review == "pending"]


def input_model(changesets: list[Changeset]) -> type[RunInput]:
    """A RunInput with one boolean per held changeset (default: not approved)."""
    fields: dict[str, Any] = {}
    for c in changesets:
        about = (
            f"{c.instance_id}: recipe {c.recipe}, {c.state}, {len(c.files)} file(s), "
            f"{c.lines} line(s) ({', '.join(c.files[:5])}); patch: {c.patch_file}"
        )
        fields[field_name(c.instance_id)] = (bool, Field(default=False, description=about))
    model: type[RunInput] = create_model("ChangesetApproval", __base__=RunInput, **fields)
    return model


def apply_decisions(run_dir: Path, changesets: list[Changeset], answer: RunInput) -> dict[str, str]:
    """Write each decision into its changeset and into ``approvals.json``."""
    decisions: dict[str, str] = {}
    for c in changesets:
        approved = bool(getattr(answer, field_name(c.instance_id), False))
        decisions[c.instance_id] = "approved" if approved else "rejected"
        updated = c.model_copy(update={"review": decisions[c.instance_id]})
        _atomic_write(
            run_dir / CHANGESETS / f"{_safe_name(c.instance_id)}.json",
            updated.model_dump_json(indent=2),
        )
    _atomic_write(run_dir / "approvals.json", json.dumps(decisions, indent=2, sort_keys=True))
    return decisions


def gate(campaign: Campaign, run_dir: Path) -> dict[str, Any]:
    """After a campaign: pause for the held changesets' approval (``approval: required``),
    then publish (``publish:``). Runs inside the ``run_campaign`` flow run."""
    from prefect.flow_runs import pause_flow_run

    from patchsmith.publish import publish

    out: dict[str, Any] = {}
    waiting = held(run_dir) if campaign.approval == "required" else []
    if waiting:
        model = input_model(waiting)
        answer = pause_flow_run(
            wait_for_input=model, timeout=campaign.approval_timeout_s, poll_interval=POLL_S
        )
        out["decisions"] = apply_decisions(run_dir, waiting, answer)
    if campaign.publish is not None and (run_dir / CHANGESETS).is_dir():
        results = publish(
            run_dir,
            branch=campaign.publish.branch,
            remote=campaign.publish.remote,
            partial=campaign.publish.partial,
        )
        out["published"] = {r.instance_id: r.note for r in results}
    return out
