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
_NEVER = frozenset({"self", "cls"})


@dataclass(frozen=True)
class Scope:
    """A function's parameters and its ``(line, name)`` local assignments, in order."""

    params: tuple[str, ...]
    assigned: tuple[tuple[int, str], ...]

    def alternatives(self, name: str, line: int, limit: int = 3) -> list[str]:
        """Up to ``limit`` other names in scope at ``line``: latest locals, then params."""
        latest: dict[str, int] = {}
        for at, local in self.assigned:
            if at < line:
                latest[local] = at
        pool = sorted(latest, key=lambda n: (-latest[n], n))
        pool += [p for p in self.params if p not in latest]
        return [n for n in pool if n != name and n not in _NEVER][:limit]


def function_scope(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Scope:
    """Parameters and local assignments of ``node`` (nested scopes excluded)."""
    args = node.args
    params = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    params += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    assigned: list[tuple[int, str]] = []
    stack: list[ast.AST] = list(node.body)
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Name) and isinstance(current.ctx, ast.Store):
            assigned.append((current.lineno, current.id))
        elif isinstance(current, ast.ExceptHandler) and current.name:
            assigned.append((current.lineno, current.name))
        if isinstance(current, _NEW_SCOPES):
            continue
        stack.extend(ast.iter_child_nodes(current))
    return Scope(tuple(dict.fromkeys(params)), tuple(sorted(assigned)))
