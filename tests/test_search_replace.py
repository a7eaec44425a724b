"""SEARCH/REPLACE blocks: parsing, tolerant application, diffs; fuzzed with hypothesis."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchsmith.errors import ApplyError, EditError, MalformedEdit
from patchsmith.tasks.edits.diff import apply_diff
from patchsmith.tasks.edits.search_replace import (
    EditBlock,
    apply_blocks,
    blocks_to_diff,
    parse_blocks,
)

SOURCE = """def area(w, h):
    if w < 0:
        raise ValueError("w")
    return w * h


def perimeter(w, h):
    return 2 * (w + h)
"""

REPLY = """I'll fix the comparison.

geom.py
```python
<<<<<<< SEARCH
    if w < 0:
=======
    if w <= 0:
>>>>>>> REPLACE
```

<<<<<<< SEARCH
    return 2 * (w + h)
=======
    return 2 * w + 2 * h
>>>>>>> REPLACE
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "geom.py").write_text(SOURCE)
    return tmp_path


def test_parse_blocks_with_fences_and_a_reused_path() -> None:
    blocks = parse_blocks(REPLY)
    assert blocks == [
        EditBlock("geom.py", "    if w < 0:\n", "    if w <= 0:\n"),
        EditBlock("geom.py", "    return 2 * (w + h)\n", "    return 2 * w + 2 * h\n"),
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("no edits here", "no SEARCH/REPLACE blocks"),
        ("<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n", "no file path"),
        ("Here is my fix:\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n", "no file path"),
        ("a.py\n<<<<<<< SEARCH\nx\n=======\ny\n", "unterminated"),
        ("a.py\n<<<<<<< SEARCH\nx\n>>>>>>> REPLACE\n", "divider"),
        ("a.py\n<<<<<<< SEARCH\n<<<<<<< SEARCH\n", "inside another block"),
        ("a.py\n>>>>>>> REPLACE\n", "without a SEARCH"),
        ("../x.py\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n", "inside the repository"),
    ],
)
def test_malformed_blocks_say_why(text: str, reason: str) -> None:
    with pytest.raises(MalformedEdit, match=reason):
        parse_blocks(text)


def test_apply_blocks_returns_old_and_new_without_writing(repo: Path) -> None:
    changes = apply_blocks(repo, parse_blocks(REPLY))
    old, new = changes["geom.py"]
    assert old == SOURCE
    assert "if w <= 0:" in new and "return 2 * w + 2 * h" in new
    assert (repo / "geom.py").read_text() == SOURCE


def test_whitespace_insensitive_match_keeps_the_file_indentation(repo: Path) -> None:
    block = EditBlock("geom.py", "if w < 0:\n  raise ValueError('w')\n", "if w <= 0:\n  pass\n")
    with pytest.raises(ApplyError):  # the quote style differs: not the same line
        apply_blocks(repo, [block])
    block = EditBlock(
        "geom.py", 'if  w < 0:\n    raise ValueError("w")\n', "if w <= 0:\n    return 0\n"
    )
    _, new = apply_blocks(repo, [block])["geom.py"]
    assert "    if w <= 0:\n        return 0\n    return w * h\n" in new


def test_ambiguous_and_missing_search_are_apply_errors(repo: Path) -> None:
    (repo / "dup.py").write_text("x = 1\ny = 2\nx = 1\n")
    with pytest.raises(ApplyError, match="matches 2 places"):
        apply_blocks(repo, [EditBlock("dup.py", "x = 1\n", "x = 3\n")])
    with pytest.raises(ApplyError, match="matches 2 places"):  # also when fuzzy
        apply_blocks(repo, [EditBlock("dup.py", "  x  =  1\n", "x = 3\n")])
    with pytest.raises(ApplyError, match="not found"):
        apply_blocks(repo, [EditBlock("geom.py", "return w + h\n", "return 0\n")])
    with pytest.raises(ApplyError, match="no such file"):
        apply_blocks(repo, [EditBlock("nope.py", "x\n", "y\n")])
    with pytest.raises(ApplyError, match="empty SEARCH"):
        apply_blocks(repo, [EditBlock("geom.py", "", "x\n")])


def test_empty_search_creates_a_file_and_the_diff_applies(repo: Path) -> None:
    text = "pkg/new.py\n<<<<<<< SEARCH\n=======\nVALUE = 1\n>>>>>>> REPLACE\n" + REPLY
    changes = apply_blocks(repo, parse_blocks(text))
    assert changes["pkg/new.py"] == (None, "VALUE = 1\n")
    diff = blocks_to_diff(repo, text)
    assert sorted(apply_diff(repo, diff)) == ["geom.py", "pkg/new.py"]
    assert (repo / "pkg/new.py").read_text() == "VALUE = 1\n"
    assert changes["geom.py"][1] == (repo / "geom.py").read_text()


def test_crlf_and_missing_final_newline_are_preserved(tmp_path: Path) -> None:
    (tmp_path / "w.py").write_bytes(b"a = 1\r\nb = 2")
    _, new = apply_blocks(tmp_path, [EditBlock("w.py", "b = 2\n", "b = 3\n")])["w.py"]
    assert new == "a = 1\r\nb = 3"
    _, new = apply_blocks(tmp_path, [EditBlock("w.py", "a = 1\n", "a = 0\n")])["w.py"]
    assert new == "a = 0\r\nb = 2"


def test_a_no_op_edit_is_malformed(repo: Path) -> None:
    with pytest.raises(MalformedEdit, match="changes nothing"):
        blocks_to_diff(
            repo,
            "geom.py\n<<<<<<< SEARCH\n    if w < 0:\n=======\n    if w < 0:\n>>>>>>> REPLACE\n",
        )


# ------------------------------------------------------------------- hypothesis

_LINES = st.lists(st.text(alphabet="ab =:\t()é", min_size=1, max_size=6), min_size=1, max_size=15)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=_LINES, data=st.data())
def test_round_trip_unique_search_is_replaced(lines: list[str], data: st.DataObject) -> None:
    numbered = [f"{i}:{ln}\n" for i, ln in enumerate(lines)]  # unique lines
    i = data.draw(st.integers(0, len(numbered) - 1))
    j = data.draw(st.integers(i + 1, len(numbered)))
    replace = data.draw(st.lists(st.text(alphabet="xyz ", max_size=5), max_size=3))
    new_part = "".join(r + "\n" for r in replace)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "f.py").write_text("".join(numbered))
        block = EditBlock("f.py", "".join(numbered[i:j]), new_part)
        _, new = apply_blocks(root, [block])["f.py"]
    assert new == "".join(numbered[:i]) + new_part + "".join(numbered[j:])


_MARKERS = [
    "<<<<<<< SEARCH",
    "=======",
    ">>>>>>> REPLACE",
    "```",
    "```python",
    "f.py",
    "",
    "../f.py",
    "/abs.py",
    "x = 1",
    "    x = 1",
    "g.py:",
]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.sampled_from(_MARKERS) | st.text(max_size=10), max_size=14),
    noise=st.text(max_size=60),
    raw=st.booleans(),
)
def test_garbled_blocks_fail_only_with_edit_errors(parts: list[str], noise: str, raw: bool) -> None:
    text = noise if raw else "\n".join(parts)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "f.py").write_text("x = 1\ny = 2\n    x = 1\n")
        try:
            changes = apply_blocks(root, parse_blocks(text))
            diff = blocks_to_diff(root, text)
            apply_diff(root, diff)
        except EditError:
            return
        for path, (_, new) in changes.items():
            assert (root / path).read_text(encoding="utf-8") == new


def test_a_block_naming_a_missing_file_goes_to_the_one_shown_file_it_matches(
    tmp_path: Path,
) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "money.py").write_text("def fmt(x):\n    return f'{x:.2f}'\n")
    (tmp_path / "pkg" / "other.py").write_text("def g():\n    return 1\n")
    reply = "path/to/file.py\n<<<<<<< SEARCH\n    return f'{x:.2f}'\n=======\n    return f'{x:,.2f}'\n>>>>>>> REPLACE\n"  # noqa: E501
    shown = ["pkg/other.py", "pkg/money.py"]
    diff = blocks_to_diff(tmp_path, reply, shown)
    assert "+++ b/pkg/money.py" in diff and "{x:,.2f}" in diff
    with pytest.raises(ApplyError, match="no such file"):  # nothing shown: nothing guessed
        blocks_to_diff(tmp_path, reply)
    (tmp_path / "pkg" / "other.py").write_text("def fmt(x):\n    return f'{x:.2f}'\n")
    with pytest.raises(ApplyError, match="no such file"):  # two files match: no guess
        blocks_to_diff(tmp_path, reply, shown)


def test_listed_suspicious_lines_copied_into_search_are_read_as_the_code_they_quote(
    tmp_path: Path,
) -> None:
    """Qwen2.5-Coder-1.5B quoted the context's ranked-lines list instead of the file."""
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "money.py").write_text(
        "class Money:\n    def fmt(self):\n        return f'{self.amount:.2f}'\n"
    )
    reply = (
        "path/to/file.py\n<<<<<<< SEARCH\n"
        "inv/money.py:3 (score 0.93) return f'{self.amount:.2f}'\n"
        "=======\ninv/money.py:3 (score 0.93) return f'{self.amount:,.2f}'\n>>>>>>> REPLACE\n"
    )
    diff = blocks_to_diff(tmp_path, reply)
    assert "+++ b/inv/money.py" in diff
    assert "+        return f'{self.amount:,.2f}'" in diff  # the file's indentation kept
