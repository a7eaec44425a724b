"""The plan's second baseline run in the warm session that then screens the candidates.

With warm screening, ``plan_step`` runs the baseline cold once (with coverage) and the
unchanged tests again in the instance's warm session: when that run agrees with the
baseline on every test, it counts as the flaky check, and the same session, calibrated,
screens the candidates. When it disagrees anywhere, the cold re-run happens as before and
the session is dropped (the first candidate starts a new, calibrated one).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import RecordingSandbox, make_stats_project, write_campaign

from patchsmith.config import load_campaign
from patchsmith.infra.sandbox import get_sandbox
from patchsmith.infra.workspace import WorkspaceManager
from patchsmith.tasks.repair import RepairContext, plan_step, prepare_pristine

pytestmark = pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning")

CMD = "python -m pytest -q tests/test_windows.py"
# Passes in a plain pytest process, fails in a fork of the warm session (which has our
# fork server loaded): the two runs disagree on it, as a flaky test would.
WARM_ONLY_FAILURE = (
    "import sys\n\n\ndef test_not_in_a_warm_fork():\n"
    "    assert 'patchsmith_fork' not in sys.modules\n"
)


def _test_runs(sandbox: RecordingSandbox) -> int:
    """Test commands that ended (a warm session counts once it has), the preflight's
    ``python -c`` checks aside."""
    return sum(1 for argv, _ in sandbox.calls if "-c" not in argv[1:2])


def _ctx(tmp_path: Path, home: Path, sandbox: RecordingSandbox) -> RepairContext:
    make_stats_project(tmp_path)
    campaign = load_campaign(write_campaign(tmp_path))
    return RepairContext(
        campaign=campaign, sandbox=sandbox, workspaces=WorkspaceManager(home / "workspaces")
    )


def test_an_agreeing_warm_run_is_the_second_run_and_its_session_screens(
    tmp_path: Path, home: Path
) -> None:
    sandbox = RecordingSandbox(get_sandbox("auto"))
    ctx = _ctx(tmp_path, home, sandbox)
    instance = ctx.campaign.instances[0]
    assert instance.test_cmd == CMD and ctx.campaign.screening == "warm"
    try:
        plan = plan_step(ctx, instance, prepare_pristine(ctx, instance))
        assert "re-run in the warm session: every test as in the baseline" in plan.notes
        assert plan.flaky == [] and len(plan.fail_to_pass) == 2
        # The cold baseline has ended; the warm session still runs: no cold re-run.
        assert _test_runs(sandbox) == 1, sandbox.calls
        warm = ctx.screen(instance).warm
        assert warm is not None and warm.starts == 1
        assert warm.targets == plan.fail_to_pass and warm.guards == plan.pass_to_pass
        assert warm.test_limit is not None  # calibrated by the plan's run
    finally:
        ctx.end_screen(instance)
    assert _test_runs(sandbox) == 2, sandbox.calls  # and the session, once it ended


def test_a_disagreeing_warm_run_falls_back_to_the_cold_re_run(tmp_path: Path, home: Path) -> None:
    sandbox = RecordingSandbox(get_sandbox("auto"))
    ctx = _ctx(tmp_path, home, sandbox)
    (tmp_path / "stats" / "tests" / "test_fork.py").write_text(WARM_ONLY_FAILURE)
    instance = ctx.campaign.instances[0].model_copy(
        update={"test_cmd": "python -m pytest -q tests/test_windows.py tests/test_fork.py"}
    )
    try:
        plan = plan_step(ctx, instance, prepare_pristine(ctx, instance))
        assert not any("warm session" in n for n in plan.notes)
        assert plan.flaky == []  # the two cold runs agree: nothing is flaky
        assert "tests/test_fork.py::test_not_in_a_warm_fork" in plan.pass_to_pass
        assert _test_runs(sandbox) == 3, sandbox.calls  # baseline, warm session, re-run
        assert ctx.screen(instance).warm is None  # the first candidate starts a new one
    finally:
        ctx.end_screen(instance)
