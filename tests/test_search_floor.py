"""Tier 0's floor: widening past the first-ranked lines and give-up reasons that are true."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from sqlalchemy import text

from patchsmith.config import load_campaign
from patchsmith.domain import (
    GiveUp,
    Intent,
    Outcome,
    OutcomeStatus,
    Plan,
    SuspiciousLine,
    TestReport,
)
from patchsmith.infra.tracking_metrics import InstanceRecord, summarize
from patchsmith.outputs import OutputWriter
from patchsmith.report_types import Report
from patchsmith.tasks.campaign import open_session, run_instance
from patchsmith.tasks.edits.diff import apply_diff
from patchsmith.tasks.repair import DIRECT
from patchsmith.tasks.search.mutation import MutationSearch

# The failing assertion calls total(); the bug is in its helper's helper, scale(), which
# no traceback names and only coverage says ran.
SOURCE = (
    "def scale(x):\n"  # 1
    "    return x * 3\n"  # 2: the bug (should be x * 2)
    "\n\n"
    "def double_all(xs):\n"  # 5
    "    return [scale(x) for x in xs]\n"  # 6
    "\n\n"
    "def total(xs):\n"  # 9
    "    out = 0\n"  # 10
    "    for x in double_all(xs):\n"  # 11
    "        out += x\n"  # 12
    "    return out\n"  # 13
)
FIXED = SOURCE.replace("x * 3", "x * 2")


def _plan(executed: dict[str, list[int]]) -> Plan:
    return Plan(
        instance_id="i", intent=Intent.bugfix, fail_to_pass=["t"], pass_to_pass=[],
        suspicious=[SuspiciousLine(path="m.py", line=n, score=0.9) for n in (10, 12, 13)],
        baseline=TestReport(), tier="search", executed=executed,
    )  # fmt: skip


def _fixes(root: Path, diff: str) -> bool:
    work = root.parent / f"work-{abs(hash(diff))}"
    work.mkdir(exist_ok=True)
    (work / "m.py").write_text(SOURCE)
    apply_diff(work, diff)
    return (work / "m.py").read_text() == FIXED


def test_widening_finds_a_bug_outside_the_first_ranked_lines(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "m.py").write_text(SOURCE)
    plan = _plan({"m.py": [2, 6, 10, 11, 12, 13]})
    search = MutationSearch(top_lines=3, max_order=1)
    stream = search.propose(root, plan, set(), n=10_000)
    census = search.census(root, plan)
    fixing = [i for i, c in enumerate(stream) if _fixes(tmp_path, c.diff)]
    assert fixing, "the whole executed scope must hold the fix"
    top, functions = census.stages[0][2], census.stages[1][2]
    assert fixing[0] >= top + functions  # found by the 'executed lines' stage
    # without widening the search ends with the fix untried
    narrow = MutationSearch(top_lines=3, max_order=1, widen=False).propose(
        root, plan, set(), 10_000
    )
    assert len(narrow) == top and not any(_fixes(tmp_path, c.diff) for c in narrow)
    # with no coverage at all, the files stage still reaches it
    blind = MutationSearch(top_lines=3, max_order=1).propose(root, _plan({}), set(), n=10_000)
    assert any(_fixes(tmp_path, c.diff) for c in blind)


def _script_campaign(tmp_path: Path, attempts: int) -> Path:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "main.py").write_text(
        "def greet(name):\n    return 'Hello, ' + name + '!'\n\n\n"
        "def shout(name):\n    return greet(name).upper()\n"
    )
    (project / "test.py").write_text(
        "from main import shout\n\n\ndef check():\n    assert shout('ann') == 'HI, ANN'\n\n\n"
        "check()\n"
    )
    raw = {
        "name": "floor",
        "instances": [{"id": "greet", "repo": str(project), "test_cmd": "python test.py"}],
        "sandbox": {"timeout_s": 30},
        "budget": {"max_attempts": attempts, "max_wall_s": 300},
    }
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_an_exhausted_search_says_its_scope_everywhere(home: Path, tmp_path: Path) -> None:
    campaign = load_campaign(_script_campaign(tmp_path, attempts=10_000))
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, campaign.instances[0], DIRECT)
    assert outcome.status == OutcomeStatus.unresolved and outcome.give_up == GiveUp.exhausted
    last = outcome.reasons[-1]
    assert "every tier exhausted its candidates: exhausted " in last
    singles = int(last.split("exhausted ")[2].split(" single")[0])
    assert "single mutations over 6 lines of main.py (" in last
    pairs = int(last.split(" and ")[-1].split(" pairs")[0]) if " pairs on its top" in last else 0
    # every candidate of the scope was tried (a pair that does not parse is skipped)
    assert singles <= outcome.attempts <= singles + pairs and pairs > 0
    with session.store.engine.connect() as db:
        assert db.execute(text("SELECT give_up FROM outcomes")).scalar_one() == "exhausted"
    line = OutputWriter(tmp_path / "written").add(outcome)
    row = json.loads((tmp_path / "written" / "outcomes.jsonl").read_text())
    assert line.give_up == GiveUp.exhausted and row["give_up"] == "exhausted"


def test_a_search_out_of_budget_says_how_much_of_its_scope_it_tried(
    home: Path, tmp_path: Path
) -> None:
    campaign = load_campaign(_script_campaign(tmp_path, attempts=5))
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, campaign.instances[0], DIRECT)
    assert outcome.give_up == GiveUp.budget and outcome.attempts == 5
    assert "attempt budget spent (5/5): search tried 5 of " in outcome.reasons[-1]
    assert re.search(r"tried 5 of \d+ candidates \(\d+%\) in its scope", outcome.reasons[-1])
    assert "lines of main.py" in outcome.reasons[-1] and "up to stage '" in outcome.reasons[-1]


def test_report_groups_unresolved_instances_by_reason() -> None:
    def record(resolved: bool, give_up: str | None) -> InstanceRecord:
        tags = {"patchsmith.give_up": give_up} if give_up else {}
        return InstanceRecord.from_run("r", {"resolved": float(resolved)}, tags, {})

    summary = summarize(
        [record(True, None), record(False, "budget"), record(False, "budget"),
         record(False, "exhausted"), record(False, None)]
    )  # fmt: skip
    assert summary.unresolved == {"budget": 2, "exhausted": 1, "unknown": 1}
    report = Report("e", None, [], summary.unresolved)
    assert report.unresolved_text() == "unresolved by reason: budget 2, exhausted 1, unknown 1"
    assert Outcome(instance_id="x", status=OutcomeStatus.unresolved).give_up is None
