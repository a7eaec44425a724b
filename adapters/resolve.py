"""Which model configurations and adapters an LLM tier uses, resolved once per tier.

The tier names registry adapters as ``name@version``; here they become ``AdapterRef``s
on an effective ``ModelConfig`` (so the backend loads them) and provenance entries
(name, version, sha256) for the run records. When the critic shares the tier's model,
its guardrail adapter is loaded into the same model (one backend, one copy of weights).
Adapters configured on the model by path keep working without a store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from patchsmith.adapters.registry import AdapterRecord, hash_files, resolve, verify_files
from patchsmith.config import LLMTier
from patchsmith.errors import ConfigError
from patchsmith.infra.llm.config import AdapterRef, ModelConfig
from patchsmith.infra.store import Store

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class AdapterUse:
    """One adapter as requests name it, and as the records describe it."""

    request_name: str
    name: str
    version: str | None
    sha256: str | None
    kind: str
    source: str

    def provenance(self) -> dict[str, Any]:
        """``{name, version, sha256, kind}`` for ``Candidate.model``."""
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class TierModels:
    """The resolved models of one LLM tier."""

    generator: ModelConfig
    adapters: list[AdapterUse] = field(default_factory=list)
    critic: ModelConfig | None = None
    critic_adapter: AdapterUse | None = None


def _use(record: AdapterRecord) -> AdapterUse:
    verify_files(record)
    return AdapterUse(
        request_name=_UNSAFE.sub("_", f"{record.name}-{record.version}"),
        name=record.name,
        version=record.version,
        sha256=record.sha256,
        kind=record.kind,
        source=record.source,
    )


def _ref(use: AdapterUse, record: AdapterRecord) -> AdapterRef:
    return AdapterRef(name=use.request_name, path=record.source, base_model=record.base_model)


def _configured(ref: AdapterRef, kind: str) -> AdapterUse:
    path = Path(ref.path)
    sha = hash_files(path) if path.exists() else None
    return AdapterUse(ref.name, ref.name, None, sha, kind, ref.path)


def _with_adapters(config: ModelConfig, extra: list[AdapterRef], what: str) -> ModelConfig:
    if not extra:
        return config
    data = config.model_dump(exclude_unset=True)
    data["adapters"] = [
        *(a.model_dump() for a in config.adapters),
        *(a.model_dump() for a in extra),
    ]
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"{what}: {problems}") from exc


def resolve_tier(tier: LLMTier, store: Store | None = None) -> TierModels:
    """Resolve a tier's adapters (opening the default store only when it names some)."""
    refs = list(tier.adapters)
    critic = tier.critic
    critic_ref = critic.adapter if critic and critic.adapter and "@" in critic.adapter else None
    if (refs or critic_ref) and store is None:
        with Store.open() as opened:
            return resolve_tier(tier, opened)
    records = [resolve(store, r, kind="functional") for r in refs] if store else []
    functional = [_use(r) for r in records]
    extra = [_ref(u, r) for u, r in zip(functional, records, strict=True)]
    guard_use: AdapterUse | None = None
    guard_extra: list[AdapterRef] = []
    if critic_ref is not None and store is not None:
        record = resolve(store, critic_ref, kind="guardrail")
        guard_use = _use(record)
        guard_extra = [_ref(guard_use, record)]
    shared = critic is not None and critic.model is None
    generator = _with_adapters(
        tier.model, extra + (guard_extra if shared else []), f"tier {tier.name!r}"
    )
    critic_config: ModelConfig | None = None
    if critic is not None:
        critic_config = (
            generator
            if shared
            else _with_adapters(critic.model or tier.model, guard_extra, f"{tier.name} critic")
        )
        if critic.adapter and guard_use is None:
            guard_use = _configured(critic_config.adapter(critic.adapter), "guardrail")
    if not functional:
        skip = {guard_use.request_name} if guard_use and shared else set()
        functional = [
            _configured(a, "functional") for a in tier.model.adapters if a.name not in skip
        ]
    return TierModels(generator, functional, critic_config, guard_use)
