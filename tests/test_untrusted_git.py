"""A checkout's own git config must never run on the host (the orchestrator is root).

The hostile repository below defines, in its ``.git/config``, a smudge/clean filter for a
path its ``.gitattributes`` names, a ``core.fsmonitor`` command, a ``core.hooksPath`` full
of hooks, an ``alias``, a pager, an external diff and an ssh command. Each writes a marker
file when it runs. Building pristine trees (by commit, by ref, from a file:// URL) and
fingerprinting must leave every marker absent and the files exactly as committed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import git

from patchsmith.domain import Instance
from patchsmith.errors import WorkspaceError
from patchsmith.infra.workspace import WorkspaceManager


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """(repo, markers dir): a committed repo whose config tries to run commands."""
    repo, marks = tmp_path / "hostile", tmp_path / "marks"
    repo.mkdir()
    marks.mkdir()
    git(repo, "init", "-q")
    (repo / ".gitattributes").write_text("*.txt filter=evil\n* diff=evil\n")
    (repo / "data.txt").write_text("committed content\n")
    (repo / "mod.py").write_text("VALUE = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    git(repo, "tag", "v1")
    hooks = repo / "evil-hooks"
    hooks.mkdir()
    for hook in ("post-checkout", "pre-commit", "post-merge", "reference-transaction",
                 "pre-auto-gc", "post-rewrite", "fsmonitor-watchman"):  # fmt: skip
        script = hooks / hook
        script.write_text(f"#!/bin/sh\ntouch {marks}/hook-{hook}\n")
        script.chmod(0o755)
    settings = {
        "filter.evil.smudge": f"sh -c 'touch {marks}/smudge; cat'",
        "filter.evil.clean": f"sh -c 'touch {marks}/clean; cat'",
        "filter.evil.process": f"sh -c 'touch {marks}/process'",
        "core.fsmonitor": f"{hooks}/fsmonitor-watchman",
        "core.hooksPath": str(hooks),
        "core.pager": f"sh -c 'touch {marks}/pager; cat'",
        "core.sshCommand": f"sh -c 'touch {marks}/ssh'",
        "core.gitProxy": f"{hooks}/pre-commit",
        "diff.evil.command": f"sh -c 'touch {marks}/diff'",
        "diff.external": f"sh -c 'touch {marks}/external'",
        "alias.archive": f"!touch {marks}/alias-archive",
        "alias.rev-parse": f"!touch {marks}/alias-rev-parse",
        "uploadpack.packObjectsHook": f"sh -c 'touch {marks}/packhook'",
    }
    for key, value in settings.items():
        git(repo, "config", key, value)
    return repo, marks


def _assert_clean(tree: Path, marks: Path) -> None:
    assert sorted(os.listdir(marks)) == [], "a command from the repo's git config ran"
    assert (tree / "data.txt").read_text() == "committed content\n"
    assert (tree / "mod.py").read_text() == "VALUE = 1\n"
    assert not (tree / ".git").exists()


@pytest.mark.parametrize("commit", ["HEAD", "v1", "sha"])
def test_archive_of_a_hostile_checkout_runs_nothing_from_its_config(
    hostile: tuple[Path, Path], tmp_path: Path, commit: str
) -> None:
    repo, marks = hostile
    ref = git(repo, "rev-parse", "HEAD") if commit == "sha" else commit
    manager = WorkspaceManager(tmp_path / "work")
    instance = Instance(id="h", repo=str(repo), base_commit=ref)
    manager.fingerprint(instance)
    tree = manager.pristine(instance)
    _assert_clean(tree, marks)
    # The source repository is untouched: no config, index or ref of ours was written.
    assert "evil" in (repo / ".git" / "config").read_text()


def test_file_url_of_a_hostile_checkout_runs_nothing(
    hostile: tuple[Path, Path], tmp_path: Path
) -> None:
    repo, marks = hostile
    manager = WorkspaceManager(tmp_path / "work")
    instance = Instance(id="h", repo=f"file://{repo}", base_commit="v1")
    tree = manager.pristine(instance)
    _assert_clean(tree, marks)


def test_the_fingerprint_follows_the_source_commit(
    hostile: tuple[Path, Path], tmp_path: Path
) -> None:
    repo, marks = hostile
    manager = WorkspaceManager(tmp_path / "work")
    instance = Instance(id="h", repo=str(repo), base_commit="HEAD")
    before = manager.fingerprint(instance)
    assert before == git(repo, "rev-parse", "HEAD")
    (repo / "mod.py").write_text("VALUE = 2\n")
    for key in ("filter.evil.process", "filter.evil.clean", "core.hooksPath", "core.fsmonitor"):
        git(repo, "config", "--unset", key)  # so that this test can commit in it
    git(repo, "commit", "-qam", "two")
    after = manager.fingerprint(instance)
    assert after != before
    tree = manager.pristine(instance)
    assert (tree / "mod.py").read_text() == "VALUE = 2\n"
    assert sorted(os.listdir(marks)) == []


def test_alternates_pointing_elsewhere_are_refused(
    hostile: tuple[Path, Path], tmp_path: Path
) -> None:
    repo, _ = hostile
    info = repo / ".git" / "objects" / "info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "alternates").write_text("/root/some-other-repo/.git/objects\n")
    manager = WorkspaceManager(tmp_path / "work")
    with pytest.raises(WorkspaceError, match="alternates"):
        manager.pristine(Instance(id="h", repo=str(repo), base_commit="HEAD"))


def test_unknown_commit_is_a_clear_error(hostile: tuple[Path, Path], tmp_path: Path) -> None:
    repo, marks = hostile
    manager = WorkspaceManager(tmp_path / "work")
    with pytest.raises(WorkspaceError, match="unknown commit"):
        manager.pristine(Instance(id="h", repo=str(repo), base_commit="nope"))
    assert sorted(os.listdir(marks)) == []
