"""Helpers for tests and benchmarks of the store: a throwaway PostgreSQL database and
realistic attempts. Not part of the installed package (tests and bench only).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

from patchsmith.domain import (
    Attempt,
    AttemptStatus,
    Candidate,
    Critique,
    TestOutcome,
    TestReport,
    Usage,
    Verdict,
)

#: the server tests may use; a database is created in it per session and dropped after.
PG_ADMIN_URL = os.environ.get(
    "PATCHSMITH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def postgres_unreachable_reason() -> str | None:
    """None when the test PostgreSQL server accepts connections, else why not."""
    url = make_url(PG_ADMIN_URL)
    host, port = url.host or "127.0.0.1", url.port or 5432
    try:
        with socket.create_connection((host, port), timeout=1.0):
            pass
    except OSError as exc:
        return f"no PostgreSQL at {host}:{port} ({exc})"
    try:
        with psycopg.connect(_conninfo(PG_ADMIN_URL), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {host}:{port} refused the test login: {exc}"


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def temporary_postgres_database() -> Iterator[str]:
    """Create ``patchsmith_test_<random>``; yield its URL; drop it (even if in use)."""
    name = f"patchsmith_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_conninfo(PG_ADMIN_URL), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_conninfo(PG_ADMIN_URL), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _filler(label: str, size: int) -> str:
    line = f"{label} " + "x" * 60 + "\n"
    return (line * (size // len(line) + 1))[:size]


def sample_attempt(
    instance_id: str, number: int, *, diff_bytes: int = 2048, log_bytes: int = 4096
) -> Attempt:
    """A realistic LLM-tier attempt: a diff and a log of about the given sizes."""
    diff = f"--- a/calc.py\n+++ b/calc.py\n@@ -{number} +{number} @@\n" + _filler(
        f"+ {instance_id} {number}", diff_bytes
    )
    tests = {f"tests/test_calc.py::test_{i}": TestOutcome.passed for i in range(20)}
    tests["tests/test_calc.py::test_target"] = TestOutcome.failed
    return Attempt(
        instance_id=instance_id,
        number=number,
        tier="small",
        generator="llm",
        candidate=Candidate(
            candidate_id=Candidate.make_id(diff),
            generator="llm",
            tier="small",
            diff=diff,
            description="adjust the bound",
            score=0.25,
            files=["calc.py"],
        ),
        report=TestReport(
            outcomes=tests,
            exit_code=1,
            duration_s=1.25,
            log_tail=_filler(f"log {instance_id} {number}", log_bytes),
        ),
        critique=Critique(
            verdict=Verdict.refine,
            score=0.5,
            reasons=["target still fails"],
            feedback="look at the loop bound",
            still_failing=["tests/test_calc.py::test_target"],
        ),
        usage=Usage(
            prompt_tokens=1200, completion_tokens=300, latency_s=0.8, gpu_seconds=0.7, dollars=None
        ),
        status=AttemptStatus.rejected,
        started_at=1_700_000_000.0 + number,
        duration_s=2.5,
        model={
            "id": "Qwen/Qwen2.5-Coder-1.5B-Instruct",
            "adapters": [{"name": "fix-py", "version": "3"}],
            "quantization": {"method": "bnb-4bit", "quant_type": "nf4"},
        },
    )


def write_attempts(url: str, label: str, count: int) -> str:
    """Open a store at ``url`` and record ``count`` attempts for one new instance run.

    A module-level function so that ``multiprocessing`` (spawn) can run it in a child
    process; returns the instance-run id.
    """
    from patchsmith.config import Campaign
    from patchsmith.domain import Instance
    from patchsmith.infra.store.store import Store

    instance = Instance(instance_id=label, repo="/nonexistent")
    campaign = Campaign(name=f"proc-{label}", instances=[instance])
    store = Store.open(url)
    try:
        campaign_id = store.start_campaign(campaign, config={"label": label})
        run_id = store.start_instance(campaign_id, instance, campaign.instance_key(instance))
        for number in range(1, count + 1):
            store.record_attempt(run_id, sample_attempt(label, number))
        return run_id
    finally:
        store.close()
