"""Mutation operators: the small edits that fix most one-line bugs.

:func:`raw_mutations` walks a module's tree, visiting only nodes whose lines meet
the suspicious lines, and yields :class:`RawMutation` spans on the original text.
``OPERATORS`` lists every operator with its priority (lower is tried first when two
mutants share a score): boundary and off-by-one fixes first, name swaps last.
"""

from __future__ import annotations

import ast
import bisect
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from patchsmith.tasks.search.scope import Scope, function_scope
from patchsmith.tasks.search.source import ATOMS, SourceText

OPERATORS: dict[str, str] = {
    "comparison": "swap a comparison operator (< <=, > >=, == !=, is/is not, in/not in)",
    "range": "range() bound ± 1",
    "slice": "slice bound ± 1",
    "index": "subscript index ± 1",
    "constant": "integer constant ± 1",
    "boolean": "swap and/or",
    "negate": "negate a condition (c → not c, not c → c)",
    "arithmetic": "swap an arithmetic operator (+ -, * /, // /, %, +=/-=, <<>>, &|)",
    "return": "change a returned value (True/False, another name, drop unary minus)",
    "call": "swap a look-alike call (min/max, any/all, strip/lstrip/rstrip, append/extend…)",
    "drop_condition": "drop one operand of and/or",
    "swap_args": "swap two positional arguments of a call",
    "swap_operands": "swap the operands of a binary operator or comparison",
    "unary_minus": "remove a unary minus",
    "name": "use another in-scope name of the same function",
    "bool_constant": "flip True/False",
    "break_continue": "swap break/continue",
    "attribute": "use another attribute name of the same file",
    "condition": "replace a condition by True or False",
}
PRIORITY: dict[str, int] = {name: i for i, name in enumerate(OPERATORS)}

PRIOR: dict[str, float] = {
    "comparison": 1.0,
    "range": 0.9,
    "slice": 0.8,
    "index": 0.8,
    "constant": 0.7,
    "boolean": 0.7,
    "negate": 0.6,
    "arithmetic": 0.6,
    "return": 0.5,
    "call": 0.5,
    "drop_condition": 0.4,
    "swap_args": 0.4,
    "swap_operands": 0.4,
    "unary_minus": 0.4,
    "name": 0.3,
    "bool_constant": 0.3,
    "break_continue": 0.3,
    "attribute": 0.25,
    "condition": 0.2,
}
"""How likely a mutant of each operator is to be the fix, before any data: a candidate's
order is suspiciousness x prior x VARIANT_DECAY ** variant. ``patchsmith tune-search`` refits
it from the store's recorded attempts (see ``search/prior.py``)."""
VARIANT_DECAY = 0.8
"""Later replacements of one operator at one place (``<`` → ``<=``, then ``>``…) count less."""

_CMP: dict[type[ast.cmpop], tuple[str, ...]] = {
    ast.Lt: ("<=", ">", ">="),
    ast.LtE: ("<", ">=", ">"),
    ast.Gt: (">=", "<", "<="),
    ast.GtE: (">", "<=", "<"),
    ast.Eq: ("!=",),
    ast.NotEq: ("==",),
    ast.Is: ("is not",),
    ast.IsNot: ("is",),
    ast.In: ("not in",),
    ast.NotIn: ("in",),
}
_CMP_TOKEN = re.compile(r"<=|>=|==|!=|<|>|\bis\s+not\b|\bnot\s+in\b|\bis\b|\bin\b")
_ARITH: dict[type[ast.operator], tuple[str, ...]] = {
    ast.Add: ("-",),
    ast.Sub: ("+",),
    ast.Mult: ("/", "//"),
    ast.Div: ("//", "*"),
    ast.FloorDiv: ("/", "%"),
    ast.Mod: ("//",),
    ast.Pow: ("*",),
    ast.LShift: (">>",),
    ast.RShift: ("<<",),
    ast.BitAnd: ("|",),
    ast.BitOr: ("&",),
    ast.BitXor: ("|",),
}
_ORDER = ("<", "<=", ">", ">=", "==", "!=")
_ARITH_FAMILY = ("+", "-", "*", "/", "//", "%", "**")
_BIT_FAMILY = ("&", "|", "^", "<<", ">>")
_PRECEDENCE = {
    **dict.fromkeys(("|",), 1), "^": 2, "&": 3, "<<": 4, ">>": 4, "+": 5, "-": 5,
    **dict.fromkeys(("*", "/", "//", "%", "@"), 6), "**": 7,
}  # fmt: skip
_ARITH_TOKEN = re.compile(r"\*\*|//|<<|>>|[-+*/%@&|^]")
_NON_COMMUTATIVE = (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.LShift, ast.RShift)
_ASYMMETRIC_CMP = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)
_CALLS: dict[str, tuple[str, ...]] = {
    "min": ("max",),
    "max": ("min",),
    "any": ("all",),
    "all": ("any",),
    "floor": ("ceil",),
    "ceil": ("floor",),
    "strip": ("rstrip", "lstrip"),
    "lstrip": ("strip",),
    "rstrip": ("strip",),
    "append": ("extend",),
    "extend": ("append",),
    "startswith": ("endswith",),
    "endswith": ("startswith",),
    "find": ("rfind",),
    "rfind": ("find",),
    "index": ("rindex",),
    "rindex": ("index",),
    "split": ("rsplit",),
    "rsplit": ("split",),
    "lower": ("upper",),
    "upper": ("lower",),
}
_LOW_PRECEDENCE = (ast.BoolOp, ast.IfExp, ast.Lambda, ast.NamedExpr)
_COMMENT = re.compile(r"#[^\r\n]*")
_AUG_TOKEN = re.compile(r"(\*\*|//|<<|>>|[-+*/%@&|^])=")


@dataclass(frozen=True)
class RawMutation:
    """One candidate edit on the original text, before scoring and checking."""

    operator: str
    start: int
    end: int
    replacement: str
    variant: int


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(src: SourceText, m: RawMutation, line: int) -> str:
    """``line 42: `<` → `<=```."""
    old = _short(src.source[m.start : m.end])
    return f"line {line}: `{old}` → `{_short(m.replacement)}`"


def _family(op: str, table: tuple[str, ...], likely: Sequence[str]) -> list[str]:
    """``likely`` first, then every other operator of ``op``'s family (wide scopes)."""
    return [*likely, *(o for o in table if o != op and o not in likely)]


class _Walker:
    def __init__(self, src: SourceText, lines: Sequence[int], wide: bool = False) -> None:
        self.src = src
        self.lines = sorted(lines)
        self.wide = wide
        self.out: list[RawMutation] = []
        self.callees: set[int] = set()  # ids of Name nodes called as functions
        self.attributes: list[str] = []  # attribute names of the file (not calls), by use
        self._attributes_done = False

    # ----------------------------------------------------------------- helpers

    def hits(self, node: ast.AST) -> bool:
        first = getattr(node, "lineno", None)
        if first is None:
            return True
        for dec in getattr(node, "decorator_list", ()):
            first = min(first, dec.lineno)
        i = bisect.bisect_left(self.lines, first)
        return i < len(self.lines) and self.lines[i] <= node.end_lineno  # type: ignore[attr-defined]

    def emit(self, operator: str, start: int, end: int, replacements: Sequence[str]) -> None:
        old = self.src.source[start:end]
        for variant, rep in enumerate(replacements):
            if rep != old:
                self.out.append(RawMutation(operator, start, end, rep, variant))

    def token(self, gap: tuple[int, int], pattern: re.Pattern[str]) -> tuple[int, int] | None:
        text = _COMMENT.sub(lambda m: " " * len(m[0]), self.src.source[gap[0] : gap[1]])
        m = pattern.search(text)
        return (gap[0] + m.start(), gap[0] + m.end()) if m else None

    def plus_minus(self, operator: str, node: ast.expr) -> None:
        """``e`` → ``e + 1`` / ``e - 1``; ``e ± 1`` → ``e``."""
        if isinstance(node, ast.Constant):
            return  # the constant operator covers literals
        start, end = self.src.span(node)
        if (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Add | ast.Sub)
            and isinstance(node.right, ast.Constant)
            and node.right.value == 1
        ):
            left = self.src.operand(node.left, (start, end))
            self.emit(operator, start, end, [self.src.source[left[0] : left[1]]])
            if not self.wide:
                return
        text = self.src.source[start:end]
        if not _binds_tighter_than_plus(node):
            text = f"({text})"
        self.emit(operator, start, end, [f"{text} + 1", f"{text} - 1"])

    # ----------------------------------------------------------------- walking

    def visit(self, node: ast.AST, scope: Scope | None) -> None:
        if not self.hits(node):
            return
        if isinstance(node, ast.JoinedStr):
            # Before Python 3.12 positions inside f-strings can be off (nested or multi-line
            # ones): mutate an expression only where every position in it is checked true.
            for part in node.values:
                if isinstance(part, ast.FormattedValue) and self._placed(part.value):
                    self.visit(part.value, scope)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            scope = function_scope(node)
        elif isinstance(node, ast.ClassDef | ast.Lambda):
            scope = None
        handler = getattr(self, "op_" + type(node).__name__, None)
        if handler is not None:
            handler(node, scope)
        for test in getattr(node, "ifs", ()):  # comprehension conditions
            self.negate(test)
        for child in ast.iter_child_nodes(node):
            self.visit(child, scope)

    def _placed(self, expr: ast.expr) -> bool:
        """True when each expression in ``expr`` spans text that parses back to itself."""
        for node in ast.walk(expr):
            if not isinstance(node, ast.expr):
                continue
            if isinstance(node, ast.JoinedStr | ast.FormattedValue):
                return False  # an f-string in an f-string: its own quoting rules
            try:
                again = ast.parse(f"({self.src.text(node)})", mode="eval").body
            except SyntaxError:
                return False
            if ast.dump(again) != ast.dump(node):
                return False
        return True

    def negate(self, test: ast.expr) -> None:
        start, end = self.src.span(test)
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and not self.wide:
            return  # op_UnaryOp drops the ``not`` (wide scopes also try ``not not c``)
        text = self.src.source[start:end]
        self.emit("negate", start, end, [f"not ({text})" if _low(test) else f"not {text}"])

    def op_If(self, node: ast.If, scope: Scope | None) -> None:
        self.negate(node.test)
        if not isinstance(node.test, ast.Constant):
            self.emit("condition", *self.src.span(node.test), ["True", "False"])

    op_While = op_If
    op_IfExp = op_If

    def op_Assert(self, node: ast.Assert, scope: Scope | None) -> None:
        self.negate(node.test)

    def op_Compare(self, node: ast.Compare, scope: Scope | None) -> None:
        limit = self.src.span(node)
        operands = [self.src.operand(n, limit) for n in [node.left, *node.comparators]]
        for i, op in enumerate(node.ops):
            tok = self.token((operands[i][1], operands[i + 1][0]), _CMP_TOKEN)
            if tok is not None:
                likely = _CMP[type(op)]
                text = " ".join(self.src.source[tok[0] : tok[1]].split())
                if self.wide and text in _ORDER:
                    likely = tuple(_family(text, _ORDER, likely))
                self.emit("comparison", *tok, likely)
        if len(node.ops) == 1 and (self.wide or isinstance(node.ops[0], _ASYMMETRIC_CMP)):
            self.swap("swap_operands", node.left, node.comparators[0], operands)

    def swap(self, operator: str, a: ast.expr, b: ast.expr, spans: list[tuple[int, int]]) -> None:
        (a0, a1), (b0, b1) = spans[0], spans[-1]
        middle = self.src.source[a1:b0]
        new = self.src.wrapped(b, (b0, b1)) + middle + self.src.wrapped(a, (a0, a1))
        self.emit(operator, a0, b1, [new])

    def op_BoolOp(self, node: ast.BoolOp, scope: Scope | None) -> None:
        limit = self.src.span(node)
        spans = [self.src.operand(v, limit) for v in node.values]
        other = "or" if isinstance(node.op, ast.And) else "and"
        edits = []
        for (_, left_end), (right_start, _) in itertools.pairwise(spans):
            gap = _COMMENT.sub(lambda m: " " * len(m[0]), self.src.source[left_end:right_start])
            edits.append(re.sub(r"\b(and|or)\b", other, gap, count=1))
        start, end = spans[0][0], spans[-1][1]
        swapped = "".join(
            self.src.source[s:e] + (edits[i] if i < len(edits) else "")
            for i, (s, e) in enumerate(spans)
        )
        self.emit("boolean", start, end, [swapped])
        op = "and" if isinstance(node.op, ast.And) else "or"
        drops = []
        for skip in range(len(spans)):
            kept = [self.src.source[s:e] for i, (s, e) in enumerate(spans) if i != skip]
            drops.append(f" {op} ".join(kept))
        self.emit("drop_condition", start, end, drops)

    def op_BinOp(self, node: ast.BinOp, scope: Scope | None) -> None:
        limit = self.src.span(node)
        spans = [self.src.operand(node.left, limit), self.src.operand(node.right, limit)]
        tok = self.token((spans[0][1], spans[1][0]), _ARITH_TOKEN)
        if tok is not None and type(node.op) in _ARITH:
            old = self.src.source[tok[0] : tok[1]]
            news = self.arith(node.op, old)
            self.emit("arithmetic", *tok, news)
            # An operator of another precedence changes more than the operator when spliced
            # into the text (``a * b / c`` → ``a + b / c``); also offer the tree's mutant,
            # operands and node parenthesized (``((a) + (b)) / c``, i.e. ``(a + b) / c``).
            start, end = self.src.span(node)
            left = self.src.wrapped(node.left, spans[0])
            right = self.src.wrapped(node.right, spans[1])
            other = [n for n in news if _PRECEDENCE.get(n, 0) != _PRECEDENCE.get(old, 0)]
            self.emit("arithmetic", start, end, [f"({left} {n} {right})" for n in other])
        if self.wide or isinstance(node.op, _NON_COMMUTATIVE):
            self.swap("swap_operands", node.left, node.right, spans)

    def arith(self, op: ast.operator, text: str) -> list[str]:
        """Replacements of an arithmetic or bit operator: the likely ones, all when wide."""
        likely = _ARITH[type(op)]
        if not self.wide:
            return list(likely)
        family = _BIT_FAMILY if text in _BIT_FAMILY else _ARITH_FAMILY
        return _family(text, family, likely) if text in family else list(likely)

    def op_AugAssign(self, node: ast.AugAssign, scope: Scope | None) -> None:
        gap = (self.src.span(node.target)[1], self.src.span(node.value)[0])
        tok = self.token(gap, _AUG_TOKEN)
        if tok is not None and type(node.op) in _ARITH:
            text = self.src.source[tok[0] : tok[1] - 1]
            self.emit("arithmetic", *tok, [op + "=" for op in self.arith(node.op, text)])

    def op_Constant(self, node: ast.Constant, scope: Scope | None) -> None:
        start, end = self.src.span(node)
        if isinstance(node.value, bool):
            self.emit("bool_constant", start, end, [str(not node.value)])
        elif isinstance(node.value, int):
            self.emit("constant", start, end, [str(node.value + 1), str(node.value - 1)])

    def op_Subscript(self, node: ast.Subscript, scope: Scope | None) -> None:
        index = node.slice
        if isinstance(index, ast.Slice):
            for bound in (index.lower, index.upper):
                if bound is not None:
                    self.plus_minus("slice", bound)
        elif not isinstance(index, ast.Tuple | ast.Constant):
            self.plus_minus("index", index)

    def op_Call(self, node: ast.Call, scope: Scope | None) -> None:
        func = node.func
        self.callees.add(id(func))
        if isinstance(func, ast.Name) and func.id == "range":
            for arg in node.args[:2]:
                self.plus_minus("range", arg)
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name is not None and name in _CALLS:
            end = self.src.span(func)[1]
            if self.src.source[end - len(name) : end] == name:
                self.emit("call", end - len(name), end, _CALLS[name])
        args = node.args
        if len(args) >= 2 and not any(isinstance(a, ast.Starred) for a in args):
            limit = self.src.span(node)
            spans = [self.src.operand(a, limit) for a in args]
            pairs = [(i, j) for i in range(len(args)) for j in range(i + 1, len(args))]
            for i, j in pairs if len(args) <= 3 else [(i, i + 1) for i in range(len(args) - 1)]:
                self.swap("swap_args", args[i], args[j], [spans[i], spans[j]])

    def op_Return(self, node: ast.Return, scope: Scope | None) -> None:
        value = node.value
        if value is None:
            return
        start, end = self.src.span(value)
        if isinstance(value, ast.Constant) and isinstance(value.value, bool):
            self.emit("return", start, end, [str(not value.value)])
        elif isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub):
            operand = self.src.operand(value.operand, (start, end))
            self.emit("return", start, end, [self.src.source[operand[0] : operand[1]]])
        elif isinstance(value, ast.Name) and scope is not None:
            self.emit("return", start, end, self.names(scope, value.id, value.lineno))

    def op_UnaryOp(self, node: ast.UnaryOp, scope: Scope | None) -> None:
        start, end = self.src.span(node)
        operand = self.src.operand(node.operand, (start, end))
        text = self.src.wrapped(node.operand, operand)
        if isinstance(node.op, ast.Not):
            self.emit("negate", start, end, [text])
        elif isinstance(node.op, ast.USub) and (
            self.wide or not isinstance(node.operand, ast.Constant)
        ):
            self.emit("unary_minus", start, end, [text])

    def op_Name(self, node: ast.Name, scope: Scope | None) -> None:
        if scope is None or not isinstance(node.ctx, ast.Load) or id(node) in self.callees:
            return
        start, end = self.src.span(node)
        self.emit("name", start, end, self.names(scope, node.id, node.lineno))

    def names(self, scope: Scope, name: str, line: int) -> list[str]:
        if self.wide:
            return scope.alternatives(name, line, limit=None, anywhere=True)
        return scope.alternatives(name, line)

    def op_Attribute(self, node: ast.Attribute, scope: Scope | None) -> None:
        if id(node) in self.callees:
            return
        if not self._attributes_done:
            self._attributes_done = True
            self.attributes = _attribute_names(self.src.tree)
        end = self.src.span(node)[1]
        if self.src.source[end - len(node.attr) : end] != node.attr:
            return
        others = [a for a in self.attributes if a != node.attr]
        self.emit("attribute", end - len(node.attr), end, others if self.wide else others[:3])

    def op_Break(self, node: ast.Break, scope: Scope | None) -> None:
        self.emit("break_continue", *self.src.span(node), ["continue"])

    def op_Continue(self, node: ast.Continue, scope: Scope | None) -> None:
        self.emit("break_continue", *self.src.span(node), ["break"])


def _attribute_names(tree: ast.AST) -> list[str]:
    """Attribute names used in a module outside calls, most used first."""
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    counts: dict[str, int] = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute) and id(n) not in called:
            counts[n.attr] = counts.get(n.attr, 0) + 1
    return sorted(counts, key=lambda a: (-counts[a], a))


def _low(node: ast.expr) -> bool:
    return isinstance(node, _LOW_PRECEDENCE)


def _binds_tighter_than_plus(node: ast.expr) -> bool:
    """Whether ``text + 1`` keeps ``text`` as one operand without parentheses."""
    if isinstance(node, ATOMS):
        return True
    if isinstance(node, ast.BinOp):
        return isinstance(
            node.op,
            ast.Add | ast.Sub | ast.Mult | ast.Div | ast.FloorDiv | ast.Mod | ast.Pow | ast.MatMult,
        )
    return isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not)


def raw_mutations(
    src: SourceText, lines: Sequence[int], wide: bool = False
) -> Iterator[RawMutation]:
    """Every operator's edits on nodes that meet ``lines`` (unscored, unchecked).

    ``wide`` (the search's widened scopes) adds the less likely variants: every operator of
    a comparison's or arithmetic operator's family, operand swaps of commutative operators,
    every name and attribute of the scope, ``-1`` → ``1``, ``i + 1`` → ``i + 1 ± 1``.
    """
    walker = _Walker(src, lines, wide)
    walker.visit(src.tree, None)
    yield from walker.out
