"""Unified diffs: make, parse, apply (all-or-nothing), measure; fuzzed with hypothesis."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchsmith.errors import ApplyError, EditError, MalformedEdit
from patchsmith.tasks.edits.diff import (
    apply_diff,
    apply_diff_to_text,
    changed_lines,
    diff_size,
    make_diff,
    parse_diff,
)

OLD = "".join(f"line {i}\n" for i in range(1, 21))
NEW = OLD.replace("line 5\n", "line five\n").replace("line 15\n", "")


def test_make_diff_is_git_style_with_three_lines_of_context() -> None:
    diff = make_diff({"pkg/mod.py": (OLD, NEW)})
    lines = diff.splitlines()
    assert lines[:3] == [
        "diff --git a/pkg/mod.py b/pkg/mod.py",
        "--- a/pkg/mod.py",
        "+++ b/pkg/mod.py",
    ]
    assert lines[3] == "@@ -2,7 +2,7 @@"
    assert lines[4:7] == [" line 2", " line 3", " line 4"]
    assert "-line 15" in lines and "+line five" in lines
    assert make_diff({"pkg/mod.py": (OLD, NEW)}) == diff  # deterministic
    assert make_diff({"a.py": ("same\n", "same\n")}) == ""


def test_missing_trailing_newline_is_marked_and_round_trips() -> None:
    diff = make_diff({"a.py": ("x\ny", "x\nz")})
    assert diff.count("\\ No newline at end of file") == 2
    [patch] = parse_diff(diff)
    assert apply_diff_to_text("x\ny", patch) == "x\nz"
    added = make_diff({"a.py": ("x", "x\n")})
    assert apply_diff_to_text("x", parse_diff(added)[0]) == "x\n"


def test_apply_diff_writes_new_modified_and_deleted_files(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(OLD)
    (tmp_path / "gone.py").write_text("bye\n")
    diff = make_diff(
        {"mod.py": (OLD, NEW), "gone.py": ("bye\n", None), "new/pkg.py": (None, "hi\n")}
    )
    changed = apply_diff(tmp_path, diff)
    assert sorted(changed) == ["gone.py", "mod.py", "new/pkg.py"]
    assert (tmp_path / "mod.py").read_text() == NEW
    assert not (tmp_path / "gone.py").exists()
    assert (tmp_path / "new/pkg.py").read_text() == "hi\n"


def test_hunks_apply_at_an_offset(tmp_path: Path) -> None:
    diff = make_diff({"mod.py": (OLD, NEW)})
    shifted = "# header\n# more\n" + OLD
    (tmp_path / "mod.py").write_text(shifted)
    apply_diff(tmp_path, diff)
    assert (tmp_path / "mod.py").read_text() == "# header\n# more\n" + NEW


def test_mismatch_raises_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(OLD)
    (tmp_path / "b.py").write_text("something else\n")
    diff = make_diff({"a.py": (OLD, NEW), "b.py": ("other\n", "changed\n")})
    with pytest.raises(ApplyError, match="does not match"):
        apply_diff(tmp_path, diff)
    assert (tmp_path / "a.py").read_text() == OLD  # all or nothing


def test_missing_file_and_existing_new_file_are_apply_errors(tmp_path: Path) -> None:
    with pytest.raises(ApplyError, match="no such file"):
        apply_diff(tmp_path, make_diff({"a.py": ("x\n", "y\n")}))
    (tmp_path / "n.py").write_text("already\n")
    with pytest.raises(ApplyError, match="already exists"):
        apply_diff(tmp_path, make_diff({"n.py": (None, "new\n")}))


@pytest.mark.parametrize("path", ["../escape.py", "/etc/passwd", "a/../../b.py"])
def test_paths_outside_root_are_rejected(tmp_path: Path, path: str) -> None:
    diff = f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-x\n+y\n".replace("a//", "/")
    diff = diff.replace("b//", "/")
    with pytest.raises(MalformedEdit):
        apply_diff(tmp_path, diff)


def test_symlink_escape_is_rejected(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "t.py").write_text("x\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(MalformedEdit, match="outside"):
        apply_diff(root, make_diff({"link/t.py": ("x\n", "y\n")}))
    assert (outside / "t.py").read_text() == "x\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no file headers"),
        ("just some prose\n", "no file headers"),
        ("--- a/x.py\n+++ b/x.py\n@@ -1,3 +1,3 @@\n x\n-y\n", "shorter than its header"),
        ("--- a/x.py\n+++ b/x.py\n@@ bogus @@\n", "bad hunk header"),
        ("--- a/x.py\n+++ b/y.py\n@@ -1 +1 @@\n-x\n+y\n", "renames"),
        ("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-x\n+y\ngarbage\n", "unexpected line"),
    ],
)
def test_garbage_is_malformed_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(MalformedEdit, match=reason):
        parse_diff(text)


def test_changed_lines_and_size() -> None:
    diff = make_diff({"mod.py": (OLD, NEW), "new.py": (None, "a\nb\n")})
    assert changed_lines(diff) == {"mod.py": {5}, "new.py": {1, 2}}
    assert diff_size(diff) == 5  # -5 +5 -15 on mod.py, +a +b on new.py


def test_crlf_files_keep_their_line_endings(tmp_path: Path) -> None:
    old, new = "a\r\nb\r\nc\r\n", "a\r\nB\r\nc\r\n"
    (tmp_path / "w.py").write_bytes(old.encode())
    apply_diff(tmp_path, make_diff({"w.py": (old, new)}))
    assert (tmp_path / "w.py").read_bytes() == new.encode()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_apply_accepts_our_diffs(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(OLD)
    (tmp_path / "tail.py").write_text("x\ny")
    diff = make_diff({"mod.py": (OLD, NEW), "tail.py": ("x\ny", "x\nz\n"), "new.py": (None, "n\n")})
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "apply", "-"], cwd=tmp_path, input=diff.encode(), check=True)
    assert (tmp_path / "mod.py").read_text() == NEW
    assert (tmp_path / "tail.py").read_text() == "x\nz\n"
    assert (tmp_path / "new.py").read_text() == "n\n"


# ------------------------------------------------------------------- hypothesis

# A small alphabet makes repeated, similar lines (the hard case for context matching).
_LINE = st.text(alphabet="ab \t\r\x0c\u2028é", max_size=4)
_TEXT = st.lists(_LINE, max_size=30).map("\n".join) | st.text(max_size=200)


@settings(max_examples=1000, deadline=None)
@given(old=_TEXT, new=_TEXT)
def test_round_trip_make_then_apply(old: str, new: str) -> None:
    diff = make_diff({"f.py": (old, new)})
    if old == new:
        assert diff == ""
        return
    [patch] = parse_diff(diff)
    assert apply_diff_to_text(old, patch) == new
    assert diff_size(diff) >= 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=_TEXT, new=_TEXT)
def test_round_trip_on_disk(old: str, new: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "f.py").write_bytes(old.encode())
        diff = make_diff({"f.py": (old, new)})
        if diff:
            assert apply_diff(root, diff) == ["f.py"]
        assert (root / "f.py").read_bytes() == new.encode()


def _garble(diff: str, ops: list[tuple[int, int, str]]) -> str:
    lines = diff.split("\n")
    for kind, at, junk in ops:
        if not lines:
            break
        i = at % len(lines)
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines.insert(i, junk)
        elif kind == 2:
            lines[i] = lines[i][: at % (len(lines[i]) + 1)] + junk
        else:
            lines = lines[:i]
    return "\n".join(lines)


_OPS = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.integers(0, 10_000),
        st.sampled_from(
            [
                "",
                "@@ -1 +1 @@",
                "+",
                "-x",
                " ",
                "\\ No newline",
                "--- a/../x",
                "+++ /dev/null",
                "diff --git a/q b/q",
                "@@ -0,0 +99999,3 @@",
            ]
        )
        | st.text(max_size=8),
    ),
    max_size=6,
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=_TEXT, new=_TEXT, ops=_OPS, raw=st.booleans(), noise=st.text(max_size=80))
def test_garbled_diffs_fail_only_with_edit_errors(
    old: str, new: str, ops: list[tuple[int, int, str]], raw: bool, noise: str
) -> None:
    diff = noise if raw else _garble(make_diff({"f.py": (old, new)}), ops)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "f.py").write_bytes(old.encode())
        try:
            patches = parse_diff(diff)
            for patch in patches:
                apply_diff_to_text(old, patch)
            changed = apply_diff(root, diff)
            changed_lines(diff)
        except EditError:
            assert (root / "f.py").read_bytes() == old.encode()  # untouched on failure
            return
        assert isinstance(changed, list)
        assert all(not Path(p).is_absolute() and ".." not in Path(p).parts for p in changed)
