"""A recipe goal's forbidden patterns: finding them and rewriting them, on syntax trees.

Matching uses ast-grep's Python binding (tree-sitter): a pattern is written as code with
``$X`` / ``$$$ARGS`` metavariables, so a recipe reads like the change it describes and
matches nodes, never text inside strings or comments. (libcst's matchers are Python
objects, not strings a campaign file can hold; its codemods remain a later option.) A
rewrite fills the pattern's metavariables into its template and adds the import lines the
recipe names, once per file, after the file's own imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping

from ast_grep_py import SgNode, SgRoot

from patchsmith.domain import Occurrence
from patchsmith.recipes import METAVAR, ForbidPattern, Goal

TEXT_CLIP = 120
REWRITE_PASSES = 4
"""Rewrite passes per pattern at most (a match nested inside another is reached next pass)."""


def _root(text: str) -> SgNode:
    return SgRoot(text, "python").root()


def find(text: str, path: str, patterns: Iterable[ForbidPattern]) -> list[Occurrence]:
    """Where ``patterns`` match in one file's text (by position)."""
    root = _root(text)
    out: list[Occurrence] = []
    seen: set[tuple[int, int]] = set()  # a node two patterns match counts once (the first)
    for forbid in patterns:
        for node in root.find_all(pattern=forbid.pattern):
            span = node.range()
            start = span.start
            if (start.index, span.end.index) in seen:
                continue
            seen.add((start.index, span.end.index))
            first = node.text().splitlines()[0] if node.text() else ""
            out.append(
                Occurrence(
                    path=path,
                    line=start.line + 1,
                    column=start.column,
                    pattern=forbid.pattern,
                    text=first[:TEXT_CLIP],
                )
            )
    return sorted(out, key=lambda o: (o.path, o.line, o.column, o.pattern))


def scan(texts: Mapping[str, str], goal: Goal) -> list[Occurrence]:
    """Occurrences of the goal's forbidden patterns over files (path → text)."""
    found: list[Occurrence] = []
    for path in sorted(texts):
        found.extend(find(texts[path], path, goal.forbid))
    return found


def _fill(template: str, node: SgNode) -> str:
    def value(name: str, multiple: bool) -> str:
        if not multiple:
            match = node.get_match(name)
            return "" if match is None else match.text()
        parts = node.get_multiple_matches(name)
        return "".join(p.text() + (" " if p.kind() == "," else "") for p in parts).strip()

    return METAVAR.sub(
        lambda m: value(m.group(1), True) if m.group(1) else value(m.group(2), False), template
    )


def _rewrite_once(text: str, forbid: ForbidPattern) -> str:
    assert forbid.rewrite is not None
    root = _root(text)
    edits = []
    end = -1
    nodes = root.find_all(pattern=forbid.pattern)
    for node in sorted(nodes, key=lambda n: n.range().start.index):
        span = node.range()
        if span.start.index < end:  # inside a match already rewritten: next pass
            continue
        end = span.end.index
        edits.append(node.replace(_fill(forbid.rewrite, node)))
    return root.commit_edits(edits) if edits else text


def rewrite(text: str, goal: Goal) -> str:
    """``text`` with every rewritable forbidden pattern rewritten (and its imports added);
    unchanged when nothing matched. Raises SyntaxError when the result does not parse."""
    needed: list[str] = []
    out = text
    for forbid in goal.forbid:
        if forbid.rewrite is None:
            continue
        for _ in range(REWRITE_PASSES):
            new = _rewrite_once(out, forbid)
            if new == out:
                break
            out = new
            needed.extend(i for i in forbid.imports if i not in needed)
    if out == text:
        return text
    out = add_imports(out, needed)
    ast.parse(out)
    return out


def _imported(statement: ast.stmt) -> set[tuple[str, str, str]]:
    """(module, name, alias) triples an import statement binds."""
    if isinstance(statement, ast.Import):
        return {("", a.name, a.asname or a.name) for a in statement.names}
    if isinstance(statement, ast.ImportFrom):
        module = "." * statement.level + (statement.module or "")
        return {(module, a.name, a.asname or a.name) for a in statement.names}
    return set()


def _merged(statement: ast.ImportFrom, extra: ast.ImportFrom) -> str:
    names = {(a.name, a.asname) for a in statement.names} | {
        (a.name, a.asname) for a in extra.names
    }
    aliases = [
        ast.alias(name=n, asname=a) for n, a in sorted(names, key=lambda p: (p[0], p[1] or ""))
    ]
    return ast.unparse(
        ast.ImportFrom(module=statement.module, names=aliases, level=statement.level)
    )


def add_imports(text: str, lines: Iterable[str]) -> str:
    """``text`` with each import line that it does not already have: merged into a
    one-line ``from`` import of the same module when there is one, else added after the
    module docstring, ``__future__`` imports and top-level imports."""
    tree = ast.parse(text)
    have: set[tuple[str, str, str]] = set()
    froms: dict[tuple[str | None, int], ast.ImportFrom] = {}
    after = 0  # insert after this line (1-based end line)
    for index, statement in enumerate(tree.body):
        docstring = (
            index == 0
            and isinstance(statement, ast.Expr)
            and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str)
        )
        if isinstance(statement, ast.Import | ast.ImportFrom) or docstring:
            have |= _imported(statement)
            after = statement.end_lineno or after
            if isinstance(statement, ast.ImportFrom) and statement.lineno == statement.end_lineno:
                froms.setdefault((statement.module, statement.level), statement)
        else:
            break
    source = text.splitlines(keepends=True)
    if source and not source[-1].endswith("\n"):
        source[-1] += "\n"
    insert: list[str] = []
    for line in lines:
        node = ast.parse(line).body[0]
        if _imported(node) <= have:
            continue
        have |= _imported(node)
        target = froms.get((node.module, node.level)) if isinstance(node, ast.ImportFrom) else None
        row = source[target.lineno - 1] if target is not None else ""
        if target is not None and isinstance(node, ast.ImportFrom) and "#" not in row:
            merged = _merged(target, node)
            source[target.lineno - 1] = row[: target.col_offset] + merged + "\n"
            done = ast.parse(merged).body[0]
            assert isinstance(done, ast.ImportFrom)
            done.lineno = done.end_lineno = target.lineno  # where it stands in ``text``
            done.col_offset = target.col_offset
            froms[(node.module, node.level)] = done
            continue
        insert.append(f"{line}\n")
    return "".join(source[:after] + insert + source[after:])


def _used_names(tree: ast.Module) -> set[str]:
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    for node in ast.walk(tree):  # names listed in __all__ count as used
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            names |= {
                e.value for e in ast.walk(node.value)
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            }  # fmt: skip
    return names


def drop_unused_imports(before: str, after: str) -> str:
    """``after`` without the top-level imports that the change itself left unused (used in
    ``before``, not in ``after``); imports unused before are left alone. Only one-line
    ``import``/``from`` statements are edited; a statement left empty is removed."""
    try:
        old, new = ast.parse(before), ast.parse(after)
    except SyntaxError:
        return after
    dropped = _used_names(old) - _used_names(new)
    if not dropped:
        return after
    lines = after.splitlines(keepends=True)
    for statement in reversed(new.body):
        if not isinstance(statement, ast.Import | ast.ImportFrom):
            continue
        if statement.lineno != statement.end_lineno or "#" in lines[statement.lineno - 1]:
            continue
        keep = [a for a in statement.names if (a.asname or a.name.split(".")[0]) not in dropped]
        if len(keep) == len(statement.names):
            continue
        row = statement.lineno - 1
        if not keep:
            del lines[row]
            continue
        statement.names = keep
        indent = lines[row][: statement.col_offset]
        lines[row] = indent + ast.unparse(statement) + "\n"
    return "".join(lines)


def rewritable(goal: Goal) -> bool:
    return any(f.rewrite is not None for f in goal.forbid)
