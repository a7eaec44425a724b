"""Every LLM attempt keeps what the model was asked and what it answered: in the store
(content-addressed, by the sha256s the attempt records) and on its MLflow LLM span."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_stats_project, run_spans
from test_budgets import WRONG, campaign, scripted
from test_llm_campaign import FIX

from patchsmith.flows.common import campaign_yaml
from patchsmith.tasks.campaign import close_session, open_session, run_instance, work_key
from patchsmith.tasks.llm.transcript import transcript
from patchsmith.tasks.repair import DIRECT

pytestmark = [
    pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning"),
    pytest.mark.usefixtures("fresh_backends"),
]


def test_each_attempt_keeps_its_prompt_and_reply_in_the_store_and_in_mlflow(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tier, backend = scripted("coder", [WRONG, FIX], rounds=2)
    c = campaign(make_stats_project(tmp_path), [tier])
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=True)
    run_instance(session, c.instances[0], DIRECT)
    close_session(session, campaign_yaml(c))
    mlflow.flush_trace_async_logging()

    attempts = session.store.attempts_for_key(work_key(session, c.instances[0]))
    assert len(attempts) == 2 == len(backend.requests)
    kept = [transcript(session.store, a.model) for a in attempts]
    for record, request, reply in zip(kept, backend.requests, [WRONG, FIX], strict=True):
        assert record is not None
        asked, answered = record
        assert asked["messages"] == [m.model_dump() for m in request.messages]
        assert answered == reply
    # The second prompt is not the first: it carries the first attempt's feedback.
    assert attempts[0].model["prompt_sha256"] != attempts[1].model["prompt_sha256"]

    [row] = session.store.instance_runs(session.campaign_id)
    spans = [s for s in run_spans(uri, "budgets", row["mlflow_run_id"]) if s.name == "model coder"]
    assert sorted(s.outputs for s in spans) == sorted([WRONG, FIX])
    assert all(s.inputs["messages"][1]["content"].startswith("Task:") for s in spans)
