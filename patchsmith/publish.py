"""``patchsmith publish RUN_DIR``: verified changesets → a branch and a commit in a clone.

For each changeset of a run (``changesets/*.json``, written for every refactoring that
shipped a verified patch) the source repository is cloned — from patchsmith's own mirror
of it, so git never runs under the repository's config, hooks or filters — into
``RUN_DIR/publish/ID``, the branch is made at the commit the change was verified on, the
patch applied (in process, paths checked) and committed with a message that says what,
why and how it was verified; with ``--remote`` the branch is pushed there. The source
repository's working tree is never touched. Changesets held for review are skipped unless
approved (``--include-review``).
"""

from __future__ import annotations

import re
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

from patchsmith.domain import Changeset, ChangesetPart, Instance
from patchsmith.errors import ConfigError, WorkspaceError
from patchsmith.infra import gitmirror
from patchsmith.infra.settings import home
from patchsmith.infra.workspace import WorkspaceManager
from patchsmith.outputs import CHANGESETS
from patchsmith.tasks.edits.diff import apply_diff

BRANCH = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]+(?<![./])$")
AUTHOR = "patchsmith <patchsmith@localhost>"
AUTHOR_RE = re.compile(r"^(?P<name>[^<>]+?)\s*<(?P<email>[^<>\s]+)>$")


@dataclass(frozen=True)
class Published:
    instance_id: str
    clone: Path | None
    branch: str
    commit: str | None
    pushed: bool
    note: str


def read_changesets(run_dir: Path) -> list[Changeset]:
    folder = run_dir / CHANGESETS
    if not folder.is_dir():
        raise ConfigError(
            f"{run_dir}: no {CHANGESETS}/ folder: not a run directory, or its campaign had no "
            "refactoring that shipped a verified change (patchsmith run prints the folder)"
        )
    return [Changeset.model_validate_json(p.read_text()) for p in sorted(folder.glob("*.json"))]


def message(changeset: Changeset, part: ChangesetPart | None = None) -> str:
    """The commit message: what, why, how verified (for a part: that part, verified alone)."""
    goal = changeset.goal
    subject = f"{changeset.recipe}: {changeset.instruction.strip().splitlines()[0]}"
    if part is not None:
        subject = f"{changeset.recipe} ({part.name}): {changeset.instruction.strip()}"
    if len(subject) > 72:
        subject = subject[:71] + "…"
    migrated = goal.before - goal.after
    by = ", ".join(f"{n} by {tier}" for tier, n in sorted(goal.by_tier.items())) or "none"
    what = (
        f"What: {len(changeset.files)} file(s), {changeset.lines} line(s) changed; "
        f"{migrated} of {goal.before} occurrence(s) of the recipe's forbidden patterns "
        f"migrated ({by})."
    )
    if goal.after:
        left = ", ".join(o.where() for o in goal.remaining[:10])
        what += f" Partial: {goal.after} left at {left}."
    if part is not None:
        what = (
            f"What: part {part.name} of {len(changeset.parts)} of this repository's change: "
            f"{len(part.files)} file(s), {part.lines} line(s) ({', '.join(part.files[:5])}); "
            f"it applies and passes alone, and with the other parts (whole change: {what[6:]})"
        )
    body = [
        subject,
        "",
        *textwrap.wrap(what, 72),
        "",
        *textwrap.wrap(f"Why: {changeset.instruction.strip()}", 72),
        "",
        *textwrap.wrap(f"Verified: {changeset.verified}.", 72),
        "",
        f"Patchsmith-Instance: {changeset.instance_id}",
        f"Patchsmith-Steps: {', '.join(goal.steps) or changeset.tier or 'unknown'}",
    ]
    return "\n".join(body) + "\n"


def _git(clone: Path, *args: str, isolated: bool = True) -> str:
    return gitmirror.run_git("-C", str(clone), *args, isolated=isolated)


def publish_one(
    changeset: Changeset,
    run_dir: Path,
    workspaces: WorkspaceManager,
    *,
    branch: str,
    remote: str | None,
    author: str,
    part: ChangesetPart | None = None,
) -> Published:
    """One changeset (or one ``part`` of it) → a commit on ``branch`` in
    ``RUN_DIR/publish/ID[--PART]`` (pushed to ``remote`` when given). WorkspaceError says
    what went wrong."""
    if changeset.patch_file is None:
        raise WorkspaceError(f"{changeset.instance_id}: the changeset has no patch file")
    patch = part.diff if part else (run_dir / changeset.patch_file).read_text()
    instance = Instance(
        instance_id=changeset.instance_id, repo=changeset.repo, base_commit=changeset.base_commit
    )
    git_dir, commit = workspaces.git_source(instance)
    clone = run_dir / "publish" / (changeset.instance_id + (f"--{part.name}" if part else ""))
    shutil.rmtree(clone, ignore_errors=True)
    clone.parent.mkdir(parents=True, exist_ok=True)
    gitmirror.run_git("clone", "--no-local", "--quiet", "--no-checkout", "--", str(git_dir),
                      str(clone))  # fmt: skip
    _git(clone, "checkout", "--quiet", "-B", branch, commit)
    changed = apply_diff(clone, patch)
    _git(clone, "add", "--all", "--", *changed)
    who = AUTHOR_RE.match(author)
    assert who is not None
    msg = clone / ".git" / "PATCHSMITH_MSG"
    msg.write_text(message(changeset, part))
    _git(clone, "-c", f"user.name={who['name']}", "-c", f"user.email={who['email']}",
         "commit", "--quiet", "--no-verify", "-F", str(msg))  # fmt: skip
    msg.unlink()
    head = _git(clone, "rev-parse", "HEAD").strip()
    if remote is not None:
        # The user's own git config stays for the push (credential helpers), as for clones.
        _git(clone, "push", "--quiet", "--", remote, f"{branch}:refs/heads/{branch}",
             isolated=False)  # fmt: skip
    where = f", pushed to {remote}" if remote else ""
    label = changeset.instance_id + (f"--{part.name}" if part else "")
    return Published(label, clone, branch, head, remote is not None,
                     f"{changeset.state}: {head[:12]} on {branch}{where}")  # fmt: skip


def publish(
    run_dir: Path,
    *,
    branch: str | None = None,
    remote: str | None = None,
    include_review: bool = False,
    author: str = AUTHOR,
    partial: bool = True,
) -> list[Published]:
    """Every publishable changeset of ``run_dir``; one failing does not stop the others."""
    if branch is not None and not BRANCH.match(branch):
        raise ConfigError(f"--branch {branch!r} is not a valid branch name")
    if not AUTHOR_RE.match(author):
        raise ConfigError(f"--author {author!r}: expected 'Name <email>'")
    workspaces = WorkspaceManager(home() / "workspaces")
    out: list[Published] = []
    for changeset in read_changesets(run_dir):
        name = branch or f"patchsmith/{changeset.recipe}"
        skip = None
        if changeset.review == "rejected":
            skip = "rejected by its reviewer"
        elif changeset.needs_review and changeset.review != "approved" and not include_review:
            skip = "held for review (a business rule): approve it, or --include-review"
        elif changeset.state == "partial" and not partial:
            skip = "partial (--no-partial)"
        elif changeset.state == "untouched":
            skip = "nothing migrated"
        if skip is not None:
            out.append(
                Published(changeset.instance_id, None, name, None, False, f"skipped: {skip}")
            )
            continue
        pieces: list[ChangesetPart | None] = list(changeset.parts) or [None]
        for part in pieces:
            label = changeset.instance_id + (f"--{part.name}" if part else "")
            where = f"{name}/{part.name}" if part else name
            if part is not None and not part.verified:
                out.append(Published(label, None, where, None, False, f"skipped: {part.note}"))
                continue
            try:
                out.append(
                    publish_one(
                        changeset,
                        run_dir,
                        workspaces,
                        branch=where,
                        remote=remote,
                        author=author,
                        part=part,
                    )
                )
            except WorkspaceError as exc:
                out.append(Published(label, None, where, None, False, f"failed: {exc}"))
    return out
