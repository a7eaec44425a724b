"""Exact source positions for ``ast`` nodes, and cheap syntax checks of edited text.

``ast`` gives column offsets in UTF-8 *bytes*; :class:`SourceText` turns them into
``str`` offsets, so a line with ``é`` or ``→`` before a node still maps correctly.
Edits are ``(start, end, replacement)`` spans on the original text, so formatting and
comments outside the spans stay as they were.
"""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Iterable, Sequence

Edit = tuple[int, int, str]

_NEWLINE = re.compile(r"\r\n|\r|\n")
_SPACE = " \t\f\r\n\\"

# Nodes whose text can stand anywhere an expression can, without parentheses.
ATOMS = (
    ast.Name,
    ast.Constant,
    ast.Attribute,
    ast.Subscript,
    ast.Call,
    ast.List,
    ast.Dict,
    ast.Set,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.JoinedStr,
)


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """Apply non-overlapping edits (offsets on ``text``) in one pass."""
    out: list[str] = []
    pos = 0
    for start, end, replacement in sorted(edits):
        out.append(text[pos:start])
        out.append(replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out)


class SourceText:
    """A module's text plus its tree, with byte-to-character position mapping."""

    def __init__(self, source: str, tree: ast.Module | None = None) -> None:
        self.source = source
        self.tree = tree if tree is not None else ast.parse(source)
        self.line_starts = [0] + [m.end() for m in _NEWLINE.finditer(source)]
        self._stmts: list[tuple[int, int, ast.stmt]] | None = None

    def offset(self, lineno: int, col: int) -> int:
        """Character offset of ``(lineno, byte column)``."""
        start = self.line_starts[lineno - 1]
        end = self.line_starts[lineno] if lineno < len(self.line_starts) else len(self.source)
        line = self.source[start:end]
        if line.isascii():
            return start + col
        return start + len(line.encode("utf-8")[:col].decode("utf-8", errors="ignore"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        """Character ``(start, end)`` of a node with positions."""
        return (
            self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self.offset(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )

    def text(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.source[start:end]

    def line_of(self, offset: int) -> int:
        """1-based line number of a character offset."""
        return bisect.bisect_right(self.line_starts, offset)

    def operand(self, node: ast.AST, limit: tuple[int, int]) -> tuple[int, int]:
        """Span of ``node`` widened over its own grouping parentheses, within ``limit``."""
        start, end = self.span(node)
        src = self.source
        while True:
            i, j = start - 1, end
            while i >= limit[0] and src[i] in _SPACE:
                i -= 1
            while j < limit[1] and src[j] in _SPACE:
                j += 1
            if i >= limit[0] and j < limit[1] and src[i] == "(" and src[j] == ")":
                start, end = i, j + 1
            else:
                return start, end

    def wrapped(self, node: ast.AST, span: tuple[int, int]) -> str:
        """Text of ``span`` (from :meth:`operand`), parenthesized unless it is safe bare."""
        text = self.source[span[0] : span[1]]
        if isinstance(node, ATOMS) or (text.startswith("(") and text.endswith(")")):
            return text
        return f"({text})"

    # ------------------------------------------------------------------ checks

    def _statements(self) -> list[tuple[int, int, ast.stmt]]:
        if self._stmts is None:
            self._stmts = sorted(
                ((*self.span(n), n) for n in ast.walk(self.tree) if isinstance(n, ast.stmt)),
                key=lambda t: (t[0], t[1]),
            )
        return self._stmts

    def _enclosing(self, start: int, end: int) -> ast.stmt | None:
        best: tuple[int, int, ast.stmt] | None = None
        stmts = self._statements()
        for s, e, node in stmts[: bisect.bisect_right(stmts, start, key=lambda t: t[0])]:
            if s <= start and end <= e and (best is None or e - s < best[1] - best[0]):
                best = (s, e, node)
        return best[2] if best else None

    def parses_with(self, edits: Sequence[Edit]) -> bool:
        """Whether the text still parses after ``edits``.

        Only the innermost statement around the edits is re-parsed (syntax errors are
        local to a statement), so checking hundreds of mutants of a long file is cheap.
        """
        start, end = min(e[0] for e in edits), max(e[1] for e in edits)
        stmt = self._enclosing(start, end)
        if stmt is None:
            return _parses(apply_edits(self.source, edits))
        s_start, s_end = self.span(stmt)
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            # Decorators sit above the ``def`` line; parse from the first of them.
            for dec in stmt.decorator_list:
                s_start = min(s_start, self.line_starts[dec.lineno - 1])
        line_start = self.line_starts[self.line_of(s_start) - 1]
        prefix = self.source[line_start:s_start]
        if prefix.strip():  # a simple statement after ``;`` on a shared line
            prefix = " " * len(prefix)
        local = [(a - s_start, b - s_start, r) for a, b, r in edits]
        segment = prefix + apply_edits(self.source[s_start:s_end], local)
        if segment.lstrip().startswith("elif"):
            # An ``elif`` branch is an If node whose text starts at ``elif``: parse it as ``if``.
            segment = segment.replace("elif", "if", 1)
        if segment[:1].isspace():
            segment = "if 1:\n" + segment
        return _parses(segment)


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True
