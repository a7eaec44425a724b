"""Whole-function edits: the model writes the corrected function(s); we put them in place.

Small models rarely copy SEARCH text exactly (Qwen2.5-Coder-1.5B on the examples: none of
its SEARCH/REPLACE replies applied), but they write a whole function well. A reply in this
format is Python code (fenced or not) holding one or more ``def``/``async def`` (at any
indentation: a method is written like a function) and, optionally, ``import`` lines first.
Each function replaces the one function of the same name in the files the prompt showed
(the only one with that name across them; otherwise the reply is refused as ambiguous),
re-indented to where it goes, decorators included. New imports go after the file's last
top-level import. The result is a span edit of the original text, as every candidate is.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path

from patchsmith.errors import ApplyError, MalformedEdit
from patchsmith.tasks.edits.diff import make_diff, read_text
from patchsmith.tasks.edits.parse import check_relpath, resolve_inside

_FENCED = re.compile(r"```[a-zA-Z0-9_+-]*[ \t]*\n(.*?)(?:```|\Z)", re.S)
Function = ast.FunctionDef | ast.AsyncFunctionDef


def reply_code(text: str) -> str:
    """The Python a reply holds: its fenced blocks joined, else the whole text."""
    blocks = _FENCED.findall(text)
    return "\n".join(blocks) if blocks else text


def cut_off(text: str, finish_reason: str) -> bool:
    """Whether a reply's code ends where the model was stopped: it hit the token limit
    with its last fenced block still open (or with no fences at all)."""
    if finish_reason != "length":
        return False
    fences = sum(1 for line in text.splitlines() if line.lstrip().startswith("```"))
    return fences == 0 or fences % 2 == 1


def _parse(code: str, truncated: bool) -> tuple[ast.Module, str]:
    """The parsed reply and the code it was parsed from. A reply cut off by the token limit
    (small models often go on rewriting functions they need not have written) keeps its
    complete leading statements: its last top-level statement may be unfinished even
    when it parses, so it is dropped, and so is anything after a syntax error; the
    longest such prefix that parses is used, if it holds a function."""
    error = "the reply was cut off before its first function ended"
    if not truncated:
        try:
            return ast.parse(code), code
        except SyntaxError as exc:
            error = f"the reply is not Python (line {exc.lineno}: {exc.msg})"
    lines = code.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line[:1].strip() and i > 0]
    for cut in reversed(starts):
        prefix = "".join(lines[:cut])
        try:
            tree = ast.parse(prefix)
        except SyntaxError:
            continue
        if _defs(tree):
            return tree, prefix
    raise MalformedEdit(error)


def _start(node: Function) -> int:
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def _defs(tree: ast.AST) -> list[Function]:
    return [n for n in ast.walk(tree) if isinstance(n, Function)]


def _outermost(tree: ast.Module) -> list[Function]:
    """The reply's functions that are not inside another of its functions."""
    inner = {id(c) for f in _defs(tree) for c in _defs(f) if c is not f}
    return [f for f in _defs(tree) if id(f) not in inner]


def _segment(lines: list[str], node: Function) -> str:
    return "".join(lines[_start(node) - 1 : node.end_lineno])


def _place(name: str, files: dict[str, tuple[str, ast.Module]]) -> tuple[str, Function] | None:
    """Where the function ``name`` goes: None if no file shown has it."""
    hits = [(path, node) for path, (_, tree) in files.items()
            for node in _defs(tree) if node.name == name]  # fmt: skip
    if not hits:
        return None
    if len(hits) > 1:
        where = ", ".join(f"{p}:{n.lineno}" for p, n in hits)
        raise ApplyError(f"function {name!r} is defined {len(hits)} times ({where}): ambiguous")
    return hits[0]


def _imports(tree: ast.Module, code_lines: list[str]) -> list[str]:
    return [
        "".join(code_lines[n.lineno - 1 : n.end_lineno]).strip() + "\n"
        for n in tree.body
        if isinstance(n, ast.Import | ast.ImportFrom)
    ]


def _bound(node: ast.stmt) -> set[str]:
    """The names an import binds ("*" for a star import)."""
    if not isinstance(node, ast.Import | ast.ImportFrom):
        return set()
    return {(a.asname or a.name).split(".")[0] for a in node.names}


def _with_imports(text: str, tree: ast.Module, new: list[str]) -> str:
    """``text`` with the reply's imports that bind a name the file does not yet import.
    Small models repeat the file's imports in another form (``from datetime import date``
    next to ``from datetime import date, timedelta``) or add ``from typing import *``:
    neither is added (a star import never is)."""
    have = set().union(*(_bound(n) for n in tree.body))
    missing = [
        line for line in dict.fromkeys(new)
        if "*" not in (names := set().union(*(_bound(n) for n in ast.parse(line).body)))
        and names - have
    ]  # fmt: skip
    if not missing:
        return text
    lines = text.splitlines(keepends=True)
    tops = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    at = max((n.end_lineno or n.lineno) for n in tops) if tops else _after_docstring(tree)
    return "".join(lines[:at] + missing + lines[at:])


def _after_docstring(tree: ast.Module) -> int:
    first = tree.body[0] if tree.body else None
    doc = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant)
    return (first.end_lineno or 0) if doc and first is not None else 0


def functions_to_diff(
    root: Path, text: str, likely: Sequence[str], *, truncated: bool = False
) -> str:
    """The diff that puts the reply's functions in place of their namesakes in ``likely``.

    ``truncated``: the model was stopped mid-reply (``cut_off``). A function with no
    namesake in the files (a helper the model invented, a method of a class it rewrote)
    is skipped when others apply; alone, it is refused with the files it was looked for in.
    """
    tree, code = _parse(textwrap.dedent(reply_code(text)), truncated)
    code_lines = code.splitlines(keepends=True)
    functions = _outermost(tree)
    if not functions:
        raise MalformedEdit("the reply has no function definition")
    files: dict[str, tuple[str, ast.Module]] = {}
    for path in dict.fromkeys(likely):
        source = read_text(resolve_inside(root, check_relpath(path)), path)
        if source is None:
            continue
        try:
            files[path] = (source, ast.parse(source))
        except SyntaxError:
            continue
    edits: dict[str, list[tuple[int, int, str]]] = {}
    placed: set[int] = set()
    unknown: list[str] = []
    for node in functions:
        found = _place(node.name, files)
        if found is None:
            unknown.append(node.name)
            continue
        path, target = found
        if id(target) in placed:
            raise ApplyError(f"function {node.name!r} is written twice in the reply")
        placed.add(id(target))
        source = files[path][0]
        lines = source.splitlines(keepends=True)
        indent = re.match(r"[ \t]*", lines[_start(target) - 1]).group(0)  # type: ignore[union-attr]
        body = textwrap.indent(textwrap.dedent(_segment(code_lines, node)), indent)
        if not body.endswith("\n"):
            body += "\n"
        edits.setdefault(path, []).append(
            (_start(target), target.end_lineno or target.lineno, body)
        )
    if not edits:
        shown = ", ".join(files) or "none"
        raise ApplyError(f"function {unknown[0]!r} is in none of the files shown ({shown})")
    imports = _imports(tree, code_lines)
    changes: dict[str, tuple[str | None, str | None]] = {}
    for path, spans in edits.items():
        source, parsed = files[path]
        lines = source.splitlines(keepends=True)
        for first, last, body in sorted(spans, reverse=True):
            lines[first - 1 : last] = [body]
        changes[path] = (source, _with_imports("".join(lines), parsed, imports))
    diff = make_diff(changes)
    if not diff:
        raise MalformedEdit("the edit changes nothing")
    return diff
