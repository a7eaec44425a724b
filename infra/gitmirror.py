"""Read an untrusted git repository without ever running git under its own config.

The orchestrator runs as root, and a repository's ``.git/config`` can name commands that
git runs: smudge/clean filters (``git archive`` applies them), ``core.fsmonitor``,
``core.hooksPath``, pagers, ssh commands. So git never runs *in* a repository under test.
Instead a **mirror** is made: a fresh bare repository of ours (created by ``git init`` with
no system or global config) whose refs are copied from the source by plain file reads and
whose objects are borrowed through ``objects/info/alternates`` (read-only, no copy, so it
costs the same for a small or a huge repository). Every git command then runs with
``--git-dir=<mirror>``: the only config git sees is the mirror's own.

Refused, with the reason: sources whose object store itself borrows from elsewhere
(alternates: a ``--shared`` clone could make us read another repository on the host), and
reftable ref storage. Symlinked ref files are skipped, not followed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

from patchsmith.errors import WorkspaceError

# Config that keeps every git we run from executing anything configured elsewhere.
SAFE_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.pager=cat",
    "core.sshCommand=false",
    "core.gitProxy=",
    "protocol.ext.allow=never",
    "diff.external=",
)
_REF_LIMIT = 1 << 20  # packed-refs can be large; loose refs are a line each
_MAX_REFS = 200_000


def safe_env(*, isolated: bool = True) -> dict[str, str]:
    """The environment for git: no prompts; with ``isolated`` no system/global config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    if isolated:
        env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
    return env


def git_argv(*args: str, git_dir: Path | None = None) -> list[str]:
    """``git [--git-dir=D] -c <safe config>... ARGS``."""
    argv = ["git"]
    if git_dir is not None:
        argv.append(f"--git-dir={git_dir}")
    for item in SAFE_CONFIG:
        argv += ["-c", item]
    return [*argv, *args]


def run_git(*args: str, git_dir: Path | None = None, isolated: bool = True) -> str:
    """Run git safely (see :func:`git_argv`); raise WorkspaceError with its stderr."""
    proc = subprocess.run(
        git_argv(*args, git_dir=git_dir),
        capture_output=True,
        text=True,
        env=safe_env(isolated=isolated),
        stdin=subprocess.DEVNULL,
        cwd="/",
    )
    if proc.returncode != 0:
        raise WorkspaceError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def git_dirs(source: Path) -> tuple[Path, Path] | None:
    """(git dir, common dir) of a checkout, a worktree or a bare repo; None if not git.

    Reads the ``.git`` file of a worktree (``gitdir: …``) and its ``commondir`` as text;
    nothing is executed.
    """
    dot = source / ".git"
    if dot.is_dir() and not dot.is_symlink():
        gitdir = dot
    elif dot.is_file() and not dot.is_symlink():
        text = dot.read_text(errors="replace").strip()
        if not text.startswith("gitdir:"):
            return None
        gitdir = (source / text.removeprefix("gitdir:").strip()).resolve()
    elif (source / "HEAD").is_file() and (source / "objects").is_dir():
        gitdir = source
    else:
        return None
    common = gitdir
    commondir = gitdir / "commondir"
    if commondir.is_file() and not commondir.is_symlink():
        common = (gitdir / commondir.read_text().strip()).resolve()
    return gitdir, common


def _small_file(path: Path, limit: int = _REF_LIMIT) -> bytes | None:
    """Content of a regular, not-symlinked file under ``limit`` bytes, else None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        return fh.read(limit)


def _loose_refs(refs: Path) -> Iterator[tuple[str, bytes]]:
    """(relative name, content) of each regular file under ``refs/``; links are skipped."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(refs):  # os.walk does not follow links
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            data = _small_file(path, 4096)
            if data is None:
                continue
            count += 1
            if count > _MAX_REFS:
                raise WorkspaceError(f"{refs}: more than {_MAX_REFS} refs")
            yield path.relative_to(refs.parent).as_posix(), data


def _ref_state(gitdir: Path, common: Path) -> dict[str, bytes]:
    """Every file the mirror needs to know the source's refs: HEAD, packed-refs, refs/*."""
    if (common / "reftable").exists():
        raise WorkspaceError(f"{common}: reftable ref storage is not supported")
    state: dict[str, bytes] = {}
    head = _small_file(gitdir / "HEAD", 4096)
    if head is None:
        raise WorkspaceError(f"{gitdir}: no readable HEAD")
    state["HEAD"] = head
    for name in ("packed-refs", "shallow"):
        data = _small_file(common / name, 64 * _REF_LIMIT)
        if data is not None:
            state[name] = data
    if (common / "refs").is_dir() and not (common / "refs").is_symlink():
        state.update(_loose_refs(common / "refs"))
    return state


def _check_objects(common: Path) -> Path:
    objects = common / "objects"
    if not objects.is_dir():
        raise WorkspaceError(f"{common}: no objects directory")
    for name in ("alternates", "http-alternates"):
        if os.path.lexists(objects / "info" / name):
            raise WorkspaceError(
                f"{common}: its object store borrows from elsewhere (objects/info/{name}); "
                "patchsmith will not read other repositories through it: run "
                "`git repack -a -d && rm .git/objects/info/alternates` in it, or clone it "
                "without --shared"
            )
    return objects.resolve()


def mirror(source: Path, root: Path) -> Path:
    """A bare mirror of ``source``'s refs over its objects, under ``root``; made once per
    ref state, so a commit or a moved branch in the source gives a new mirror."""
    dirs = git_dirs(source)
    if dirs is None:
        raise WorkspaceError(f"{source} is not a git repository")
    gitdir, common = dirs
    objects = _check_objects(common)
    state = _ref_state(gitdir, common)
    digest = hashlib.sha256(str(objects).encode())
    for name in sorted(state):
        digest.update(name.encode() + b"\0" + state[name] + b"\0")
    final = root / f"local-{digest.hexdigest()[:24]}"
    if final.is_dir():
        return final
    tmp = root / f".tmp-{uuid.uuid4().hex[:12]}"
    try:
        run_git("init", "--bare", "-q", str(tmp))
        (tmp / "objects" / "info").mkdir(parents=True, exist_ok=True)
        (tmp / "objects" / "info" / "alternates").write_text(f"{objects}\n")
        for name, data in state.items():
            dest = tmp / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def resolve_commit(git_dir: Path, commit: str) -> str:
    """The full sha of ``commit`` (a sha, branch or tag) in ``git_dir``."""
    if commit.startswith("-"):
        raise WorkspaceError(f"unknown commit {commit!r}")
    try:
        return run_git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{commit}^{{commit}}",
            git_dir=git_dir,
        ).strip()  # fmt: skip
    except WorkspaceError:
        raise WorkspaceError(f"unknown commit {commit!r} in {git_dir}") from None


def archive(git_dir: Path, commit: str, dest: Path) -> None:
    """``git archive COMMIT | tar -x``: the tree at ``commit``, no filter configured."""
    sha = resolve_commit(git_dir, commit)
    git = subprocess.Popen(
        git_argv("archive", "--format=tar", sha, git_dir=git_dir),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env=safe_env(), cwd="/",
    )  # fmt: skip
    tar = subprocess.run(
        ["tar", "-x", "--no-same-owner", "--no-same-permissions", "-C", str(dest)],
        stdin=git.stdout, capture_output=True,
    )  # fmt: skip
    assert git.stdout is not None and git.stderr is not None
    git.stdout.close()
    err = git.stderr.read().decode(errors="replace")
    git.stderr.close()
    if git.wait() != 0 or tar.returncode != 0:
        raise WorkspaceError(f"git archive {commit} failed: {err}{tar.stderr!r}")
