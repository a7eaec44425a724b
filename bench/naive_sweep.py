"""The brute-force baseline tier 0 must beat: every single mutation of one whole file.

No localization and no ranking: mutants come in ``ast.walk`` order of the file, each is
the whole file re-unparsed, and each runs the test command in a bare subprocess (no
sandbox) until one exits 0. Competent, not crippled: broad operators, identical mutants
dropped, the original skipped.

    python bench/naive_sweep.py PROJECT main.py --budget 60 -- python test.py
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_GROUPS: list[tuple[type, ...]] = [
    (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq),
    (ast.Is, ast.IsNot),
    (ast.In, ast.NotIn),
    (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow),
    (ast.BitAnd, ast.BitOr, ast.BitXor, ast.LShift, ast.RShift),
]
_CALLS = {
    "min": ["max"], "max": ["min"], "any": ["all"], "all": ["any"], "floor": ["ceil"],
    "ceil": ["floor"], "strip": ["lstrip", "rstrip"], "lstrip": ["strip", "rstrip"],
    "rstrip": ["strip", "lstrip"], "append": ["extend"], "extend": ["append"],
    "startswith": ["endswith"], "endswith": ["startswith"], "find": ["rfind"],
    "rfind": ["find"], "index": ["rindex"], "rindex": ["index"], "split": ["rsplit"],
    "rsplit": ["split"], "lower": ["upper"], "upper": ["lower"],
}  # fmt: skip


def _others(op: ast.AST) -> list[ast.AST]:
    for group in _GROUPS:
        if type(op) in group:
            return [cls() for cls in group if cls is not type(op)]
    return []


def _plus_minus(e: ast.expr) -> list[ast.expr]:
    return [ast.BinOp(copy.deepcopy(e), o(), ast.Constant(1)) for o in (ast.Add, ast.Sub)]


def _scopes(tree: ast.Module) -> dict[int, list[str]]:
    """id(node) -> the names of its innermost enclosing function (params + stores)."""
    out: dict[int, list[str]] = {}
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            a = fn.args
            names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
            names += [n.id for n in ast.walk(fn) if isinstance(n, ast.Name)
                      and isinstance(n.ctx, ast.Store)]  # fmt: skip
            names = [n for n in dict.fromkeys(names) if n not in ("self", "cls")]
            for node in ast.walk(fn):
                out[id(node)] = names  # inner functions overwrite: innermost wins
    return out


def _edits(node: ast.AST, parent_call: set[int], scope: list[str], attrs: list[str]) -> Iterator[
    tuple[str, str, object]
]:  # fmt: skip
    """(description, field, new value) for one node: set ``node.field = value``."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            for new in _others(op):
                yield f"compare {type(op).__name__}->{type(new).__name__}", f"ops[{i}]", new
        if len(node.ops) == 1:
            yield "swap compare operands", "swap", None
    if isinstance(node, ast.BinOp | ast.AugAssign):
        for new in _others(node.op):
            yield f"op {type(node.op).__name__}->{type(new).__name__}", "op", new
        if isinstance(node, ast.BinOp):
            yield "swap operands", "swap", None
    if isinstance(node, ast.BoolOp):
        yield "and<->or", "op", ast.Or() if isinstance(node.op, ast.And) else ast.And()
        for i in range(len(node.values)):
            yield f"drop operand {i}", "drop", i
    if isinstance(node, ast.If | ast.While | ast.IfExp | ast.Assert):
        yield "negate condition", "test", ast.UnaryOp(ast.Not(), copy.deepcopy(node.test))
        if not isinstance(node, ast.Assert):
            yield "condition True", "test", ast.Constant(True)
            yield "condition False", "test", ast.Constant(False)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        yield "drop unary", "replace", node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int:
        for d in (1, -1):
            yield f"constant {node.value}{d:+d}", "value", node.value + d
    if isinstance(node, ast.Constant) and type(node.value) is bool:
        yield "flip bool", "value", not node.value
    if (
        isinstance(node, ast.Name)
        and isinstance(node.ctx, ast.Load)
        and id(node) not in parent_call
    ):
        for other in scope:
            if other != node.id:
                yield f"name {node.id}->{other}", "id", other
    if isinstance(node, ast.Attribute) and id(node) not in parent_call:
        for other in attrs:
            if other != node.attr:
                yield f"attr {node.attr}->{other}", "attr", other
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        for other in _CALLS.get(name or "", []):
            yield f"call {name}->{other}", "callname", other
        args = node.args
        if not any(isinstance(a, ast.Starred) for a in args):
            for i in range(len(args) - 1):
                yield f"swap args {i},{i + 1}", "swapargs", i
        if isinstance(func, ast.Name) and func.id == "range":
            for i, arg in enumerate(args[:2]):
                if not isinstance(arg, ast.Constant):
                    for new in _plus_minus(arg):
                        yield f"range arg {i} +-1", f"args[{i}]", new
    if isinstance(node, ast.Subscript):
        s = node.slice
        if isinstance(s, ast.Slice):
            for bound in ("lower", "upper"):
                b = getattr(s, bound)
                if b is not None and not isinstance(b, ast.Constant):
                    for new in _plus_minus(b):
                        yield f"slice {bound} +-1", f"slice.{bound}", new
        elif not isinstance(s, ast.Tuple | ast.Constant):
            for new in _plus_minus(s):
                yield "index +-1", "slice", new
    if isinstance(node, ast.Break):
        yield "break->continue", "replace", ast.Continue()
    if isinstance(node, ast.Continue):
        yield "continue->break", "replace", ast.Break()


def _apply(node: ast.AST, field: str, value: object) -> ast.AST | None:
    """A changed copy of ``node`` (None when the edit does not apply)."""
    new = copy.deepcopy(node)
    if field == "replace":
        return copy.deepcopy(value)  # type: ignore[arg-type]
    if field == "swap":
        if isinstance(new, ast.Compare):
            new.left, new.comparators[0] = new.comparators[0], new.left
        else:
            new.left, new.right = new.right, new.left  # type: ignore[attr-defined]
    elif field == "drop":
        values = [v for i, v in enumerate(new.values) if i != value]  # type: ignore[attr-defined]
        if len(values) == 1:
            return values[0]
        new.values = values  # type: ignore[attr-defined]
    elif field == "callname":
        if isinstance(new.func, ast.Name):  # type: ignore[attr-defined]
            new.func.id = value  # type: ignore[attr-defined]
        else:
            new.func.attr = value  # type: ignore[attr-defined]
    elif field == "swapargs":
        i = int(value)  # type: ignore[call-overload]
        a = new.args  # type: ignore[attr-defined]
        a[i], a[i + 1] = a[i + 1], a[i]
    elif field.startswith(("ops[", "args[")):
        name, index = field[:-1].split("[")
        getattr(new, name)[int(index)] = value
    elif field.startswith("slice."):
        setattr(new.slice, field[6:], value)  # type: ignore[attr-defined]
    else:
        setattr(new, field, value)
    return new


class _Swap(ast.NodeTransformer):
    def __init__(self, target: ast.AST, new: ast.AST) -> None:
        self.target, self.new = target, new

    def visit(self, node: ast.AST) -> ast.AST:
        if node is self.target:
            return self.new
        return super().visit(node)


def naive_mutants(source: str) -> list[tuple[str, str]]:
    """(description, mutated file) for every single-node mutation, in ast.walk order."""
    tree = ast.parse(source)
    original = ast.unparse(tree)
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    attrs = sorted({n.attr for n in ast.walk(tree)
                    if isinstance(n, ast.Attribute) and id(n) not in calls})  # fmt: skip
    scopes = _scopes(tree)
    seen, out = {original}, []
    for index, node in enumerate(list(ast.walk(tree))):
        for description, field, value in list(_edits(node, calls, scopes.get(id(node), []), attrs)):
            new = _apply(node, field, value)
            if new is None:
                continue
            clone = copy.deepcopy(tree)
            target = list(ast.walk(clone))[index]
            text = ast.unparse(_Swap(target, new).visit(clone))
            if text not in seen:
                seen.add(text)
                out.append((f"line {getattr(node, 'lineno', 0)}: {description}", text))
    return out


@dataclass
class SweepResult:
    resolved: bool
    candidates: int
    first_fix: int | None
    wall_s: float
    fix: str | None


def sweep(project: Path, target: str, test_cmd: list[str], budget_s: float,
          run_timeout_s: float = 10.0) -> SweepResult:  # fmt: skip
    """Run every mutant of ``target`` until the test command passes or the budget is spent."""
    t0 = time.monotonic()
    source = (project / target).read_text()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    runs = 0
    with tempfile.TemporaryDirectory(prefix="naive-") as tmp:
        work = Path(tmp) / "p"
        shutil.copytree(project, work)
        for description, text in naive_mutants(source):
            if time.monotonic() - t0 >= budget_s:
                break
            (work / target).write_text(text)
            runs += 1
            try:
                ok = subprocess.run(test_cmd, cwd=work, env=env, capture_output=True,
                                    timeout=run_timeout_s).returncode == 0  # fmt: skip
            except subprocess.TimeoutExpired:
                ok = False
            if ok:
                return SweepResult(True, runs, runs, time.monotonic() - t0, description)
    return SweepResult(False, runs, None, time.monotonic() - t0, None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("project", type=Path)
    ap.add_argument("target")
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("cmd", nargs="+")
    args = ap.parse_args()
    print(sweep(args.project, args.target, args.cmd, args.budget))


if __name__ == "__main__":
    main()
