"""The LoRA adapter registry, tier resolution and the ``patchsmith adapters`` CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from patchsmith.adapters.registry import hash_files, records, register, remove, resolve
from patchsmith.adapters.resolve import resolve_tier
from patchsmith.cli_adapters import adapters_app
from patchsmith.config import LLMTier
from patchsmith.errors import ConfigError
from patchsmith.infra.store import Store


def make_adapter(root: Path, base: str = "base-model", payload: bytes = b"weights") -> Path:
    """A peft-shaped adapter directory (config + weights file)."""
    root.mkdir(parents=True, exist_ok=True)
    config = {"base_model_name_or_path": base, "r": 16, "target_modules": ["v_proj", "q_proj"]}
    (root / "adapter_config.json").write_text(json.dumps(config))
    (root / "adapter_model.safetensors").write_bytes(payload)
    return root


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    with Store.open(home=home) as opened:
        yield opened


def test_register_reads_the_peft_config_and_hashes_the_files(store: Store, tmp_path: Path) -> None:
    path = make_adapter(tmp_path / "fix")
    record = register(store, path, name="fix", version="1", kind="functional", notes="run 7")
    assert (record.base_model, record.rank) == ("base-model", 16)
    assert record.target_modules == ["q_proj", "v_proj"]
    assert record.sha256 == hash_files(path) and record.source == str(path.resolve())
    assert resolve(store, "fix@1") == record
    assert resolve(store, "fix") == record  # a bare name is the latest version


def test_versions_are_immutable_and_kinds_are_kept_apart(store: Store, tmp_path: Path) -> None:
    register(store, make_adapter(tmp_path / "a"), name="fix", version="1", kind="functional")
    other = make_adapter(tmp_path / "b", payload=b"retrained")
    with pytest.raises(ConfigError, match="register a new version"):
        register(store, other, name="fix", version="1", kind="functional")
    register(store, other, name="fix", version="2", kind="functional")
    register(store, make_adapter(tmp_path / "g"), name="guard", version="1", kind="guardrail")
    assert [r.ref for r in records(store, "functional")] == ["fix@1", "fix@2"]
    assert [r.ref for r in records(store, "guardrail")] == ["guard@1"]
    with pytest.raises(ConfigError, match=r"registered versions of 'fix': 1, 2"):
        resolve(store, "fix@9")
    with pytest.raises(ConfigError, match=r"guardrail adapter.*critic\.adapter"):
        resolve(store, "guard@1", kind="functional")
    assert remove(store, "fix@1").version == "1"
    assert [r.ref for r in records(store)] == ["fix@2", "guard@1"]


def test_remote_sources_need_a_hash_and_a_base_model(store: Store) -> None:
    with pytest.raises(ConfigError, match="--sha256"):
        register(store, "s3://bucket/fix", name="fix", version="1", kind="functional")
    with pytest.raises(ConfigError, match="--base-model"):
        register(store, "s3://b/f", name="f", version="1", kind="functional", sha256="a" * 64)
    record = register(
        store, "s3://b/f", name="f", version="1", kind="guardrail", sha256="a" * 64, base_model="m"
    )
    assert record.source == "s3://b/f" and not record.local


def test_a_tier_resolves_registry_adapters_into_one_shared_model(
    store: Store, tmp_path: Path
) -> None:
    register(store, make_adapter(tmp_path / "fix"), name="fix", version="1", kind="functional")
    register(store, make_adapter(tmp_path / "g"), name="guard", version="2", kind="guardrail")
    tier = LLMTier.model_validate(
        {
            "model": {"model": "base-model", "backend": "scripted"},
            "adapters": ["fix@1"],
            "critic": {"adapter": "guard@2"},
        }
    )
    models = resolve_tier(tier, store)
    assert [a.name for a in models.generator.adapters] == ["fix-1", "guard-2"]
    assert models.critic is models.generator  # the critic shares the model and its backend
    assert [(a.name, a.version) for a in models.adapters] == [("fix", "1")]
    assert models.critic_adapter is not None and models.critic_adapter.kind == "guardrail"
    assert models.adapters[0].sha256 == hash_files(tmp_path / "fix")


def test_resolution_rejects_other_base_models_changed_files_and_unknown_refs(
    store: Store, tmp_path: Path
) -> None:
    register(
        store, make_adapter(tmp_path / "x", base="other"), name="x", version="1", kind="functional"
    )
    tier = LLMTier.model_validate(
        {"model": {"model": "base-model", "backend": "scripted"}, "adapters": ["x@1"]}
    )
    with pytest.raises(ConfigError, match="use an adapter trained on 'base-model'"):
        resolve_tier(tier, store)
    path = make_adapter(tmp_path / "y")
    register(store, path, name="y", version="1", kind="functional")
    (path / "adapter_model.safetensors").write_bytes(b"tampered!")
    tier = LLMTier.model_validate(
        {"model": {"model": "base-model", "backend": "scripted"}, "adapters": ["y@1"]}
    )
    with pytest.raises(ConfigError, match="changed since registration"):
        resolve_tier(tier, store)
    tier = LLMTier.model_validate(
        {"model": {"model": "base-model", "backend": "scripted"}, "adapters": ["z@3"]}
    )
    with pytest.raises(ConfigError, match="unknown adapter 'z@3'; registered adapters: x@1, y@1"):
        resolve_tier(tier, store)


def test_path_adapters_on_the_model_work_without_a_store(tmp_path: Path) -> None:
    path = make_adapter(tmp_path / "a", base="m")
    tier = LLMTier.model_validate(
        {
            "model": {
                "model": "m",
                "backend": "scripted",
                "adapters": [{"name": "a", "path": str(path)}],
            }
        }
    )
    models = resolve_tier(tier)
    assert [(a.name, a.version, a.sha256) for a in models.adapters] == [
        ("a", None, hash_files(path))
    ]


def test_cli_register_list_show_remove(home: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(adapters_app, name="adapters")
    runner = CliRunner()
    path = make_adapter(tmp_path / "fix")
    result = runner.invoke(
        app,
        [
            "adapters",
            "register",
            str(path),
            "--name",
            "fix",
            "--version",
            "1",
            "--kind",
            "functional",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["sha256"] == hash_files(path)
    listed = runner.invoke(app, ["adapters", "list", "--json"])
    assert [json.loads(x)["name"] for x in listed.output.splitlines()] == ["fix"]
    shown = runner.invoke(app, ["adapters", "show", "fix@1"])
    assert json.loads(shown.output)["kind"] == "functional"
    missing = runner.invoke(app, ["adapters", "show", "fix@2"])
    assert missing.exit_code == 2 and "registered versions of 'fix': 1" in missing.output
    bad = runner.invoke(
        app, ["adapters", "register", str(path), "--name", "g", "--version", "1", "--kind", "x"]
    )
    assert bad.exit_code == 2 and "functional, guardrail" in bad.output
    gone = runner.invoke(app, ["adapters", "remove", "fix@1"])
    assert gone.exit_code == 0 and "removed fix@1" in gone.output
    assert runner.invoke(app, ["adapters", "list", "--json"]).output == ""
