"""Campaign files: valid ones load; bad ones fail early, naming file, field and fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from patchsmith.config import load_campaign
from patchsmith.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "campaign.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    d = tmp_path / "calc"
    (d / "tests").mkdir(parents=True)
    (d / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    return d


def test_minimal_campaign_resolves_repo_against_the_file(tmp_path: Path, repo: Path) -> None:
    path = write(tmp_path, "name: demo\ninstances:\n  - id: a\n    repo: calc\n")
    campaign = load_campaign(path)
    inst = campaign.instances[0]
    assert inst.instance_id == "a"
    assert inst.repo == str(repo.resolve())
    assert campaign.sandbox.backend == "auto"
    assert campaign.budget.max_attempts == 200
    assert [t.kind for t in campaign.tiers] == ["search"]


def test_unknown_key_names_file_and_field(tmp_path: Path, repo: Path) -> None:
    path = write(tmp_path, "name: demo\ninstances:\n  - id: a\n    repo: calc\n    tset_cmd: x\n")
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "instances[0].tset_cmd" in msg
    assert "unknown key" in msg


def test_missing_repo_path_says_where_it_looked(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\ninstances:\n  - id: a\n    repo: nope\n")
    with pytest.raises(ConfigError, match=r"instances\[0\]\.repo: 'nope' does not exist"):
        load_campaign(path)


def test_missing_required_field(tmp_path: Path) -> None:
    path = write(tmp_path, "name: demo\ninstances:\n  - repo: .\n")
    with pytest.raises(ConfigError, match=r"instances\[0\]\.id: required field is missing"):
        load_campaign(path)


def test_test_command_that_cannot_start(tmp_path: Path, repo: Path) -> None:
    path = write(
        tmp_path, "name: demo\ninstances:\n  - id: a\n    repo: calc\n    test_cmd: nosuchtool -q\n"
    )
    with pytest.raises(ConfigError, match=r"test_cmd: 'nosuchtool' is not on the sandbox PATH"):
        load_campaign(path)


def test_bad_values_are_reported(tmp_path: Path, repo: Path) -> None:
    path = write(
        tmp_path,
        "name: demo\ninstances:\n  - id: a\n    repo: calc\n"
        "sandbox: {backend: chroot, timeout_s: -1}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    assert "sandbox.backend" in str(err.value)
    assert "sandbox.timeout_s" in str(err.value)


def test_duplicate_ids_and_bad_yaml(tmp_path: Path, repo: Path) -> None:
    path = write(
        tmp_path, "name: d\ninstances:\n  - {id: a, repo: calc}\n  - {id: a, repo: calc}\n"
    )
    with pytest.raises(ConfigError, match="duplicate id 'a'"):
        load_campaign(path)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_campaign(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ConfigError, match="campaign file not found"):
        load_campaign(tmp_path / "absent.yaml")


def test_swebench_rows_load_into_instances(tmp_path: Path, repo: Path) -> None:
    rows = [
        {
            "instance_id": "acme__calc-1",
            "repo": "acme/calc",
            "base_commit": "abc123",
            "problem_statement": "add() subtracts",
            "FAIL_TO_PASS": json.dumps(["tests/test_calc.py::test_add"]),
            "PASS_TO_PASS": "[]",
            "test_patch": "",
            "version": "1.0",
        }
    ]
    checkouts = tmp_path / "checkouts"
    (checkouts / "acme__calc").mkdir(parents=True)
    (tmp_path / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    path = write(tmp_path, "name: swe\ninstances:\n  - swebench: dev.jsonl\n    repos: checkouts\n")
    inst = load_campaign(path).instances[0]
    assert inst.instance_id == "acme__calc-1"
    assert inst.repo == str(checkouts / "acme__calc")
    assert inst.base_commit == "abc123"
    assert inst.fail_to_pass == ["tests/test_calc.py::test_add"]
    assert inst.instruction == "add() subtracts"
    assert inst.test_patch is None


def test_swebench_missing_checkout_is_explained(tmp_path: Path) -> None:
    (tmp_path / "dev.json").write_text(json.dumps([{"instance_id": "x-1", "repo": "o/x"}]))
    (tmp_path / "checkouts").mkdir()
    path = write(tmp_path, "name: swe\ninstances:\n  - swebench: dev.json\n    repos: checkouts\n")
    with pytest.raises(ConfigError, match="no checkout of 'o/x'"):
        load_campaign(path)


def test_instance_key_changes_with_config(tmp_path: Path, repo: Path) -> None:
    a = load_campaign(write(tmp_path, "name: d\ninstances:\n  - {id: a, repo: calc}\n"))
    b = load_campaign(
        write(tmp_path, "name: d\ninstances:\n  - {id: a, repo: calc}\nbudget: {max_attempts: 5}\n")
    )
    assert a.instance_key(a.instances[0]) != b.instance_key(b.instances[0])
    assert a.instance_key(a.instances[0]) == a.instance_key(a.instances[0])


def test_example_campaign_is_valid() -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    campaign = load_campaign(examples / "campaign.yaml")
    assert len(campaign.instances) >= 12
    assert len({Path(i.repo).name for i in campaign.instances}) >= 3


def test_sandbox_env_refuses_credential_names(tmp_path: Path, repo: Path) -> None:
    ok = write(
        tmp_path,
        "name: d\ninstances:\n  - {id: a, repo: calc}\n"
        "sandbox: {env: {PYTEST_DISABLE_PLUGIN_AUTOLOAD: '1'}}\n",
    )
    assert load_campaign(ok).sandbox.env == {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    bad = write(
        tmp_path, "name: d\ninstances:\n  - {id: a, repo: calc}\nsandbox: {env: {GH_TOKEN: x}}\n"
    )
    with pytest.raises(ConfigError, match=r"sandbox\.env: .*'GH_TOKEN' looks like a credential"):
        load_campaign(bad)


def test_credentials_in_repo_urls_and_unknown_backends_are_refused(tmp_path: Path) -> None:
    leaky = write(
        tmp_path,
        "name: d\ninstances:\n  - {id: a, repo: 'https://bot:ghp_secret@example.invalid/o/r.git'}\n",
    )
    with pytest.raises(ConfigError, match=r"instances\[0\]\.repo: the URL carries credentials"):
        load_campaign(leaky)
    unknown = write(
        tmp_path, "name: d\ninstances:\n  - {id: a, repo: .}\nsandbox: {backend: podman}\n"
    )
    with pytest.raises(ConfigError, match=r"sandbox\.backend"):
        load_campaign(unknown)
