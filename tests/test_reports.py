"""Reports over experiments written by MlflowTracker itself (real sqlite MLflow store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from tracking_sim import Step, run_fake_instance

from patchsmith.config import Campaign
from patchsmith.domain import AttemptStatus, Instance, config_hash
from patchsmith.errors import ConfigError
from patchsmith.infra.tracking import Prices
from patchsmith.reports import campaign_report, compare, render_table, to_markdown

# MLflow warns (UserWarning, coloured text) when it imports mlflow.pyfunc lazily while
# starting the first span; with warnings as errors, that span would silently be dropped.
pytestmark = pytest.mark.filterwarnings(r"ignore:.*Any type hint is inferred:UserWarning")

A, R, M = AttemptStatus.accepted, AttemptStatus.rejected, AttemptStatus.malformed_edit
LLM = {
    "model": "qwen2.5-coder-1.5b",
    "adapters": [{"name": "fix-lora", "version": "3", "sha256": "ab" * 32}],
    "quantization": {"method": "bnb-4bit", "bits": 4, "quant_type": "nf4"},
}
LLM_STEP: dict[str, Any] = {
    "tier": "llm",
    "generator": "hf",
    "model": LLM,
    "prices": Prices(per_gpu_hour=2.0),
    "gpu_seconds": 360.0,  # $0.20 per attempt
    "tokens_in": 800,
    "tokens_out": 120,
    "cpu_seconds": 50.0,
}
PLANS = {
    "cmp-search": [
        [Step(status=R), Step(status=A)],
        [Step(status=A)],
        [Step(status=R), Step(status=R, regressions=1), Step(status=R)],
        [Step(status=R), Step(status=R), Step(status=A)],
    ],
    "cmp-llm": [
        [Step(status=R), Step(**LLM_STEP, status=A)],
        [Step(status=A)],
        [Step(status=R), Step(**LLM_STEP, status=M), Step(**LLM_STEP, status=R)],
    ],
}
LLM_LABEL = "qwen2.5-coder-1.5b+fix-lora@3 bnb-4bit nf4"


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The session's sqlite store (shared with test_tracking: migrating costs seconds)."""
    root = tmp_path_factory.getbasetemp() / "mlflow-shared"
    root.mkdir(exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


@pytest.fixture(scope="module")
def experiments(mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two campaigns run through MlflowTracker; returns the tracking URI."""
    from patchsmith.infra.tracking_mlflow import MlflowTracker

    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    mp.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    repo = tmp_path_factory.mktemp("repo")
    tracker = MlflowTracker(mlflow_uri)
    for name, plans in PLANS.items():
        instances = [Instance(instance_id=f"{name}-{k}", repo=str(repo)) for k in range(len(plans))]
        campaign = Campaign(name=name, instances=instances)
        cid = tracker.start_campaign(campaign, config_hash=config_hash(campaign), flow_run_id=None)
        outcomes = [
            run_fake_instance(tracker, cid, i, p)[1] for i, p in zip(instances, plans, strict=True)
        ]
        tracker.end_campaign(cid, outcomes, config_yaml=f"name: {name}\n")
    assert not tracker.failed
    mp.undo()
    return mlflow_uri


def test_report_numbers_overall_per_tier_and_per_config(experiments: str) -> None:
    report = campaign_report(experiments, "cmp-llm")
    o = report.overall
    assert (o.instances, o.resolved, o.attempts) == (3, 2, 6)
    assert o.resolved_rate == pytest.approx(2 / 3)
    assert o.patch_correctness_rate == 1.0
    assert o.well_formed_edit_rate == pytest.approx(5 / 6)
    assert o.regressions_per_1000_changes == 0.0
    assert o.cost_per_success_usd == pytest.approx(0.3)  # 3 LLM attempts x $0.20 / 2
    assert o.gpu_hours_per_success == pytest.approx(0.15)
    assert o.mean_attempts_to_success == pytest.approx(1.5)
    assert o.tokens_per_success == pytest.approx(3 * 920 / 2)
    assert o.cpu_seconds_per_success == pytest.approx(75.0)  # 3 LLM attempts x 50 s / 2
    tiers = {r.name: r.stats for r in report.rows if r.scope == "tier"}
    assert {t: (s.attempts, s.resolved) for t, s in tiers.items()} == {
        "search": (3, 1),
        "llm": (3, 1),
    }
    configs = {r.name: r.stats for r in report.rows if r.scope == "config"}
    assert set(configs) == {"search/mutation", LLM_LABEL}
    assert configs[LLM_LABEL].well_formed_edit_rate == pytest.approx(2 / 3)
    assert configs[LLM_LABEL].cost_per_success_usd == pytest.approx(0.6)
    assert configs["search/mutation"].cost_per_success_usd == 0.0
    assert configs[LLM_LABEL].cpu_seconds_per_success == pytest.approx(150.0)
    assert tiers["llm"].tokens_per_success == pytest.approx(3 * 920)

    search = campaign_report(experiments, "cmp-search").overall
    assert (search.instances, search.resolved, search.attempts) == (4, 3, 9)
    assert search.regressions_per_1000_changes == pytest.approx(1000 / 9)
    assert search.mean_attempts_to_success == pytest.approx(2.0)


def test_table_and_markdown(experiments: str) -> None:
    report = campaign_report(experiments, "cmp-llm")
    console = Console(record=True, width=320)
    console.print(render_table(report))
    text = console.export_text()
    assert "search/mutation" in text and LLM_LABEL in text and "66.7%" in text
    md = to_markdown(report)
    assert md.startswith("## patchsmith report — cmp-llm")
    assert "| config | search/mutation |" in md and "| $0.3 |" in md
    assert "model CPU-s / success" in md and "| 75.0 |" in md


def test_compare_writes_markdown_and_png(experiments: str, tmp_path: Path) -> None:
    md, chart = compare(experiments, ["cmp-search", "cmp-llm"], tmp_path / "out" / "cmp.png")
    assert "| cmp-search | all | cmp-search |" in md and f"| cmp-llm | config | {LLM_LABEL} |" in md
    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1024


def test_unknown_experiment_says_what_exists(experiments: str) -> None:
    with pytest.raises(ConfigError, match=r"no experiment 'nope'.*cmp-llm"):
        campaign_report(experiments, "nope")
