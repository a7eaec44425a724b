"""Workspaces: a cached pristine copy per repository state, and cheap throwaway attempts.

Layout under ``root``::

    repos/<hash>        clones of git URLs (bare)
    pristine/<hash>     one pristine tree per (repo, base_commit, test_patch); never written
    attempts/<id>/      upper/ work/ merged/ of one overlay attempt (or copy/ as fallback)

An attempt is an overlayfs mount whose lower layer is the pristine tree, so creating one
costs the same for ten files or ten thousand. Where overlayfs cannot be mounted (not root,
or the filesystem refuses), attempts fall back to a full copy and a warning is logged once.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import logging
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from patchsmith.domain import Instance
from patchsmith.errors import WorkspaceError
from patchsmith.infra import gitmirror
from patchsmith.infra.sandbox.running import pid_alive

log = logging.getLogger(__name__)

SANDBOX_UID = 65534
_IGNORED = (
    ".git", "__pycache__", ".pytest_cache", ".venv", ".mypy_cache", ".ruff_cache", ".patchsmith",
)  # fmt: skip
_URL_PREFIXES = ("https://", "http://", "ssh://", "git://", "file://", "git@")
_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _source(instance: Instance) -> tuple[str, str | None]:
    """(repo, commit) to read. A ``file://`` URL is a local repository at its HEAD, read
    through a mirror and never cloned (a local clone would run git's upload-pack inside
    the untrusted repository)."""
    repo, commit = instance.repo, instance.base_commit
    if repo.startswith("file:///"):
        return repo.removeprefix("file://"), commit or "HEAD"
    return repo, commit


def _mount_overlay(lower: Path, upper: Path, work: Path, merged: Path) -> None:
    for path in (lower, upper, work):
        if any(c in str(path) for c in ",:\\"):  # overlay's option syntax cannot carry these
            raise WorkspaceError(f"cannot use {path} in an overlay mount (',', ':' or '\\')")
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    rc = _libc.mount(b"overlay", str(merged).encode(), b"overlay", 0, opts.encode())
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount overlay on {merged}: {os.strerror(err)}")


def _umount(path: Path) -> None:
    if _libc.umount2(str(path).encode(), 0) != 0:
        err = ctypes.get_errno()
        if err == errno.EBUSY:  # something still has it open: detach lazily
            _libc.umount2(str(path).encode(), _MNT_DETACH)
        elif err != errno.EINVAL:  # EINVAL: not mounted
            raise OSError(err, f"umount {path}: {os.strerror(err)}")


def _chown_tree(path: Path, uid: int) -> None:
    os.lchown(path, uid, uid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            os.lchown(os.path.join(dirpath, name), uid, uid)


class WorkspaceManager:
    """Builds pristine trees once and hands out throwaway attempt workspaces."""

    def __init__(
        self,
        root: Path,
        sandbox_uid: int = SANDBOX_UID,
        method: Literal["auto", "overlay", "copy"] = "auto",
        disk_mb: int = 1024,
        inodes: int = 65536,
    ) -> None:
        """``method`` "auto" probes overlayfs once; "copy" forces full copies.

        ``disk_mb`` / ``inodes``: default bounds of one overlay attempt's writable layer
        (SandboxConfig.disk_mb / inodes); :meth:`attempt` can override them.
        """
        self.root = Path(root).resolve()
        self.sandbox_uid = sandbox_uid
        self.disk_mb = disk_mb
        self.inodes = inodes
        for sub in ("repos", "pristine", "attempts"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._method: Literal["overlay", "copy"] | None = None if method == "auto" else method
        self.reaped = self._reap_stale()

    def _reap_stale(self) -> int:
        """Unmount and delete attempts left behind by dead processes (a SIGKILLed campaign).

        Attempt directories are named ``<pid>-<id>``; a directory whose process is gone is
        garbage. Attempts of live processes (other workers sharing this root) are left alone.
        """
        reaped = 0
        for base in (self.root / "attempts").iterdir():
            pid = base.name.split("-", 1)[0]
            if pid.isdigit() and pid_alive(int(pid)):
                continue
            for mount in (base / "merged", base):  # the overlay, then the tmpfs under it
                if os.path.ismount(mount):
                    _umount(mount)
            shutil.rmtree(base, ignore_errors=True)
            reaped += 1
        if reaped:
            log.info("removed %d attempt workspace(s) left by dead processes", reaped)
        return reaped

    # ------------------------------------------------------------------ pristine

    def fingerprint(self, instance: Instance) -> str:
        """What the instance's source is right now: the resolved commit, or for a working
        tree (no base_commit) a digest of its files' paths, sizes and modification times.

        Part of the pristine cache key and of the resume key, so an edited or pulled
        repository is never served from a stale copy or a stale stored outcome.
        """
        repo, commit = _source(instance)
        if repo.startswith(_URL_PREFIXES):
            return f"{repo}@{commit or 'HEAD'}"
        source = Path(repo).expanduser()
        if commit is not None and gitmirror.git_dirs(source) is not None:
            try:
                return gitmirror.resolve_commit(self._mirror(source), commit)
            except WorkspaceError:
                return f"unknown:{commit}"  # _fill reports it properly
        digest = hashlib.sha256()
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED)
            for name in sorted(filenames):
                path = Path(dirpath) / name
                st = path.lstat()
                rel = path.relative_to(source).as_posix()
                digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def pristine(self, instance: Instance, prepare: Callable[[Path], None] | None = None) -> Path:
        """The cached pristine tree of ``instance`` (built once; safe to call from threads)."""
        key = hashlib.sha256(
            "\0".join(
                [instance.repo, self.fingerprint(instance), instance.test_patch or ""]
            ).encode()
        ).hexdigest()[:20]

        def fill(tmp: Path) -> None:
            self._fill(instance, tmp)
            if prepare is not None:
                prepare(tmp)

        return self._publish(key, fill)

    def derive(self, pristine: Path, label: str, prepare: Callable[[Path], None]) -> Path:
        """A pristine tree made from another one by ``prepare`` (a refactoring's progress
        so far applied, say), built once per (tree, label) like :meth:`pristine`."""
        key = hashlib.sha256(f"{pristine.name}\0{label}".encode()).hexdigest()[:20]

        def fill(tmp: Path) -> None:
            shutil.copytree(pristine, tmp, symlinks=True, dirs_exist_ok=True)
            prepare(tmp)

        return self._publish(key, fill)

    def _publish(self, key: str, fill: Callable[[Path], None]) -> Path:
        final = self.root / "pristine" / key
        if final.is_dir():
            return final
        with self._lock(key):
            if final.is_dir():
                return final
            tmp = self.root / "pristine" / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
            try:
                tmp.mkdir()
                fill(tmp)
                if os.geteuid() == 0:
                    _chown_tree(tmp, self.sandbox_uid)
                try:
                    tmp.rename(final)
                except OSError as exc:  # another process renamed first: use theirs
                    if not final.is_dir():
                        raise WorkspaceError(f"cannot publish {final}: {exc}") from exc
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _fill(self, instance: Instance, dest: Path) -> None:
        repo, commit = _source(instance)
        if repo.startswith(_URL_PREFIXES):
            gitmirror.archive(self._clone(repo), commit or "HEAD", dest)
            return
        source = Path(repo).expanduser()
        if not source.is_dir():
            raise WorkspaceError(
                f"repository {repo!r} does not exist (instance {instance.instance_id})"
            )
        if commit is None:
            shutil.copytree(
                source, dest, symlinks=True, dirs_exist_ok=True,
                ignore=shutil.ignore_patterns(*_IGNORED),
            )  # fmt: skip
            return
        if gitmirror.git_dirs(source) is None:
            raise WorkspaceError(f"{repo!r} is not a git repository but base_commit={commit!r}")
        gitmirror.archive(self._mirror(source), commit, dest)

    def git_source(self, instance: Instance) -> tuple[Path, str]:
        """A git directory of ours holding the instance's history, and the commit it is at
        (its base_commit, else HEAD): what ``patchsmith publish`` clones. Raises
        WorkspaceError when the repository is not a git repository."""
        repo, commit = _source(instance)
        if repo.startswith(_URL_PREFIXES):
            git_dir = self._clone(repo)
        else:
            source = Path(repo).expanduser()
            if gitmirror.git_dirs(source) is None:
                raise WorkspaceError(
                    f"{repo} is not a git repository: publishing makes a branch in a clone of "
                    "it (run `git init` and commit there, or give the instance a git URL)"
                )
            git_dir = self._mirror(source)
        return git_dir, gitmirror.resolve_commit(git_dir, commit or "HEAD")

    def _mirror(self, source: Path) -> Path:
        """A mirror of a local repository's refs over its objects (see infra/gitmirror.py):
        git never runs inside the source, so its config, hooks and filters never run."""
        with self._lock(f"mirror:{source.resolve()}"):
            return gitmirror.mirror(source.resolve(), self.root / "repos")

    def _clone(self, url: str) -> Path:
        """A bare clone of a remote URL, made once (our own repository: its config is git's
        default plus the remote). The user's global config stays, for credential helpers."""
        dest = self.root / "repos" / hashlib.sha256(url.encode()).hexdigest()[:20]
        with self._lock(f"repo:{url}"):
            if not dest.is_dir():
                tmp = dest.with_name(f".tmp-{uuid.uuid4().hex[:8]}")
                try:
                    gitmirror.run_git(
                        "clone",
                        "--bare",
                        "--quiet",
                        "--no-hardlinks",
                        "--",
                        url,
                        str(tmp),
                        isolated=False,
                    )
                    tmp.rename(dest)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        return dest

    # ------------------------------------------------------------------ attempts

    @property
    def method(self) -> Literal["overlay", "copy"]:
        """How attempts are made: "overlay" where it can be mounted, else "copy"."""
        with self._guard:
            if self._method is None:
                self._method = "overlay" if self._probe_overlay() else "copy"
                if self._method == "copy":
                    log.warning(
                        "overlayfs unavailable under %s (needs root); attempts will be full "
                        "copies, slower for large repositories",
                        self.root,
                    )
            return self._method

    def _probe_overlay(self) -> bool:
        if os.geteuid() != 0:
            return False
        base = self.root / "attempts" / f"{os.getpid()}-probe-{uuid.uuid4().hex[:8]}"
        dirs = [base / d for d in ("lower", "upper", "work", "merged")]
        try:
            for d in dirs:
                d.mkdir(parents=True)
            _mount_overlay(*dirs)
            _umount(dirs[3])
            return True
        except OSError as exc:
            log.info("overlay probe failed: %s", exc)
            return False
        finally:
            shutil.rmtree(base, ignore_errors=True)

    @contextlib.contextmanager
    def attempt(
        self, pristine: Path, *, disk_mb: int | None = None, inodes: int | None = None
    ) -> Iterator[Path]:
        """A writable throwaway copy of ``pristine``, unmounted and deleted on exit.

        Overlay mode bounds what the attempt may write: upper/ and work/ live on a tmpfs
        of ``disk_mb`` MiB and ``inodes`` inodes mounted at the attempt's directory, so a
        full disk is this attempt's ENOSPC, not the host's. (Copy mode has no such bound.)
        """
        pristine = Path(pristine)
        if not pristine.is_dir():
            raise WorkspaceError(f"pristine tree {pristine} does not exist")
        size_mb = self.disk_mb if disk_mb is None else disk_mb
        nr_inodes = self.inodes if inodes is None else inodes
        base = self.root / "attempts" / f"{os.getpid()}-{uuid.uuid4().hex[:16]}"
        base.mkdir()
        mounts: list[Path] = []  # unmounted in reverse
        try:
            if self.method == "overlay":
                opts = f"size={size_mb}m,nr_inodes={nr_inodes},mode=0755"
                if _libc.mount(b"tmpfs", str(base).encode(), b"tmpfs", 0, opts.encode()) != 0:
                    err = ctypes.get_errno()
                    raise WorkspaceError(
                        f"cannot mount the attempt's tmpfs on {base}: {os.strerror(err)}"
                    )
                mounts.append(base)
                upper, work, merged = base / "upper", base / "work", base / "merged"
                for d in (upper, work, merged):
                    d.mkdir()
                st = pristine.stat()
                os.chown(upper, st.st_uid, st.st_gid)  # the merged root takes upper's owner
                os.chmod(upper, st.st_mode & 0o7777)
                try:
                    _mount_overlay(pristine, upper, work, merged)
                except OSError as exc:
                    raise WorkspaceError(f"cannot mount attempt workspace: {exc}") from exc
                mounts.append(merged)
                yield merged
            else:
                copy = base / "copy"
                proc = subprocess.run(
                    ["cp", "-a", "--reflink=auto", str(pristine), str(copy)],
                    capture_output=True, text=True,
                )  # fmt: skip
                if proc.returncode != 0:
                    raise WorkspaceError(f"cannot copy {pristine}: {proc.stderr.strip()}")
                yield copy
        finally:
            try:
                while mounts:
                    _umount(mounts.pop())
            finally:
                shutil.rmtree(base, ignore_errors=True)
