"""Which names a function can see at a line: its parameters and earlier locals."""

from __future__ import annotations

import ast
from dataclasses import dataclass

_NEW_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_NEVER = frozenset({"self", "cls"})


@dataclass(frozen=True)
class Scope:
    """A function's parameters and its ``(line, name)`` local assignments, in order."""

    params: tuple[str, ...]
    assigned: tuple[tuple[int, str], ...]
    inner: tuple[str, ...] = ()
    """Names bound in nested comprehensions (offered only ``anywhere``)."""

    def alternatives(
        self, name: str, line: int, limit: int | None = 3, anywhere: bool = False
    ) -> list[str]:
        """Up to ``limit`` other names in scope at ``line``: latest locals, then params.

        ``anywhere`` also offers locals assigned after ``line`` (and in comprehensions).
        """
        latest: dict[str, int] = {}
        for at, local in self.assigned:
            if at < line or anywhere:
                latest[local] = at if at < line else -at
        pool = sorted(latest, key=lambda n: (-latest[n], n))
        pool += [p for p in self.params if p not in latest]
        pool += [n for n in self.inner if anywhere and n not in latest and n not in pool]
        names = [n for n in pool if n != name and n not in _NEVER]
        return names if limit is None else names[:limit]


def function_scope(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Scope:
    """Parameters and local assignments of ``node`` (nested scopes excluded)."""
    args = node.args
    params = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    params += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    assigned: list[tuple[int, str]] = []
    inner: list[str] = []
    stack: list[tuple[ast.AST, bool]] = [(n, False) for n in node.body]
    while stack:
        current, nested = stack.pop()
        if isinstance(current, ast.Name) and isinstance(current.ctx, ast.Store):
            if nested:
                inner.append(current.id)
            else:
                assigned.append((current.lineno, current.id))
        elif isinstance(current, ast.ExceptHandler) and current.name and not nested:
            assigned.append((current.lineno, current.name))
        if isinstance(current, _NEW_SCOPES) and not isinstance(current, _COMPREHENSIONS):
            continue
        nested = nested or isinstance(current, _COMPREHENSIONS)
        stack.extend((child, nested) for child in ast.iter_child_nodes(current))
    return Scope(
        tuple(dict.fromkeys(params)), tuple(sorted(assigned)), tuple(dict.fromkeys(sorted(inner)))
    )
