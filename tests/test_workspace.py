"""WorkspaceManager: pristine trees from git/working trees/URLs, and throwaway attempts."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import git, needs_bwrap

from patchsmith.domain import Instance, SandboxConfig
from patchsmith.errors import WorkspaceError
from patchsmith.infra.sandbox.bwrap import BwrapSandbox
from patchsmith.infra.workspace import WorkspaceManager

IS_ROOT = os.geteuid() == 0


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repo with two commits; the working tree has an uncommitted edit and junk."""
    path = tmp_path / "repo"
    (path / "pkg").mkdir(parents=True)
    git(path, "init", "-q")
    (path / "pkg" / "mod.py").write_text("VALUE = 1\n")
    git(path, "add", ".")
    git(path, "commit", "-qm", "one")
    (path / "pkg" / "mod.py").write_text("VALUE = 2\n")
    git(path, "commit", "-qam", "two")
    (path / "pkg" / "mod.py").write_text("VALUE = 3  # uncommitted\n")
    for junk in ("__pycache__", ".pytest_cache", ".venv"):
        (path / "pkg" / junk).mkdir()
        (path / "pkg" / junk / "x").write_text("junk")
    return path


@pytest.fixture
def manager(tmp_path: Path) -> WorkspaceManager:
    return WorkspaceManager(tmp_path / "work")


def inst(repo: str | Path, commit: str | None = None, patch: str | None = None) -> Instance:
    return Instance(id="i1", repo=str(repo), base_commit=commit, test_patch=patch)


def test_pristine_at_a_commit_never_touches_the_source(
    repo: Path, manager: WorkspaceManager
) -> None:
    first = git(repo, "rev-list", "--max-parents=0", "HEAD")
    head, status = git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")
    tree = manager.pristine(inst(repo, first))
    assert (tree / "pkg" / "mod.py").read_text() == "VALUE = 1\n"
    assert not (tree / ".git").exists() and not (tree / "pkg" / "__pycache__").exists()
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "status", "--porcelain") == status
    assert (repo / "pkg" / "mod.py").read_text() == "VALUE = 3  # uncommitted\n"


def test_pristine_without_commit_copies_the_working_tree(
    repo: Path, manager: WorkspaceManager
) -> None:
    tree = manager.pristine(inst(repo))
    assert (tree / "pkg" / "mod.py").read_text() == "VALUE = 3  # uncommitted\n"
    leftovers = {p.name for p in tree.rglob("*")}
    assert leftovers == {"pkg", "mod.py"}
    if IS_ROOT:
        assert {p.stat().st_uid for p in [tree, *tree.rglob("*")]} == {65534}


def test_pristine_from_a_file_url(repo: Path, manager: WorkspaceManager) -> None:
    tree = manager.pristine(inst(f"file://{repo}"))
    assert (tree / "pkg" / "mod.py").read_text() == "VALUE = 2\n"  # HEAD of the clone
    assert len(list((manager.root / "repos").iterdir())) == 1


def test_unknown_commit_and_missing_repo_are_clear_errors(
    repo: Path, manager: WorkspaceManager, tmp_path: Path
) -> None:
    with pytest.raises(WorkspaceError, match="unknown commit 'deadbeef'"):
        manager.pristine(inst(repo, "deadbeef"))
    with pytest.raises(WorkspaceError, match="does not exist"):
        manager.pristine(inst(tmp_path / "missing"))
    assert [p.name for p in (manager.root / "pristine").iterdir()] == []  # no half-built trees


def test_pristine_is_built_once_across_threads(repo: Path, manager: WorkspaceManager) -> None:
    calls: list[Path] = []
    lock = threading.Lock()

    def prepare(path: Path) -> None:
        with lock:
            calls.append(path)
        (path / "PATCHED").write_text("yes")

    with ThreadPoolExecutor(8) as pool:
        trees = list(pool.map(lambda _: manager.pristine(inst(repo, "HEAD"), prepare), range(16)))
    assert len(set(trees)) == 1 and len(calls) == 1
    assert (trees[0] / "PATCHED").read_text() == "yes"
    other = manager.pristine(inst(repo, "HEAD", patch="diff"), prepare)
    assert other != trees[0] and len(calls) == 2  # the test patch is part of the key


@pytest.fixture(params=["auto", "copy"])
def attempts(request: pytest.FixtureRequest, tmp_path: Path) -> WorkspaceManager:
    return WorkspaceManager(tmp_path / "work", method=request.param)


def test_attempt_writes_never_reach_pristine(repo: Path, attempts: WorkspaceManager) -> None:
    pristine = attempts.pristine(inst(repo, "HEAD"))
    with attempts.attempt(pristine) as ws:
        (ws / "pkg" / "mod.py").write_text("VALUE = 99\n")
        (ws / "new.txt").write_text("new")
        (ws / "pkg" / "mod.py").unlink()
        assert not (ws / "pkg" / "mod.py").exists()
    assert not ws.exists()
    assert (pristine / "pkg" / "mod.py").read_text() == "VALUE = 2\n"
    assert not (pristine / "new.txt").exists()
    assert list((attempts.root / "attempts").iterdir()) == []


def test_method_is_overlay_as_root_and_copy_when_forced(tmp_path: Path) -> None:
    assert WorkspaceManager(tmp_path / "a", method="copy").method == "copy"
    expected = "overlay" if IS_ROOT else "copy"
    assert WorkspaceManager(tmp_path / "b").method == expected


def test_attempt_is_removed_on_error(repo: Path, attempts: WorkspaceManager) -> None:
    pristine = attempts.pristine(inst(repo, "HEAD"))
    with pytest.raises(RuntimeError), attempts.attempt(pristine) as ws:
        (ws / "x").write_text("x")
        raise RuntimeError("boom")
    assert not ws.exists() and list((attempts.root / "attempts").iterdir()) == []


def test_concurrent_attempts_are_isolated(repo: Path, attempts: WorkspaceManager) -> None:
    pristine = attempts.pristine(inst(repo, "HEAD"))

    def one(n: int) -> str:
        with attempts.attempt(pristine) as ws:
            (ws / "pkg" / "mod.py").write_text(f"VALUE = {n}\n")
            return (ws / "pkg" / "mod.py").read_text()

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(one, range(12))) == [f"VALUE = {n}\n" for n in range(12)]
    assert (pristine / "pkg" / "mod.py").read_text() == "VALUE = 2\n"


@needs_bwrap
def test_sandbox_can_write_its_attempt_but_not_pristine(
    repo: Path, attempts: WorkspaceManager
) -> None:
    pristine = attempts.pristine(inst(repo, "HEAD"))
    code = "open('pkg/mod.py', 'w').write('VALUE = 7\\n'); print(open('pkg/mod.py').read())"
    sandbox, config = BwrapSandbox(), SandboxConfig(timeout_s=30)
    with attempts.attempt(pristine) as ws:
        assert sandbox.run(ws, [sys.executable, "-c", code], config).stdout_tail == "VALUE = 7\n\n"
    assert (pristine / "pkg" / "mod.py").read_text() == "VALUE = 2\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="overlay attempts need root")
def test_attempts_left_by_a_killed_process_are_unmounted_and_removed(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    lower = tmp_path / "lower"
    lower.mkdir()
    (lower / "a.txt").write_text("x")
    # A child process opens an attempt and is SIGKILLed inside it: its mount stays behind.
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from patchsmith.infra.workspace import WorkspaceManager\n"
        f"m = WorkspaceManager(Path({str(root)!r}), method='overlay')\n"
        f"with m.attempt(Path({str(lower)!r})) as ws:\n"
        "    print(ws, flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9
    leftover = Path(proc.stdout.strip())
    assert os.path.ismount(leftover)
    live = WorkspaceManager(root, method="overlay")
    with live.attempt(lower) as mine:
        # A second manager in a live process must not reap this one's attempt.
        assert WorkspaceManager(root, method="overlay").reaped == 0
        assert mine.is_dir()
    assert live.reaped == 1
    assert not leftover.exists()
    assert list((root / "attempts").iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="overlay attempts need root")
def test_overlay_attempt_writes_are_bounded_by_its_tmpfs(repo: Path, tmp_path: Path) -> None:
    import errno

    manager = WorkspaceManager(tmp_path / "work", method="overlay", disk_mb=8, inodes=300)
    pristine = manager.pristine(inst(repo, "HEAD"))
    with manager.attempt(pristine) as ws:  # the manager's defaults
        st = os.statvfs(ws)
        assert st.f_blocks * st.f_frsize == 8 * 1024 * 1024 and st.f_files == 300
        with pytest.raises(OSError) as info, open(ws / "big", "wb") as f:
            for _ in range(9):
                f.write(b"x" * (1 << 20))
                f.flush()
        assert info.value.errno == errno.ENOSPC
    with manager.attempt(pristine, disk_mb=4, inodes=100) as ws:  # per attempt
        st = os.statvfs(ws)
        assert st.f_blocks * st.f_frsize == 4 * 1024 * 1024 and st.f_files == 100
    assert list((manager.root / "attempts").iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="overlay attempts need root")
def test_reaping_a_killed_attempt_unmounts_overlay_and_tmpfs(tmp_path: Path) -> None:
    root, lower = tmp_path / "ws", tmp_path / "lower"
    lower.mkdir()
    code = (
        "import os\n"
        "from pathlib import Path\n"
        "from patchsmith.infra.workspace import WorkspaceManager\n"
        f"m = WorkspaceManager(Path({str(root)!r}), method='overlay')\n"
        f"with m.attempt(Path({str(lower)!r})) as ws:\n"
        "    print(ws, flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    merged = Path(proc.stdout.strip())
    assert os.path.ismount(merged) and os.path.ismount(merged.parent)  # overlay on tmpfs
    assert WorkspaceManager(root, method="overlay").reaped == 1
    assert not merged.parent.exists()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(root) not in mounts
