"""The example campaign: fixable bugs are fixed, patches hold up when applied by hand."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from patchsmith.config import load_campaign
from patchsmith.domain import OutcomeStatus
from patchsmith.tasks.campaign import open_session, run_instance
from patchsmith.tasks.repair import DIRECT
from patchsmith.tasks.testing.run import GUARD_DIR, GUARD_PLUGIN

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning"),
]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def build_wheels(dest: Path) -> Path:
    """unitconv's dependency as a wheel directory, built offline from a copy of its source
    (what scripts/demo.sh does for examples/wheels)."""
    src = dest / "src"
    shutil.copytree(EXAMPLES / "unitconv" / "vendor" / "unitreg", src)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         str(src), "-w", str(dest / "wheels")],
        check=True, capture_output=True,
    )  # fmt: skip
    return dest / "wheels"


def outcomes_by_test(project: Path) -> dict[str, str]:
    """Every test of a project and its outcome (PASSED / FAILED / ERROR).

    With patchsmith's per-test limit: a hanging bug's tests fail instead of never returning.
    A project's vendored dependencies (unitconv's unitreg) are put on the path.
    """
    vendored = [str(p) for p in sorted((project / "vendor").glob("*"))]
    env = {
        "PATH": str(Path(sys.executable).parent),
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTHONPATH": os.pathsep.join([GUARD_DIR, *vendored]),
        "PATCHSMITH_TEST_TIMEOUT": "2",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p", GUARD_PLUGIN],
        cwd=project, capture_output=True, text=True, check=False, env=env, timeout=300,
    )  # fmt: skip
    result = {}
    for line in proc.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR"):
            result[rest.split(" - ")[0]] = word
    assert result, proc.stdout[-2000:]
    return result


def test_example_campaign_fixes_the_fixable_and_patches_hold(home: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load((EXAMPLES / "campaign.yaml").read_text())
    raw["budget"] = {"max_attempts": 25, "max_wall_s": 240}
    assert [t["kind"] for t in raw["tiers"]] == ["search", "llm"]
    raw["tiers"] = raw["tiers"][:1]  # the search tier alone (the model tier: tests/test_real_model)
    wheels = build_wheels(tmp_path / "deps")
    for inst in raw["instances"]:
        inst["repo"] = str(EXAMPLES / inst["repo"])
        if "environment" in inst:
            inst["environment"]["find_links"] = [str(wheels)]
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(raw))
    campaign = load_campaign(path)
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=False)
    answers = json.loads((EXAMPLES / "answers.json").read_text())
    assert any("hangs" in inst.tags for inst in campaign.instances)
    assert any("environment" in inst.tags for inst in campaign.instances)
    baselines: dict[str, dict[str, str]] = {}
    for inst in campaign.instances:
        outcome = run_instance(session, inst, DIRECT)
        fixable = "fixable" in inst.tags
        expected = OutcomeStatus.resolved if fixable else OutcomeStatus.unresolved
        assert outcome.status == expected, (inst.instance_id, outcome.reasons)
        if "hangs" in inst.tags:  # its baseline found the hanging tests and got attempts
            assert any("test(s) hang" in r for r in outcome.reasons), outcome.reasons
            assert outcome.attempts >= 1
        if not fixable:
            continue
        assert outcome.patch and answers[inst.instance_id]["file"] in outcome.patch
        project = Path(inst.repo)
        if project.name not in baselines:
            baselines[project.name] = outcomes_by_test(project)
        # Apply the patch by hand to a clean copy, then run the project's whole suite.
        clean = tmp_path / f"clean-{inst.instance_id}"
        subprocess.run(["cp", "-a", str(project), str(clean)], check=True)
        subprocess.run(["git", "apply"], input=outcome.patch.encode(), cwd=clean, check=True)
        after = outcomes_by_test(clean)
        target_file = inst.test_cmd.split()[-1]
        before = baselines[project.name]
        assert set(after) == set(before)
        for test, result in after.items():
            if test.startswith(target_file):
                assert result == "PASSED", (inst.instance_id, test)
            else:
                assert result == before[test], (inst.instance_id, test, "changed outside target")
