"""The search's operator prior: the fixed table, refit from recorded attempts by tune-search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from patchsmith.cli import app
from patchsmith.config import Campaign, SearchTier
from patchsmith.domain import (
    Attempt,
    AttemptStatus,
    Candidate,
    Instance,
    Intent,
    Plan,
    SuspiciousLine,
    TestReport,
)
from patchsmith.errors import ConfigError
from patchsmith.infra.store import Store
from patchsmith.tasks.generate import SearchGenerator
from patchsmith.tasks.search import prior
from patchsmith.tasks.search.operators import PRIOR

SOURCE = "def pick(a, b):\n    if a < b:\n        return a\n    return b\n"


def _attempt(number: int, operator: str, accepted: bool) -> Attempt:
    diff = f"--- a/m.py\n+++ b/m.py\n@@ -{number} +{number} @@\n-x\n+y{number}\n"
    status = AttemptStatus.accepted if accepted else AttemptStatus.rejected
    candidate = Candidate(
        candidate_id=Candidate.make_id(diff), generator="mutation", tier="search", diff=diff,
        operators=[operator],
    )  # fmt: skip
    return Attempt(
        instance_id="i", number=number, tier="search", generator="mutation",
        candidate=candidate, report=None, critique=None, status=status, started_at=0.0,
        duration_s=0.1,
    )  # fmt: skip


def test_fit_follows_the_record_and_keeps_untried_operators_in_order() -> None:
    counts = [
        prior.OperatorCount("name", tried=40, fixed=30),
        prior.OperatorCount("comparison", tried=400, fixed=2),
    ]
    table = prior.fit(counts)
    assert table["name"] == 1.0 > table["comparison"]
    assert table["range"] > table["break_continue"]  # untried: the fixed order stays
    assert min(table.values()) >= prior.FLOOR
    assert prior.fit([prior.OperatorCount("name", 10, 0)]) == PRIOR  # no fix: nothing to fit


def test_a_bad_table_is_refused_with_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"operators": {"name": -1}}))
    with pytest.raises(ConfigError, match=r"p\.json.*'name'.*tune-search"):
        prior.load(path)
    path.write_text(json.dumps({"operators": {"name": 0.5, "gone": 1.0}}))
    assert prior.load(path) == {**PRIOR, "name": 0.5}  # unknown operators are ignored
    path.write_text("{")
    with pytest.raises(ConfigError, match="cannot be read"):
        prior.load(path)


def test_tune_search_refits_from_the_store_and_the_search_uses_it(home: Path) -> None:
    instance = Instance(instance_id="i", repo="/nonexistent")
    campaign = Campaign(name="c", instances=[instance])
    store = Store.open(home=home)
    run_id = store.start_instance(
        store.start_campaign(campaign, config={}), instance, campaign.instance_key(instance)
    )
    attempts = [("name", n < 9) for n in range(12)] + [("comparison", False)] * 60
    for number, (operator, accepted) in enumerate(attempts, 1):
        store.record_attempt(run_id, _attempt(number, operator, accepted))
    store.close()

    result = CliRunner().invoke(app, ["tune-search"])
    assert result.exit_code == 0, result.output
    saved = json.loads((home / prior.PRIOR_FILE).read_text())
    assert saved["counts"]["name"] == {"tried": 12, "fixed": 9}
    assert saved["operators"]["name"] > saved["operators"]["comparison"]

    root = home / "repo"
    root.mkdir()
    (root / "m.py").write_text(SOURCE)
    plan = Plan(
        instance_id="i", intent=Intent.bugfix, fail_to_pass=["t"], pass_to_pass=[],
        suspicious=[SuspiciousLine(path="m.py", line=2, score=1.0)], baseline=TestReport(),
        tier="search",
    )  # fmt: skip
    tuned = SearchGenerator(SearchTier()).propose(instance, plan, root, set(), [], 3)
    assert tuned[0].operators == ["name"]  # the refit table puts name swaps first
    fixed = SearchGenerator(SearchTier(prior="fixed")).propose(instance, plan, root, set(), [], 3)
    assert fixed[0].operators == ["comparison"]
    scope = SearchGenerator(SearchTier()).scope(plan, root, exhausted=True)
    assert scope is not None and scope.endswith(f"(operator prior: {home / prior.PRIOR_FILE})")
