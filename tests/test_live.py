"""Progress a person can read: the live table at 80 columns, plain lines without a terminal."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_stats_project, write_campaign
from rich.console import Console

from patchsmith.domain import Attempt, AttemptStatus, Outcome, OutcomeStatus
from patchsmith.live import LiveBoard, PlainLog

REPO = Path(__file__).resolve().parent.parent
IDS = ["scikit-learn__scikit-learn-25570", "django__django-11099", "calc-off-by-one"]


TIER = "small-quantized-llm-with-a-long-name"


def _attempt(iid: str, number: int, status: AttemptStatus) -> dict[str, object]:
    attempt = Attempt(instance_id=iid, number=number, tier=TIER, generator="llm",
                      candidate=None, report=None, critique=None, status=status,
                      started_at=0.0, duration_s=0.1)  # fmt: skip
    return {"instance_id": iid, "attempt": attempt}


def _feed(listener: LiveBoard | PlainLog) -> None:
    for iid in IDS:
        listener("instance_started", {"instance_id": iid})
    for n in range(1, 13):
        listener("attempt", _attempt(IDS[0], n, AttemptStatus.rejected))
    listener("attempt", _attempt(IDS[1], 1, AttemptStatus.accepted))
    why = "verified on a fresh workspace: " + "all 412 tests pass; " * 8
    done = Outcome(instance_id=IDS[1], status=OutcomeStatus.resolved, attempts=1, tier="search",
                   reasons=[why])  # fmt: skip
    listener("instance_done", {"outcome": done, "skipped": False})
    gave_up = Outcome(instance_id=IDS[2], status=OutcomeStatus.unresolved, attempts=0,
                      reasons=["no failing target tests: nothing to repair"])  # fmt: skip
    listener("instance_done", {"outcome": gave_up, "skipped": False})
    listener("instance_interrupted", {"instance_id": IDS[0]})


@pytest.mark.parametrize("width", [80, 60, 120])
def test_table_fits_the_terminal_with_status_and_attempts_on_every_row(width: int) -> None:
    board = LiveBoard(IDS)
    _feed(board)
    console = Console(width=width, record=True, force_terminal=True, color_system=None)
    console.print(board)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= width
    header = next(line for line in lines if "instance" in line)
    assert "status" in header and "attempts" in header
    # From 80 columns up the ids are whole; narrower, they are the last to be cut.
    shown = {iid: iid if width >= 80 else iid[:15] for iid in IDS}
    rows = {iid: next(line for line in lines if shown[iid] in line) for iid in IDS}
    assert "interrupted" in rows[IDS[0]] and " 12 " in rows[IDS[0]]
    assert "resolved" in rows[IDS[1]] and " 1 " in rows[IDS[1]]
    assert "unresolved" in rows[IDS[2]] and " 0 " in rows[IDS[2]]
    assert any("2/3 finished" in line for line in lines)


def test_plain_lines_one_per_event_and_every_nth_attempt() -> None:
    sink = io.StringIO()
    _feed(PlainLog(sink, every=5))
    lines = [line.split(" ", 1)[1] for line in sink.getvalue().splitlines()]  # drop the time
    assert lines[:3] == [f"{iid}: started" for iid in IDS]
    tier = TIER
    assert [line for line in lines if IDS[0] + ": attempt" in line] == [
        f"{IDS[0]}: attempt {n}: rejected ({tier})" for n in (1, 5, 10)
    ]
    assert lines[-3].startswith(f"{IDS[1]}: resolved after 1 attempt(s), search: verified")
    assert lines[-2] == f"{IDS[2]}: unresolved after 0 attempt(s): no failing target tests: " \
        "nothing to repair"  # fmt: skip
    assert lines[-1].startswith(f"{IDS[0]}: interrupted")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning")
def test_cli_without_a_terminal_prints_lines_not_a_table(tmp_path: Path) -> None:
    make_stats_project(tmp_path)
    campaign = write_campaign(tmp_path, name="plain")
    env = {"PATH": "/usr/bin:/bin", "PATCHSMITH_HOME": str(tmp_path / "home"), "COLUMNS": "80"}
    done = subprocess.run(
        [sys.executable, "-m", "patchsmith.cli", "run", str(campaign), "--out",
         str(tmp_path / "out with a long directory name" / "and more of it"), "--no-tracking"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert not any("┃" in line or "━" in line for line in lines), "no table without a terminal"
    for iid in ("stats-window", "stats-describe"):
        assert any(line.endswith(f"{iid}: started") for line in lines)
    assert any("stats-window: resolved after" in line for line in lines)
    assert any("stats-describe: unresolved after" in line for line in lines)
    summary = [line for line in lines if "resolved, 0 error(s)" in line]
    assert len(summary) == 1, "the summary is one line of its own"
    assert summary[0].startswith("1/2 resolved") and summary[0].endswith("summary.md)")
