"""The repair pipeline end to end, with the real sandbox, store and workspaces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import make_stats_project, patch_passes_tests, write_campaign

from patchsmith.config import load_campaign
from patchsmith.domain import AttemptStatus, OutcomeStatus
from patchsmith.flows.common import campaign_yaml
from patchsmith.progress import subscribe
from patchsmith.tasks.campaign import close_session, open_session, run_instance, work_key
from patchsmith.tasks.repair import DIRECT

pytestmark = pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_stats_project(tmp_path)


def snapshot(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def test_direct_repair_resolves_records_and_leaves_the_source_alone(
    home: Path, project: Path, tmp_path: Path
) -> None:
    before = snapshot(project)
    campaign = load_campaign(write_campaign(tmp_path))
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=False)
    events: list[str] = []
    unsubscribe = subscribe(lambda event, data: events.append(event))
    try:
        fixable, unfixable = campaign.instances
        won = run_instance(session, fixable, DIRECT)
        lost = run_instance(session, unfixable, DIRECT)
    finally:
        unsubscribe()
    outcomes, status = close_session(session, campaign_yaml(campaign))

    assert won.status == OutcomeStatus.resolved, won.reasons
    assert won.tier == "search" and won.patch
    assert "range(len(values) - size + 1)" in won.patch
    assert patch_passes_tests(project, won.patch, "tests/test_windows.py", tmp_path)

    assert lost.status == OutcomeStatus.unresolved
    assert lost.attempts == campaign.budget.max_attempts
    assert any("budget" in r or "exhausted" in r for r in lost.reasons)

    # Every attempt is in the store, numbered 1..n without gaps, none accepted for the loser.
    for inst, outcome in ((fixable, won), (unfixable, lost)):
        attempts = session.store.attempts_for_key(work_key(session, inst))
        assert [a.number for a in attempts] == list(range(1, outcome.attempts + 1))
        assert all(
            a.report is not None or a.status == AttemptStatus.malformed_edit for a in attempts
        )
    lost_attempts = session.store.attempts_for_key(work_key(session, unfixable))
    assert not any(a.status == AttemptStatus.accepted for a in lost_attempts)

    rows = [json.loads(x) for x in (tmp_path / "out" / "outcomes.jsonl").read_text().splitlines()]
    assert {r["instance_id"]: r["status"] for r in rows} == {
        "stats-window": "resolved",
        "stats-describe": "unresolved",
    }
    assert (tmp_path / "out" / "patches" / "stats-window.diff").read_text() == won.patch
    assert status == "completed" and len(outcomes) == 2
    assert events.count("instance_done") == 2 and "attempt" in events
    assert snapshot(project) == before, "the source repository must never be modified"


def test_rerun_reuses_stored_outcomes_and_redo_repeats(
    home: Path, project: Path, tmp_path: Path
) -> None:
    campaign = load_campaign(write_campaign(tmp_path))
    fixable = campaign.instances[0]
    first = open_session(campaign, home=home, out_dir=tmp_path / "o1", tracking=False)
    done = run_instance(first, fixable, DIRECT)
    first.store.close()

    again = open_session(campaign, home=home, out_dir=tmp_path / "o2", tracking=False)
    reused = run_instance(again, fixable, DIRECT)
    assert reused.status == done.status and reused.patch == done.patch
    assert "reused the stored outcome" in reused.reasons[-1]
    assert len(again.store.instance_runs(again.campaign_id)) == 0
    again.store.close()

    redo = open_session(campaign, home=home, out_dir=tmp_path / "o3", tracking=False, redo=True)
    fresh = run_instance(redo, fixable, DIRECT)
    assert fresh.status == OutcomeStatus.resolved
    assert len(redo.store.instance_runs(redo.campaign_id)) == 1


def test_instance_without_failing_tests_is_unresolved_with_reason(
    home: Path, project: Path, tmp_path: Path
) -> None:
    (project / "stats.py").write_text(
        (project / "stats.py").read_text().replace("len(values) - size)", "len(values) - size + 1)")
    )
    campaign = load_campaign(write_campaign(tmp_path))
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, campaign.instances[0], DIRECT)
    assert outcome.status == OutcomeStatus.unresolved
    assert outcome.attempts == 0
    assert "nothing to repair" in outcome.reasons[-1]


def test_editing_the_source_invalidates_cached_copies_and_stored_outcomes(
    home: Path, project: Path, tmp_path: Path
) -> None:
    campaign = load_campaign(write_campaign(tmp_path))
    fixable = campaign.instances[0]
    first = open_session(campaign, home=home, out_dir=tmp_path / "o1", tracking=False)
    assert run_instance(first, fixable, DIRECT).status == OutcomeStatus.resolved
    key_before = work_key(first, fixable)
    # Someone fixes the bug upstream (a pull, an edit): the stored outcome no longer applies.
    source = project / "stats.py"
    source.write_text(source.read_text().replace("len(values) - size)", "len(values) - size + 1)"))
    again = open_session(campaign, home=home, out_dir=tmp_path / "o2", tracking=False)
    assert work_key(again, fixable) != key_before
    fresh = run_instance(again, fixable, DIRECT)
    assert fresh.status == OutcomeStatus.unresolved
    assert "nothing to repair" in fresh.reasons[-1], "the edited source was tested, not a cache"


def test_a_baseline_without_any_test_outcome_is_an_error_that_names_the_fix(
    home: Path, project: Path, tmp_path: Path
) -> None:
    # pytest exits 4 (usage error) before running a single test: not "nothing to repair".
    path = write_campaign(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["instances"] = [
        {**raw["instances"][0], "test_cmd": "python -m pytest -q --no-such-option tests/"}
    ]
    path.write_text(yaml.safe_dump(raw))
    campaign = load_campaign(path)
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, campaign.instances[0], DIRECT)
    assert outcome.status == OutcomeStatus.error
    assert outcome.attempts == 0
    assert "reported no test outcome (exit 4" in outcome.reasons[-1]
    assert "fix the test_cmd" in outcome.reasons[-1]
