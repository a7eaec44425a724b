"""Refactoring recipes: goals on syntax trees, codemods, kept progress, the example campaign."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from patchsmith.config import load_campaign
from patchsmith.domain import GoalState, Occurrence, OutcomeStatus, Plan, TestOutcome, TestReport
from patchsmith.errors import ConfigError
from patchsmith.recipes import Goal
from patchsmith.reports import campaign_report
from patchsmith.tasks.campaign import open_session, run_instance, work_key
from patchsmith.tasks.critique import critique
from patchsmith.tasks.edits.diff import make_diff
from patchsmith.tasks.refactor.files import read_regular, read_tree
from patchsmith.tasks.refactor.goal import add_imports, drop_unused_imports, rewrite, scan
from patchsmith.tasks.repair import DIRECT
from tests.test_examples import EXAMPLES, outcomes_by_test

pytestmark = pytest.mark.filterwarnings("ignore:sandbox backend 'subprocess':RuntimeWarning")

UTC_GOAL = Goal.model_validate(
    {
        "forbid": [
            {
                "pattern": "datetime.utcnow()",
                "rewrite": "datetime.now(UTC)",
                "imports": ["from datetime import UTC"],
            },
            {"pattern": "round2($X)", "rewrite": "quantize($X, places=2)"},
            {"pattern": "legacy($$$ARGS)", "rewrite": "modern($$$ARGS, strict=True)"},
        ]
    }
)

SOURCE = textwrap.dedent(
    '''\
    """Doc."""
    from __future__ import annotations

    from datetime import datetime

    NOTE = "datetime.utcnow() in a string is not code"  # datetime.utcnow() nor here


    def f():
        return datetime.utcnow(), round2(round2(1) + 2), legacy(a, b=2)
    '''
)


# ------------------------------------------------------------------ goals on trees


def test_scan_matches_code_not_strings_or_comments() -> None:
    found = scan({"m.py": SOURCE}, UTC_GOAL)
    assert [(o.line, o.pattern) for o in found] == [
        (10, "datetime.utcnow()"),
        (10, "round2($X)"),
        (10, "round2($X)"),
        (10, "legacy($$$ARGS)"),
    ]


def test_a_node_two_patterns_match_counts_once() -> None:
    goal = Goal.model_validate(
        {"forbid": [{"pattern": "legacy($M.amount)"}, {"pattern": "legacy($X)"}]}
    )
    found = scan({"m.py": "legacy(p.amount)\nlegacy(x)\n"}, goal)
    assert [(o.line, o.pattern) for o in found] == [(1, "legacy($M.amount)"), (2, "legacy($X)")]


def test_rewrite_fills_metavariables_nested_matches_and_imports() -> None:
    out = rewrite(SOURCE, UTC_GOAL)
    assert "return datetime.now(UTC), quantize(quantize(1, places=2) + 2, places=2), " in out
    assert "modern(a, b=2, strict=True)" in out
    assert "from datetime import UTC, datetime\n" in out  # merged into the existing import
    assert 'NOTE = "datetime.utcnow() in a string' in out  # strings and comments untouched
    assert scan({"m.py": out}, UTC_GOAL) == []
    assert rewrite(out, UTC_GOAL) == out  # idempotent


def test_imports_go_after_docstring_future_and_imports_once() -> None:
    text = '"""d"""\nfrom __future__ import annotations\nimport os\n\nx = 1\n'
    out = add_imports(text, ["from datetime import UTC", "import sys", "from datetime import UTC"])
    assert out == (
        '"""d"""\nfrom __future__ import annotations\nimport os\n'
        "from datetime import UTC\nimport sys\n\nx = 1\n"
    )
    assert add_imports(out, ["import os", "from datetime import UTC"]) == out


def test_imports_a_change_left_unused_go_those_unused_before_stay() -> None:
    before = (
        "from datetime import UTC, datetime, timezone\nimport os\n\nx = timezone.utc, datetime\n"
    )
    after = "from datetime import UTC, datetime, timezone\nimport os\n\nx = UTC, datetime\n"
    assert drop_unused_imports(before, after) == (
        "from datetime import UTC, datetime\nimport os\n\nx = UTC, datetime\n"
    )
    only = "from datetime import timezone\nfrom datetime import UTC\nx = UTC\n"
    assert drop_unused_imports("from datetime import timezone\nx = timezone.utc\n", only) == (
        "from datetime import UTC\nx = UTC\n"
    )


@pytest.mark.parametrize(
    ("forbid", "message"),
    [
        ({"pattern": "((", "rewrite": "x"}, "is not Python code"),
        ({"pattern": "f($X)", "rewrite": "g($Y)"}, "uses $Y, which the pattern"),
        ({"pattern": "f()", "rewrite": "g()", "imports": ["os"]}, "is not an import"),
    ],
)
def test_bad_patterns_are_config_errors(forbid: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("$", r"\$").replace("(", r"\(")):
        Goal.model_validate({"forbid": [forbid]})


# ------------------------------------------------------------------ hostile trees


def test_symlinks_are_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.py"
    secret.write_text("datetime.utcnow()  # host file\n")
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "real.py").write_text("x = 1\n")
    os.symlink(secret, repo / "pkg" / "link.py")
    os.symlink(tmp_path, repo / "outside")  # a directory link out of the tree
    texts = read_tree(repo, lambda rel: True)
    assert texts == {"pkg/real.py": "x = 1\n"}
    assert read_regular(repo, "pkg/link.py") is None
    assert read_regular(repo, "outside/secret.py") is None
    assert read_regular(repo, "../secret.py") is None
    assert read_regular(repo, "pkg/real.py") == "x = 1\n"


# ------------------------------------------------------------------ critique


def _plan(occurrences: int, guards: list[str]) -> Plan:
    occ = [Occurrence(path="m.py", line=i + 1, pattern="p") for i in range(occurrences)]
    return Plan(
        instance_id="i",
        intent="refactor",
        fail_to_pass=[],
        pass_to_pass=guards,
        baseline=TestReport(outcomes=dict.fromkeys(guards, TestOutcome.passed)),
        tier="codemod",
        goal=GoalState(occurrences=occ),
    )


def _report(left: int, outcome: TestOutcome) -> TestReport:
    occ = [Occurrence(path="m.py", line=i + 1, pattern="p") for i in range(left)]
    return TestReport(outcomes={"t::a": outcome}, goal=GoalState(occurrences=occ))


def test_critique_accepts_a_met_goal_keeps_progress_rejects_regressions() -> None:
    plan = _plan(3, ["t::a"])
    diff = make_diff({"m.py": ("a\n", "b\n")})
    done = critique(plan, _report(0, TestOutcome.passed), diff)
    assert done.verdict == "accept" and not done.progress
    some = critique(plan, _report(1, TestOutcome.passed), diff)
    assert some.verdict == "refine" and some.progress
    assert "1 occurrence(s) of the goal left (2 of 3 removed)" in some.reasons
    broken = critique(plan, _report(0, TestOutcome.failed), diff)
    assert broken.verdict == "refine" and not broken.progress and broken.regressions == ["t::a"]
    nothing = critique(plan, _report(3, TestOutcome.passed), diff)
    assert not nothing.progress


# ------------------------------------------------------------------ campaign files


def test_recipe_repos_become_refactor_instances_with_a_codemod_tier(tmp_path: Path) -> None:
    campaign = load_campaign(EXAMPLES / "refactor.yaml")
    assert [i.instance_id for i in campaign.instances] == [
        "utc-aware-textkit",
        "utc-aware-scheduler",
        "utc-aware-invoicing",
        "format-amount-invoicing",
    ]
    assert {i.intent.value for i in campaign.instances} == {"refactor"}
    assert [t.kind for t in campaign.tiers] == ["codemod", "search"]
    inst = campaign.instances[0]
    assert campaign.tiers_for(inst) == {
        "search": "mutation search repairs failing tests; refactoring has none"
    }


def test_recipe_repos_as_a_glob_of_checkouts_or_a_file_of_them(tmp_path: Path) -> None:
    for name in ("svc-a", "svc-b", "other"):
        (tmp_path / name).mkdir()
    (tmp_path / "repos.txt").write_text("# our services\nsvc-b\nother  # legacy\n\n")
    recipe = {"name": "r", "instruction": "i", "goal": {"forbid": [{"pattern": "f()"}]}}
    for repos, ids in (("svc-*", ["r-svc-a", "r-svc-b"]), ("repos.txt", ["r-svc-b", "r-other"])):
        doc = {"name": "c", "recipes": [{**recipe, "repos": repos}]}
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc))
        assert [i.instance_id for i in load_campaign(tmp_path / "c.yaml").instances] == ids
    doc = {"name": "c", "recipes": [{**recipe, "repos": ["nothing-*"]}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="'nothing-\\*' matches no directory"):
        load_campaign(tmp_path / "c.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"instances": [{"id": "x", "repo": ".", "intent": "refactor"}]}, "names no recipe"),
        ({"instances": [{"id": "x", "repo": ".", "recipe": "nope"}]}, "names recipe 'nope'"),
    ],
)
def test_instances_must_name_a_recipe_of_the_campaign(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    raw = {"name": "c", "recipes": [], **change}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message):
        load_campaign(tmp_path / "c.yaml")


# ------------------------------------------------------------------ end to end


def _git_apply(patch: str, project: Path, dest: Path) -> Path:
    subprocess.run(["cp", "-a", str(project), str(dest)], check=True)
    subprocess.run(["git", "apply"], input=patch.encode(), cwd=dest, check=True)
    return dest


@pytest.mark.slow
def test_example_refactor_campaign(home: Path, tmp_path: Path) -> None:
    """Codemod-reachable occurrences are all migrated with guards green, the rest reported
    by location; every changeset applies to a clean copy and its tests still pass."""
    campaign = load_campaign(EXAMPLES / "refactor.yaml")
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=True)
    outcomes = {i.instance_id: run_instance(session, i, DIRECT) for i in campaign.instances}
    session.tracker.flush()
    # MLflow has each recipe's progress, and `patchsmith report` adds it up per recipe.
    report = campaign_report(f"sqlite:///{home / 'mlflow.db'}", campaign.name)
    rows = {r.recipe: r for r in report.recipes}
    assert (rows["utc-aware"].done, rows["utc-aware"].partial) == (3, 0)
    assert rows["utc-aware"].by_tier == {"codemod": 5} and rows["utc-aware"].after == 0
    fmt = rows["format-amount"]
    assert (fmt.done, fmt.partial, fmt.before, fmt.after) == (0, 1, 3, 1)
    assert fmt.review_lines > 0
    for name in ("utc-aware-textkit", "utc-aware-scheduler", "utc-aware-invoicing"):
        outcome = outcomes[name]
        assert outcome.status == OutcomeStatus.resolved, (name, outcome.reasons)
        assert outcome.goal is not None and outcome.goal.state == "done"
        assert outcome.goal.check_passed is True
    # Two codemods chained in textkit and scheduler: the rewrite, then ruff's UP017 fixer.
    assert outcomes["utc-aware-textkit"].goal.by_tier == {"codemod": 2}  # type: ignore[union-attr]
    partial = outcomes["format-amount-invoicing"]
    assert partial.status == OutcomeStatus.unresolved and partial.patch
    assert partial.goal is not None and partial.goal.state == "partial"
    assert (partial.goal.before, partial.goal.after) == (3, 1)
    assert [o.where() for o in partial.goal.remaining] == ["invoicing/statement.py:20"]
    assert any("left: invoicing/statement.py:20" in r for r in partial.reasons)
    for inst in campaign.instances:
        patch = outcomes[inst.instance_id].patch
        assert patch, inst.instance_id
        project = Path(inst.repo)
        clean = _git_apply(patch, project, tmp_path / f"clean-{inst.instance_id}")
        before, after = outcomes_by_test(project), outcomes_by_test(clean)
        assert set(after) == set(before)
        assert {t for t, r in before.items() if r == "PASSED"} <= {
            t for t, r in after.items() if r == "PASSED"
        }, inst.instance_id


@pytest.mark.slow
def test_codemod_commands_run_sandboxed_and_their_symlinks_are_not_followed(
    home: Path, tmp_path: Path
) -> None:
    """A recipe command that swaps a file for a link to a host file gets nothing of it into a
    candidate; a command that edits the file makes the candidate that meets the goal."""
    repo = tmp_path / "svc"
    (repo / "tests").mkdir(parents=True)
    source = (
        "def total(x):\n    return old_round(x)\n\n\ndef old_round(x):\n    return round(x, 2)\n"
    )
    (repo / "svc.py").write_text(source)
    (repo / "tests" / "test_svc.py").write_text(
        "from svc import total\n\n\ndef test_total():\n    assert total(1.234) == 1.23\n"
    )
    host = tmp_path / "host-secret.txt"
    host.write_text("HOST SECRET\n")
    fix = (
        "import pathlib; p = pathlib.Path('svc.py'); "
        "p.write_text(p.read_text().replace('return old_round(x)', 'return round(x, 2)'))"
    )
    raw = {
        "name": "cmds",
        "recipes": [
            {
                "name": "inline",
                "instruction": "Inline old_round",
                "goal": {"forbid": [{"pattern": "old_round($X)"}]},
                "codemods": {
                    "commands": [f"ln -sf {host} svc.py", f'python -c "{fix}"'],
                },
                "repos": [str(repo)],
            }
        ],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    campaign = load_campaign(tmp_path / "c.yaml")
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=False)
    inst = campaign.instances[0]
    outcome = run_instance(session, inst, DIRECT)
    seen = [a for a in session.store.attempts_for_key(work_key(session, inst)) if a.candidate]
    assert [a.generator for a in seen] == ["codemod:command 2"]  # command 1 changed nothing
    assert outcome.status == OutcomeStatus.resolved, outcome.reasons
    assert outcome.patch and "+    return round(x, 2)" in outcome.patch
    assert (
        all("HOST SECRET" not in a.candidate.diff for a in seen if a.candidate)
        and "HOST SECRET" not in outcome.patch
    )
    assert (repo / "svc.py").read_text() == source  # the source repository is untouched


def committed(repo: Path) -> Path:
    """``repo`` made a git repository with everything in one commit."""
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "start")
    return repo


def bare_remote(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def _git(cwd: Path, *args: str) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd, check=True, capture_output=True, text=True, env=env,
    ).stdout  # fmt: skip


@pytest.mark.slow
def test_publish_commits_in_clones_and_pushes_to_a_bare_remote(home: Path, tmp_path: Path) -> None:
    """Verified changesets become a commit on a branch in a clone, pushed to a local bare
    remote; the source repository (whose own git config and hooks would leave a mark if
    git ran under them) is untouched."""
    from patchsmith.publish import publish

    repo = committed(Path(shutil.copytree(EXAMPLES / "invoicing", tmp_path / "invoicing")))
    marker = tmp_path / "ran-under-repo-config"
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    _git(repo, "config", "core.fsmonitor", f"touch {marker}; echo")
    head = _git(repo, "rev-parse", "HEAD").strip()
    remote = bare_remote(tmp_path / "remote.git")
    raw = yaml.safe_load((EXAMPLES / "refactor.yaml").read_text())
    for recipe in raw["recipes"]:
        recipe["repos"] = [str(repo)]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    campaign = load_campaign(tmp_path / "c.yaml")
    out = tmp_path / "out"
    session = open_session(campaign, home=home, out_dir=out, tracking=False)
    for inst in campaign.instances:
        run_instance(session, inst, DIRECT)
    results = publish(out, remote=str(remote))
    assert sorted(r.instance_id for r in results if r.pushed) == [
        "format-amount-invoicing",
        "utc-aware-invoicing",
    ], [r.note for r in results]
    log = " ".join(_git(remote, "log", "--format=%s%n%b", "patchsmith/format-amount").split())
    assert "format-amount: Replace the deprecated legacy_format" in log
    assert "2 of 3 occurrence(s)" in log and "Partial: 1 left at invoicing/statement.py:20" in log
    assert "Verified: applied to a fresh copy" in log
    assert _git(remote, "rev-parse", "patchsmith/utc-aware~1").strip() == head
    checkout = tmp_path / "pushed"
    subprocess.run(["git", "clone", "-q", "-b", "patchsmith/utc-aware", str(remote), str(checkout)],
                   check=True)  # fmt: skip
    assert "datetime.now(UTC)" in (checkout / "invoicing" / "audit.py").read_text()
    # The source: its config never ran; same commit, clean tree, no new branch.
    assert not marker.exists()
    assert _git(repo, "rev-parse", "HEAD").strip() == head
    assert _git(repo, "-c", "core.fsmonitor=false", "status", "--porcelain") == ""
    assert "patchsmith" not in _git(repo, "branch", "--list")


LLM_FIX = """invoicing/statement.py
<<<<<<< SEARCH
    return f"Tax ({currency}): {legacy_format(tax)}"
=======
    return f"Tax ({currency}): {format_amount(tax, currency=currency)}"
>>>>>>> REPLACE
"""


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_backends")
def test_an_llm_tier_takes_what_the_codemods_left_from_their_base(
    home: Path, tmp_path: Path
) -> None:
    """The codemod migrates two calls and is kept; the LLM tier edits the kept tree (its
    SEARCH text is there) for the last one; the shipped patch holds both, from the original."""
    repo = tmp_path / "invoicing"
    shutil.copytree(EXAMPLES / "invoicing", repo)
    raw = yaml.safe_load((EXAMPLES / "refactor.yaml").read_text())
    recipe = next(r for r in raw["recipes"] if r["name"] == "format-amount")
    recipe["repos"] = [str(repo)]
    llm = {
        "kind": "llm",
        "name": "llm",
        "model": {"model": "coder", "backend": "scripted", "options": {"replies": [LLM_FIX]}},
        "rounds": 1,
        "planner": False,
    }
    doc = {"name": "mixed", "recipes": [recipe], "tiers": [{"kind": "codemod"}, llm]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(doc))
    campaign = load_campaign(tmp_path / "c.yaml")
    session = open_session(campaign, home=home, out_dir=tmp_path / "out", tracking=False)
    outcome = run_instance(session, campaign.instances[0], DIRECT)
    assert outcome.status == OutcomeStatus.resolved, outcome.reasons
    assert outcome.tier == "llm" and outcome.goal is not None
    assert outcome.goal.by_tier == {"codemod": 2, "llm": 1}
    assert outcome.goal.steps == ["codemod:rewrite", "llm"]
    patch = outcome.patch or ""
    assert "format_amount(price.amount, currency=price.currency)" in patch
    assert "format_amount(tax, currency=currency)" in patch
    clean = _git_apply(patch, repo, tmp_path / "clean")
    assert "legacy_format(" not in (clean / "invoicing" / "statement.py").read_text()


@pytest.mark.slow
def test_a_resumed_refactoring_starts_from_the_changes_it_kept(home: Path, tmp_path: Path) -> None:
    """Stopped after its first kept step (here by the attempt budget), a refactoring given
    its recorded attempts rebuilds that base and goes on from it, repeating nothing."""
    from patchsmith.tasks.repair import repair

    raw = yaml.safe_load((EXAMPLES / "refactor.yaml").read_text())
    raw["recipes"] = [r for r in raw["recipes"] if r["name"] == "utc-aware"]
    raw["recipes"][0]["repos"] = [str(EXAMPLES / "scheduler")]
    raw["budget"] = {"max_attempts": 1, "max_wall_s": 120}
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(raw))
    first = load_campaign(tmp_path / "one.yaml")
    session = open_session(first, home=home, out_dir=tmp_path / "out1", tracking=False)
    inst = first.instances[0]
    stopped = run_instance(session, inst, DIRECT)
    assert stopped.status == OutcomeStatus.unresolved and stopped.give_up == "budget"
    prior = session.store.attempts_for_key(work_key(session, inst))
    assert [a.generator for a in prior] == ["codemod:rewrite", "refactor:kept"]
    raw["budget"] = {"max_attempts": 10, "max_wall_s": 120}
    (tmp_path / "more.yaml").write_text(yaml.safe_dump(raw))
    more = load_campaign(tmp_path / "more.yaml")
    again = open_session(more, home=home, out_dir=tmp_path / "out2", tracking=False)
    seen: list[str] = []
    ctx = again.ctx
    ctx.on_attempt = lambda a: seen.append(a.generator)
    outcome = repair(more.instances[0], ctx, DIRECT, prior=prior)
    assert outcome.status == OutcomeStatus.resolved, outcome.reasons
    assert "resumed from 1 kept refactoring step(s)" in outcome.reasons
    assert seen == ["codemod:ruff UP017"]  # the rewrite is not tried again
    assert outcome.goal is not None and outcome.goal.steps == [
        "codemod:rewrite",
        "codemod:ruff UP017",
    ]
    assert "datetime.datetime.now(datetime.UTC)" in (outcome.patch or "")


@pytest.mark.slow
def test_split_by_package_verifies_each_part_alone_and_publishes_a_branch_each(
    home: Path, tmp_path: Path
) -> None:
    from patchsmith.publish import publish

    repo = tmp_path / "mono"
    for pkg in ("billing", "ledger"):
        (repo / pkg).mkdir(parents=True)
        (repo / pkg / "__init__.py").write_text("")
        (repo / pkg / "clock.py").write_text(
            "from datetime import datetime\n\n\ndef year() -> int:\n"
            "    return datetime.utcnow().year\n"
        )
    (repo / "tests").mkdir()
    (repo / "tests" / "test_year.py").write_text(
        "from billing.clock import year as a\nfrom ledger.clock import year as b\n\n\n"
        "def test_years():\n    assert a() == b() > 2000\n"
    )
    committed(repo)
    remote = bare_remote(tmp_path / "remote.git")
    raw = yaml.safe_load((EXAMPLES / "refactor.yaml").read_text())
    recipe = raw["recipes"][0]
    recipe.update(repos=[str(repo)], split="package")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "split", "recipes": [recipe]}))
    campaign = load_campaign(tmp_path / "c.yaml")
    out = tmp_path / "out"
    session = open_session(campaign, home=home, out_dir=out, tracking=False)
    outcome = run_instance(session, campaign.instances[0], DIRECT)
    assert outcome.status == OutcomeStatus.resolved, outcome.reasons
    assert [(p.name, p.files, p.verified) for p in outcome.parts] == [
        ("billing", ["billing/clock.py"], True),
        ("ledger", ["ledger/clock.py"], True),
    ]
    assert "split by package into 2 part(s), 2 verified alone" in outcome.reasons
    results = publish(out, remote=str(remote))
    assert all(r.pushed for r in results), [r.note for r in results]
    assert _git(remote, "branch", "--list").split() == [
        "patchsmith/utc-aware/billing",
        "patchsmith/utc-aware/ledger",
    ]
    shown = _git(remote, "show", "--stat", "--format=%s", "patchsmith/utc-aware/ledger")
    assert "utc-aware (ledger):" in shown and "ledger/clock.py" in shown
    assert "billing/clock.py" not in shown


def test_llm_context_of_a_refactoring_lists_occurrences_and_the_check_not_test_logs(
    tmp_path: Path,
) -> None:
    from patchsmith.domain import CheckRun, Instance, SuspiciousLine
    from patchsmith.tasks.llm.context import build_context

    (tmp_path / "m.py").write_text("x = legacy(1)\ny = 2\nz = legacy(3)\n")
    plan = _plan(0, ["t::a"]).model_copy(
        update={
            "goal": GoalState(
                occurrences=[
                    Occurrence(path="m.py", line=1, pattern="legacy($X)"),
                    Occurrence(path="m.py", line=3, pattern="legacy($X)"),
                ],
                check=CheckRun(exit_code=1, passed=False, log_tail="m.py:1: LEG001 legacy call"),
            ),
            "suspicious": [SuspiciousLine(path="m.py", line=1, score=1.0)],
            "baseline": TestReport(log_tail="FAILED tests/test_other.py::test_bug"),
        }
    )
    text = build_context(Instance(id="i", repo=str(tmp_path)), plan, tmp_path, 2000)
    assert "- m.py, line 1 (pattern `legacy($X)`)" in text
    assert "- m.py, line 3 (pattern `legacy($X)`)" in text
    assert "LEG001 legacy call" in text
    assert "test_bug" not in text and "Suspicious lines" not in text
    assert "x = legacy(1)" in text  # the excerpt around the occurrence
