"""GPU slots: model calls of a GPU pool hold its Prefect global concurrency limit.

Real Prefect (its test harness API), real campaign code; the model is a scripted fake that
counts how many calls run at the same moment.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import make_stats_project
from test_llm_campaign import FIX

from patchsmith.config import Campaign
from patchsmith.domain import OutcomeStatus
from patchsmith.errors import ConfigError
from patchsmith.infra.gpu_slots import GpuSlots, limit_name
from patchsmith.infra.llm.config import ModelConfig
from patchsmith.infra.llm.scripted import ScriptedBackend
from patchsmith.infra.llm.types import ChatMessage, ChatRequest, Completion
from patchsmith.tasks.campaign import open_session, run_instance
from patchsmith.tasks.llm.models import use_backend
from patchsmith.tasks.repair import DIRECT

pytestmark = [
    pytest.mark.usefixtures("prefect_harness", "fresh_backends"),
    pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning"),
]


class Gauge:
    """A model (the scripted backend, replying FIX) that takes a while per call and counts
    how many calls are inside it now, and the most there ever were."""

    def __init__(self, config: ModelConfig, hold_s: float = 0.3) -> None:
        self.inner = ScriptedBackend(config, reply=lambda _request: FIX)
        self.hold_s = hold_s
        self.now = 0
        self.most = 0
        self.calls = 0
        self._lock = threading.Lock()

    def complete(self, requests: list[ChatRequest]) -> list[Completion]:
        with self._lock:
            self.now += 1
            self.calls += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(self.hold_s)  # the call's time on the GPU
            return self.inner.complete(requests)
        finally:
            with self._lock:
                self.now -= 1


def new_pool(slots: int) -> str:
    """A fresh GPU pool with its limit on the harness's server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    pool = f"p{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=limit_name(pool), limit=slots)
        )
    return pool


def request() -> ChatRequest:
    return ChatRequest(messages=[ChatMessage(role="user", content="fix it")], max_new_tokens=64)


def test_concurrent_calls_never_exceed_the_pools_slots() -> None:
    pool = new_pool(2)
    config = ModelConfig(model="m", backend="scripted", gpu_pool=pool)
    gauge = Gauge(config)
    backend = GpuSlots(gauge, pool)
    threads = [threading.Thread(target=backend.complete, args=([request()],)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gauge.calls == 6
    assert gauge.most == 2  # at most the pool's slots (all six at once without them)


def test_a_pool_without_its_limit_says_how_to_create_it() -> None:
    config = ModelConfig(model="m", backend="scripted", gpu_pool="nowhere")
    backend = GpuSlots(Gauge(config, hold_s=0), "nowhere")
    with pytest.raises(ConfigError, match=r"gpu-nowhere.*patchsmith infra setup"):
        backend.complete([request()])


def campaign_raw(project: Path, pool: str, slots: int, instances: int) -> dict[str, Any]:
    tier: dict[str, Any] = {
        "kind": "llm",
        "name": "gpu-llm",
        "model": {"model": "gpu-coder", "backend": "scripted", "gpu_pool": pool},
        "rounds": 1,
        "planner": False,
    }
    return {
        "name": "gpu-slots",
        "instances": [
            {
                "id": f"stats-describe-{i}",
                "repo": str(project),
                "test_cmd": "python -m pytest -q tests/test_describe.py",
            }
            for i in range(instances)
        ],
        "sandbox": {"timeout_s": 60, "env": {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}},
        "budget": {"max_attempts": 4, "max_wall_s": 120},
        "tiers": [tier],
        "concurrency": instances,
        "gpu_pools": {pool: slots},
    }


def test_instances_in_parallel_share_the_pools_slots(home: Path, tmp_path: Path) -> None:
    pool = new_pool(1)
    c = Campaign.model_validate(campaign_raw(make_stats_project(tmp_path), pool, 1, 4))
    model = c.tiers[0].model  # type: ignore[union-attr]
    gauge = Gauge(model)
    use_backend(model, gauge)
    session = open_session(c, home=home, out_dir=tmp_path / "out", tracking=False)
    outcomes: list[Any] = []

    def one(i: int) -> None:
        outcomes.append(run_instance(session, c.instances[i], DIRECT))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o.status for o in outcomes] == [OutcomeStatus.resolved] * 4
    assert gauge.calls >= 4
    assert gauge.most == 1  # four instances at once, one GPU slot: one call at a time


def test_a_model_must_name_a_pool_the_campaign_lists(tmp_path: Path) -> None:
    project = make_stats_project(tmp_path)
    raw = campaign_raw(project, "a100", slots=2, instances=1)
    raw["gpu_pools"] = {}
    with pytest.raises(ValueError, match=r"gpu_pool 'a100', which gpu_pools does not list"):
        Campaign.model_validate(raw)
    raw["gpu_pools"] = {"a100": 1}
    raw["tiers"][0]["model"]["gpu_slots"] = 2
    with pytest.raises(ValueError, match=r"occupies 2 slot\(s\).*which has 1"):
        Campaign.model_validate(raw)
