"""Output files: one line per instance, rewritten atomically, never duplicated."""

from __future__ import annotations

import json
from pathlib import Path

from patchsmith.domain import Outcome, OutcomeStatus
from patchsmith.outputs import OutputWriter


def test_outcomes_predictions_and_patches(tmp_path: Path) -> None:
    writer = OutputWriter(tmp_path)
    resolved = Outcome(
        instance_id="a/b#1",
        status=OutcomeStatus.resolved,
        attempts=3,
        tier="search",
        patch="diff --git a/x b/x\n",
        reasons=["fixed"],
    )
    writer.add(resolved)
    writer.add(Outcome(instance_id="c", status=OutcomeStatus.unresolved, attempts=9))
    writer.add(Outcome(instance_id="c", status=OutcomeStatus.unresolved, attempts=10))
    lines = [json.loads(x) for x in (tmp_path / "outcomes.jsonl").read_text().splitlines()]
    assert [row["instance_id"] for row in lines] == ["a/b#1", "c"]
    assert lines[1]["attempts"] == 10
    assert lines[0]["patch_file"] == "patches/a_b_1.diff"
    assert (tmp_path / lines[0]["patch_file"]).read_text() == "diff --git a/x b/x\n"
    preds = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert preds[0] == {
        "instance_id": "a/b#1",
        "model_name_or_path": "patchsmith",
        "model_patch": "diff --git a/x b/x\n",
    }
    assert preds[1]["model_patch"] == ""
    md = writer.write_summary("demo")
    assert "**1/2 resolved**" in md
    assert (tmp_path / "summary.md").read_text() == md
    assert not list(tmp_path.glob(".*.tmp"))


def test_keep_existing_updates_instead_of_replacing(tmp_path: Path) -> None:
    first = OutputWriter(tmp_path)
    first.add(Outcome(instance_id="a", status=OutcomeStatus.resolved, attempts=2, patch="P\n"))
    first.add(Outcome(instance_id="b", status=OutcomeStatus.unresolved, attempts=5))
    again = OutputWriter(tmp_path, keep_existing=True)
    again.add(Outcome(instance_id="b", status=OutcomeStatus.resolved, attempts=1, patch="Q\n"))
    rows = [json.loads(x) for x in (tmp_path / "outcomes.jsonl").read_text().splitlines()]
    assert [(r["instance_id"], r["status"]) for r in rows] == [("a", "resolved"), ("b", "resolved")]
    preds = {
        p["instance_id"]: p["model_patch"]
        for p in map(json.loads, (tmp_path / "predictions.jsonl").read_text().splitlines())
    }
    assert preds == {"a": "P\n", "b": "Q\n"}
    fresh = OutputWriter(tmp_path)
    assert fresh.outcomes() == []
