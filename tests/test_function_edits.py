"""Whole-function edits: a reply's functions replace their namesakes in the files shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchsmith.domain import Instance, Intent, Plan, SuspiciousLine, TestOutcome, TestReport
from patchsmith.errors import ApplyError, MalformedEdit
from patchsmith.tasks.edits.diff import apply_diff
from patchsmith.tasks.edits.functions import cut_off, functions_to_diff
from patchsmith.tasks.llm.context import function_context, steady

SOURCE = '''"""Dates."""
from datetime import date


def add_months(day, months):
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, day.day)


class Agenda:
    @property
    def size(self):
        return 0

    def free(self, window):
        return []
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "sched").mkdir()
    (tmp_path / "sched" / "dates.py").write_text(SOURCE)
    (tmp_path / "sched" / "other.py").write_text("def helper():\n    return 1\n")
    return tmp_path


def _applied(root: Path, diff: str) -> str:
    apply_diff(root, diff)
    return (root / "sched" / "dates.py").read_text()


def test_a_function_and_its_new_import_go_in_place(project: Path) -> None:
    reply = """Here is the fix:

```python
import calendar

def add_months(day, months):
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(day.day, last))
```
"""
    diff = functions_to_diff(project, reply, ["sched/other.py", "sched/dates.py"])
    text = _applied(project, diff)
    assert "from datetime import date\nimport calendar\n" in text
    assert "    return date(year, month, min(day.day, last))\n" in text
    assert text.count("def add_months") == 1 and "class Agenda:" in text  # the rest untouched


def test_imports_the_file_already_has_or_star_imports_are_not_added(project: Path) -> None:
    reply = "```python\nfrom datetime import date\nfrom typing import *\n" + FIXED + "```"
    text = _applied(project, functions_to_diff(project, reply, ["sched/dates.py"]))
    assert "min(day.day, 28)" in text and text.count("import") == 1


def test_a_method_written_as_a_function_is_reindented_and_keeps_its_decorators(
    project: Path,
) -> None:
    reply = "```python\n@property\ndef size(self):\n    return 2\n```"
    text = _applied(project, functions_to_diff(project, reply, ["sched/dates.py"]))
    assert "    @property\n    def size(self):\n        return 2\n\n    def free" in text
    assert text.count("@property") == 1


def test_replies_that_cannot_be_placed_are_refused_with_the_reason(project: Path) -> None:
    shown = ["sched/dates.py", "sched/other.py"]
    with pytest.raises(ApplyError, match="'nowhere' is in none of the files shown"):
        functions_to_diff(project, "def nowhere():\n    pass\n", shown)
    (project / "sched" / "other.py").write_text("def free(x):\n    return x\n")
    with pytest.raises(ApplyError, match="'free' is defined 2 times"):
        functions_to_diff(project, "def free(self, w):\n    return [w]\n", shown)
    with pytest.raises(MalformedEdit, match="not Python"):
        functions_to_diff(project, "```python\ndef add_months(:\n```", shown)
    with pytest.raises(MalformedEdit, match="no function definition"):
        functions_to_diff(project, "x = 1\n", shown)
    with pytest.raises(MalformedEdit, match="changes nothing"):
        functions_to_diff(project, "def free(x):\n    return x\n", ["sched/other.py"])


FIXED = """def add_months(day, months):
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, 28))
"""


def test_a_reply_cut_off_by_the_token_limit_keeps_its_complete_functions(project: Path) -> None:
    # Qwen 1.5B wrote the fix, then went on rewriting the next function until the limit.
    reply = "```python\n" + FIXED + "\nclass Agenda:\n    def free(self, window):\n        return ["
    assert cut_off(reply, "length") and not cut_off(reply + "]\n```\n", "length")
    assert not cut_off(reply, "stop")
    text = _applied(project, functions_to_diff(project, reply, ["sched/dates.py"], truncated=True))
    assert "min(day.day, 28)" in text and "    def free(self, window):\n        return []\n" in text
    # Cut off inside a line that still parses: the unfinished last function is not used.
    (project / "sched" / "dates.py").write_text(SOURCE)
    partial = "```python\n" + FIXED + "\ndef free(self, window):\n    return\n"
    text = _applied(
        project, functions_to_diff(project, partial, ["sched/dates.py"], truncated=True)
    )
    assert "        return []\n" in text
    with pytest.raises(MalformedEdit, match="cut off before its first function ended"):
        functions_to_diff(project, "```python\n" + FIXED[:80], ["sched/dates.py"], truncated=True)


def test_a_function_with_no_namesake_is_skipped_when_others_apply(project: Path) -> None:
    # The model rewrote a dataclass as a class with an __init__ the file does not have.
    reply = "```python\nclass Agenda:\n    def __init__(self):\n        pass\n\n" + (
        "    def free(self, window):\n        return [window]\n```"
    )
    text = _applied(project, functions_to_diff(project, reply, ["sched/dates.py"]))
    assert "        return [window]\n" in text and "__init__" not in text


def _plan(*lines: tuple[str, int, float], log: str = "E   ValueError: day is out of range") -> Plan:
    return Plan(
        instance_id="dates",
        intent=Intent.bugfix,
        fail_to_pass=["tests/test_dates.py::test_end_of_month"],
        pass_to_pass=[],
        suspicious=[
            SuspiciousLine(path=p, line=n, score=sc, sources=["ochiai"]) for p, n, sc in lines
        ],
        baseline=TestReport(
            outcomes={"tests/test_dates.py::test_end_of_month": TestOutcome.failed}, log_tail=log
        ),
        tier="llm",
    )


def test_the_function_context_shows_the_suspicious_functions_whole_and_the_failure(
    project: Path,
) -> None:
    inst = Instance(instance_id="dates", repo=str(project), instruction="fix", scope=["sched/**"])
    plan = _plan(
        ("sched/dates.py", 17, 0.4),
        ("sched/dates.py", 7, 0.9),
        ("sched/dates.py", 6, 0.8),
        ("tests/test_dates.py", 3, 1.0),  # out of scope: never shown
    )
    text = function_context(inst, plan, project, 400)
    assert "ValueError: day is out of range" in text
    first, second = text.index("def add_months"), text.index("def free")
    assert first < second, "the most suspicious function comes first"
    assert text.count("def add_months") == 1, "one function, however many of its lines"
    assert "return date(year, month, day.day)" in text and "def size" not in text
    assert "test_dates" not in text.split("```", 2)[2]
    # A small budget keeps the best function whole and drops the rest and the log.
    small = function_context(inst, plan, project, 30)
    assert "return date(year, month, day.day)" in small and "def free" not in small


def _run_log(workspace: str, seconds: str, address: str) -> str:
    return (
        f"{workspace}/sched/dates.py:7: in add_months\n"
        "    return date(year, month, day.day)\n"
        f"E   ValueError: day is out of range for month (<Agenda object at {address}>)\n"
        f"FAILED tests/test_dates.py::test_end_of_month - ValueError\n"
        f"1 failed, 3 passed in {seconds}s\n"
        f"Ran 4 tests in {seconds}s"
    )


def test_two_runs_of_the_same_failure_give_the_same_prompt(project: Path) -> None:
    """What differs between runs (the attempt's directory, timings, object addresses) is
    not shown: a greedy model must get the same prompt for the same instance every run."""
    inst = Instance(instance_id="dates", repo=str(project), instruction="fix", scope=["sched/**"])
    runs = [
        ("/srv/ps/workspaces/attempts/311-0123456789abcdef/merged", "0.05", "0x7f3a1c2b9d10"),
        ("/tmp/h/workspaces/attempts/97-fedcba9876543210/merged", "1.27", "0x7f00aa11bb22"),
    ]
    texts = [
        function_context(inst, _plan(("sched/dates.py", 7, 0.9), log=_run_log(*r)), project, 400)
        for r in runs
    ]
    assert texts[0] == texts[1]
    assert "sched/dates.py:7: in add_months" in texts[0], "paths stay, relative"
    assert "merged" not in texts[0] and "0.05" not in texts[0] and "0x7f" not in texts[0]
    assert "1 failed, 3 passed" in texts[0] and "Ran 4 tests" in texts[0]
    # A pristine tree's path goes too; a folder of the repository's own named so stays.
    pristine = "/srv/ps/workspaces/pristine/0123456789abcdef0123/src/pristine/db.py:3"
    assert steady(pristine) == "src/pristine/db.py:3"
