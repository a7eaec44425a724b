"""GPU slots: a model call holds its pool's Prefect global concurrency limit.

A model with ``gpu_pool: a100`` (and ``gpu_slots: k``) is wrapped in :class:`GpuSlots`:
every ``complete`` call occupies ``k`` slots of the limit ``gpu-a100`` for the length of the
call, and only the call: test runs, sandboxes and search hold none. The limit lives in the
Prefect server, so it bounds the calls of every worker process on every machine together
(``patchsmith infra setup`` creates it from the campaign's ``gpu_pools``).

The limit is taken ``strict``: a limit that does not exist is an error that says how to
create it, not Prefect's default of a warning and no limit at all.
"""

from __future__ import annotations

from contextlib import ExitStack

from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import concurrency

from patchsmith.errors import ConfigError
from patchsmith.infra.llm.types import ChatRequest, Completion, ModelBackend


def limit_name(pool: str) -> str:
    """The global concurrency limit of a GPU pool."""
    return f"gpu-{pool}"


class GpuSlots:
    """A backend whose calls each hold ``occupy`` slots of ``gpu-<pool>``."""

    def __init__(self, backend: ModelBackend, pool: str, occupy: int = 1) -> None:
        self.backend = backend
        self.pool = pool
        self.occupy = occupy

    def complete(self, requests: list[ChatRequest]) -> list[Completion]:
        name = limit_name(self.pool)
        with ExitStack() as held:
            try:
                held.enter_context(concurrency(name, occupy=self.occupy, strict=True))
            except ConcurrencySlotAcquisitionError as exc:
                raise ConfigError(
                    f"GPU pool {self.pool!r}: the Prefect server has no concurrency limit "
                    f"{name!r} ({exc}): run `patchsmith infra setup CAMPAIGN` against this "
                    f"server (or `prefect gcl create {name} --limit N`)"
                ) from exc
            return self.backend.complete(requests)
