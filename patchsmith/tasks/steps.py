"""The pipeline steps as Prefect tasks, wrapping the plain functions of ``tasks/repair.py``.

Retries happen only for infrastructure faults (``InfraError``: the sandbox failed to start,
a workspace could not be made, a model server was unreachable), never because tests failed:
failing tests are a value (a TestReport), not an exception.

Caching is off (``NO_CACHE``): inputs include live objects (the sandbox, the workspace
manager) that must not be hashed, and resume works from the provenance store instead, keyed
by instance key and candidate id, which survives a crashed process.
"""

from __future__ import annotations

from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from patchsmith.errors import InfraError
from patchsmith.tasks import repair
from patchsmith.tasks.policy import decide


def retry_on_infra(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect retry condition: True only when the step failed with an InfraError."""
    try:
        state.result()
    except InfraError:
        return True
    except Exception:  # any other error is a real failure: do not retry
        return False
    return False


_infra = {
    "retries": 2,
    "retry_delay_seconds": [1, 5],
    "retry_condition_fn": retry_on_infra,
    "cache_policy": NO_CACHE,
    "persist_result": False,
}

plan = task(name="plan", **_infra)(repair.plan_step)
generate = task(name="generate", **_infra)(repair.generate_step)
sandbox_test = task(name="sandbox-test", **_infra)(repair.test_step)
critique = task(name="critique", cache_policy=NO_CACHE, persist_result=False)(repair.critique_step)
refine = task(name="refine", cache_policy=NO_CACHE, persist_result=False)(decide)
verify = task(name="verify", **_infra)(repair.verify_step)

PREFECT_STEPS = repair.Steps(
    plan=plan,
    generate=generate,
    test=sandbox_test,
    critique=critique,
    refine=refine,
    verify=verify,
)
