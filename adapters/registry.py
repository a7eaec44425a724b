"""The LoRA adapter registry, kept in the patchsmith store.

A record says what an adapter is and where it comes from: ``name@version``, the base
model it was trained on, its kind (``functional`` edits code, ``guardrail`` backs the
LLM critic), LoRA rank and target modules, the sha256 of its files, its source (a local
directory or a URI) and free notes. Versions are immutable: registering the same
``name@version`` with other files is refused, so a run record's ``name@version`` + sha256
always names the same weights::

    record = register(store, "runs/fix-py", name="fix-py", version="3", kind="functional")
    resolve(store, "fix-py@3", kind="functional")   # ConfigError lists known versions
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from patchsmith.domain import Strict
from patchsmith.errors import ConfigError
from patchsmith.infra.store import Store

Kind = Literal["functional", "guardrail"]
KINDS: tuple[str, ...] = ("functional", "guardrail")


class AdapterRecord(Strict):
    """One registered adapter version."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Adapter name.")
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$", description="Its version.")
    base_model: str = Field(min_length=1, description="Model the adapter was trained on.")
    kind: Kind = Field(description="functional (edits) or guardrail (LLM critic).")
    rank: int | None = Field(default=None, gt=0, description="LoRA rank r.")
    target_modules: list[str] = Field(default_factory=list, description="LoRA target modules.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 over the adapter files.")
    source: str = Field(min_length=1, description="Local directory (absolute) or URI.")
    notes: str = Field(default="", description="Free text: training run, data, caveats.")
    registered_at: float = Field(default_factory=time.time, description="Unix time.")

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def local(self) -> bool:
        """True when the source is a path on this machine."""
        return "://" not in self.source and Path(self.source).exists()


_HASHES: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}
_HASH_LOCK = threading.Lock()


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def hash_files(path: Path) -> str:
    """sha256 over every file under ``path`` (relative name and bytes, sorted by name).

    Cached per path while the files' sizes and mtimes stay the same.
    """
    path = Path(path).resolve()
    files = _files(path)
    if not files:
        raise ConfigError(f"{path}: no files to hash (is this an adapter directory?)")
    base = path.parent if path.is_file() else path
    stamp = tuple((str(f.relative_to(base)), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    key = (str(path), stamp)
    with _HASH_LOCK:
        if key in _HASHES:
            return _HASHES[key]
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(base)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    value = digest.hexdigest()
    with _HASH_LOCK:
        _HASHES[key] = value
    return value


def inspect_adapter(path: Path) -> dict[str, Any]:
    """``base_model``, ``rank`` and ``target_modules`` read from a peft adapter_config.json."""
    cfg = Path(path) / "adapter_config.json"
    if not cfg.is_file():
        return {}
    data = json.loads(cfg.read_text())
    targets = data.get("target_modules") or []
    return {
        "base_model": data.get("base_model_name_or_path"),
        "rank": data.get("r"),
        "target_modules": sorted(targets) if isinstance(targets, list) else [str(targets)],
    }


def register(
    store: Store,
    source: str | Path,
    *,
    name: str,
    version: str,
    kind: str,
    base_model: str | None = None,
    rank: int | None = None,
    target_modules: list[str] | None = None,
    sha256: str | None = None,
    notes: str = "",
) -> AdapterRecord:
    """Register an adapter version; returns the stored record.

    A local source is hashed (and its adapter_config.json read for base model, rank and
    targets); a URI needs ``sha256`` and ``base_model`` given. The same name@version with
    the same files only updates the notes; with other files it is refused.
    """
    if kind not in KINDS:
        raise ConfigError(f"adapter kind {kind!r}: use one of {', '.join(KINDS)}")
    where = str(source)
    local = "://" not in where and Path(where).exists()
    found: dict[str, Any] = {}
    if local:
        path = Path(where).resolve()
        found = inspect_adapter(path)
        digest = hash_files(path)
        if sha256 is not None and sha256 != digest:
            raise ConfigError(f"{path}: files hash to {digest}, not the given {sha256}")
        sha256, where = digest, str(path)
    elif sha256 is None:
        raise ConfigError(
            f"{where}: not a local path; for a remote adapter give --sha256 (and --base-model)"
        )
    values = {
        "name": name,
        "version": version,
        "kind": kind,
        "base_model": base_model or found.get("base_model"),
        "rank": rank if rank is not None else found.get("rank"),
        "target_modules": target_modules or found.get("target_modules") or [],
        "sha256": sha256,
        "source": where,
        "notes": notes,
    }
    if not values["base_model"]:
        raise ConfigError(
            f"{where}: base model unknown (no adapter_config.json): give it with --base-model"
        )
    try:
        record = AdapterRecord.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"adapter {name}@{version}: {problems}") from exc
    old = store.get_adapter(name, version)
    if old is not None:
        previous = AdapterRecord.model_validate(old)
        if previous.sha256 != record.sha256:
            raise ConfigError(
                f"adapter {record.ref} is already registered with other files "
                f"(sha256 {previous.sha256[:12]}…): register a new version instead"
            )
        record = previous.model_copy(update={"notes": notes or previous.notes})
    store.put_adapter(record.model_dump(mode="json"))
    return record


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``name@version`` → (name, version); a bare name → (name, None)."""
    name, at, version = ref.partition("@")
    if not name or (at and not version):
        raise ConfigError(f"adapter reference {ref!r}: write name@version (e.g. fix-py@3)")
    return name, version or None


def records(store: Store, kind: str | None = None) -> list[AdapterRecord]:
    """Every registered adapter (of one kind), by name then registration time."""
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"adapter kind {kind!r}: use one of {', '.join(KINDS)}")
    return [AdapterRecord.model_validate(r) for r in store.list_adapters(kind)]


def resolve(store: Store, ref: str, *, kind: str | None = None) -> AdapterRecord:
    """The record ``name@version`` names (latest version for a bare name).

    Unknown references fail with the registered versions; a record of the other kind
    fails with where it belongs in the tier.
    """
    name, version = parse_ref(ref)
    raw = store.get_adapter(name, version)
    if raw is None:
        versions = [r.version for r in records(store) if r.name == name]
        if versions:
            hint = f"registered versions of {name!r}: {', '.join(versions)}"
        else:
            names = sorted({r.ref for r in records(store)}) or ["none"]
            hint = f"registered adapters: {', '.join(names)}"
        raise ConfigError(
            f"unknown adapter {ref!r}; {hint} (register it with `patchsmith adapters register`)"
        )
    record = AdapterRecord.model_validate(raw)
    if kind is not None and record.kind != kind:
        where = "critic.adapter" if record.kind == "guardrail" else "the tier's adapters:"
        raise ConfigError(
            f"adapter {record.ref} is a {record.kind} adapter, not {kind}: name it under {where}"
        )
    return record


def verify_files(record: AdapterRecord) -> None:
    """Check that a local adapter's files still hash to the registered sha256.

    Local sources are stored as absolute paths; URIs and hub ids are not checked here.
    """
    if "://" in record.source or not os.path.isabs(record.source):
        return
    if not Path(record.source).exists():
        raise ConfigError(
            f"adapter {record.ref}: its files are gone from {record.source}; restore them "
            "or register the adapter's new location as a new version"
        )
    digest = hash_files(Path(record.source))
    if digest != record.sha256:
        raise ConfigError(
            f"adapter {record.ref}: files in {record.source} changed since registration "
            f"(sha256 {digest[:12]}… ≠ {record.sha256[:12]}…): register them as a new version"
        )


def remove(store: Store, ref: str) -> AdapterRecord:
    """Forget one version (``name@version``); returns what was removed."""
    name, version = parse_ref(ref)
    if version is None:
        raise ConfigError(f"remove needs an exact version: {name}@VERSION")
    record = resolve(store, ref)
    store.remove_adapter(name, version)
    return record
