"""Progress a person can read: a live table in a terminal, plain lines anywhere else.

Both are ``progress`` listeners (they run on the flow's threads, so they only take a lock
and update rows or write one line).

- ``LiveBoard`` is a rich renderable sized to the console on every refresh: instance,
  status and attempts always keep their width; tier and note get what is left and are
  cut with an ellipsis (at 80 columns, too).
- ``PlainLog`` writes one line per instance event, for logs, cron and Prefect workers:
  started; attempt 1 and every ``every``-th attempt with its verdict; resolved /
  unresolved / error with the reason; interrupted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import IO, Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {
    "resolved": "green",
    "unresolved": "yellow",
    "error": "red",
    "running": "cyan",
    "interrupted": "magenta",
}
FINISHED = ("resolved", "unresolved", "error")
STATUS_W = len("interrupted")
ATTEMPTS_W = len("attempts")
#: rich's cost of a boxed table: a border per column plus one, one space each side of a cell
_BORDERS, _PADDING = 1, 2


def _note(reasons: list[str]) -> str:
    return reasons[-1] if reasons else ""


class LiveBoard:
    """A live table of instances, fed by progress events from the flow's threads."""

    def __init__(self, instance_ids: list[str]) -> None:
        self.rows: dict[str, dict[str, Any]] = {
            i: {"status": "queued", "attempts": 0, "tier": "", "note": ""} for i in instance_ids
        }
        self.lock = threading.Lock()

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        with self.lock:
            if event == "instance_started":
                self.rows[data["instance_id"]].update(status="running", note="")
            elif event == "attempt":
                row = self.rows[data["instance_id"]]
                attempt = data["attempt"]
                row.update(attempts=attempt.number, tier=attempt.tier, note=attempt.status.value)
            elif event == "instance_done":
                o = data["outcome"]
                self.rows[o.instance_id].update(
                    status=o.status.value, attempts=o.attempts, tier=o.tier or "",
                    note=_note(o.reasons),
                )  # fmt: skip
            elif event == "instance_interrupted":
                self.rows[data["instance_id"]].update(
                    status="interrupted", note="run again to resume"
                )

    def finished(self) -> int:
        with self.lock:
            return sum(r["status"] in FINISHED for r in self.rows.values())

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.render(options.max_width)

    def render(self, width: int = 80) -> Table:
        """The table, at most ``width`` columns wide."""
        with self.lock:
            rows = [(iid, dict(row)) for iid, row in self.rows.items()]
        done = sum(r["status"] in FINISHED for _, r in rows)
        widths = _widths(width, [iid for iid, _ in rows], [r["tier"] for _, r in rows])
        table = Table(title="patchsmith campaign", expand=False, title_justify="left")
        for name, w in widths.items():
            table.add_column(
                name,
                justify="right" if name == "attempts" else "left",
                no_wrap=True,
                overflow="ellipsis",
                width=w,
            )
        for iid, row in rows:
            style = STATUS_STYLE.get(row["status"], "dim")
            cells = {
                "instance": Text(iid),
                "status": Text(row["status"], style=style),
                "attempts": Text(str(row["attempts"])),
                "tier": Text(row["tier"]),
                "note": Text(row["note"]),
            }
            table.add_row(*(cells[name] for name in widths))
        table.caption = f"{done}/{len(rows)} finished"
        return table


def _widths(total: int, ids: list[str], tiers: list[str]) -> dict[str, int]:
    """Column widths (in display order) that fit ``total``; tier and note give way first."""
    room = total - _BORDERS
    fixed = {"status": STATUS_W, "attempts": ATTEMPTS_W}
    room -= sum(w + _PADDING + _BORDERS for w in fixed.values())
    longest = max([len("instance"), *(len(i) for i in ids)])
    # the instance id keeps its width unless that leaves tier and note nothing at all
    instance = max(len("instance"), min(longest, room - _PADDING - _BORDERS - 12))
    instance = min(instance, max(room - _PADDING - _BORDERS, 4))
    room -= instance + _PADDING + _BORDERS
    out = {"instance": instance, **fixed}
    tier_w = min(max([len("tier"), *(len(t) for t in tiers)]), 20)
    tier = min(tier_w, max(room // 3 - _PADDING - _BORDERS, 0))
    if tier >= 3:
        out["tier"] = tier
        room -= tier + _PADDING + _BORDERS
    note = room - _PADDING - _BORDERS
    if note >= 3:
        out["note"] = min(note, 60)
    order = ("instance", "status", "tier", "attempts", "note")
    return {name: out[name] for name in order if name in out}


class PlainLog:
    """One plain line per instance event (no terminal: logs, cron, Prefect workers)."""

    def __init__(self, stream: IO[str], every: int = 10) -> None:
        self.stream = stream
        self.every = max(1, every)
        self.lock = threading.Lock()

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        for line in self._lines(event, data):
            stamp = time.strftime("%H:%M:%S")
            with self.lock:
                self.stream.write(f"{stamp} {line}\n")
                self.stream.flush()

    def _lines(self, event: str, data: dict[str, Any]) -> Iterator[str]:
        if event == "instance_started":
            yield f"{data['instance_id']}: started"
        elif event == "attempt":
            a = data["attempt"]
            if a.number == 1 or a.number % self.every == 0:
                kept = a.critique is not None and a.critique.progress
                status = "kept (progress)" if kept else a.status.value
                yield f"{a.instance_id}: attempt {a.number}: {status} ({a.tier})"
        elif event == "instance_done":
            o = data["outcome"]
            tier = f", {o.tier}" if o.tier else ""
            why = _note(o.reasons)
            yield (
                f"{o.instance_id}: {o.status.value} after {o.attempts} attempt(s){tier}"
                + (f": {why}" if why else "")
            )
        elif event == "instance_interrupted":
            yield (
                f"{data['instance_id']}: interrupted (its recorded attempts are kept; "
                "run again to resume)"
            )
