"""The localization context an LLM step reads, cut to a token budget.

In order: the failing target tests, the ranked suspicious lines (with their text), the
tail of the failing test output, then excerpts of the relevant files: the functions that
hold the suspicious lines (whole small files), files the LLM plan named first. Tokens are
estimated at ~4 characters each; the context stops at the budget, at a line boundary.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from pathlib import Path

from patchsmith.domain import Instance, Plan
from patchsmith.prompts import render
from patchsmith.tasks.localize import editable

CHARS_PER_TOKEN = 4
PLAN_TOKENS = 384  # what the generator lets its planner reply (a short JSON object)


def prompt_forms(edit_format: str) -> tuple[str, str]:
    """The generator's (system, user) prompt templates for an edit format."""
    form = "generator_function" if edit_format == "function" else "generator"
    return f"{form}_system", f"{form}_user"


def first_prompt_tokens(edit_format: str, context_tokens: int) -> int:
    """About what a generator prompt takes before any call has told: the context budget
    plus the templates' own text (estimates: the generator's and the pre-flight's)."""
    system, user = prompt_forms(edit_format)
    blank = dict.fromkeys(("instruction", "plan", "context", "feedback"), "")
    return context_tokens + (len(render(system)) + len(render(user, **blank))) // CHARS_PER_TOKEN


WHOLE_FILE_LINES = 120
WINDOW = 10
MAX_FUNCTION_LINES = 80
TOP_LINES = 15


# What changes between two runs of the same tests and means nothing to a model: an attempt
# workspace's absolute path (a new random directory per attempt), the runners' timings and
# object addresses. Left in, they make two runs' prompts differ, and a greedy decode's reply
# with them (the same instance fixed in one run and not in the next).
_COUNTS = r"(\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?))"
_VOLATILE = (
    (re.compile(r"/(?:[^\s/\"':]+/)*attempts/\d+-[0-9a-f]{16}/merged/"), ""),
    (re.compile(r"/(?:[^\s/\"':]+/)*pristine/[0-9a-f]{20}/"), ""),
    (re.compile(r"^(Ran \d+ tests?) in \d+(?:\.\d+)?s$", re.M), r"\1"),
    (re.compile(_COUNTS + r" in \d+(?:\.\d+)?s(?: \(\d+:\d\d:\d\d\))?"), r"\1"),
    (re.compile(r"\b0x[0-9a-fA-F]{6,16}\b"), "0x…"),
)


def steady(text: str) -> str:
    """``text`` (a test log) without what differs between runs of the same tests: workspace
    paths become relative, durations and object addresses are dropped. Prompts show logs
    through this, so the same instance gives the same prompt in every run."""
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return text


def estimate_tokens(text: str) -> int:
    """Rough token count (characters / 4), for budgeting prompts."""
    return len(text) // CHARS_PER_TOKEN + 1


def in_scope(instance: Instance, path: str) -> bool:
    """True when an edit to ``path`` is allowed (see :func:`localize.editable`)."""
    return editable(instance, path)


def _read(root: Path, path: str) -> list[str] | None:
    target = (root / path).resolve()
    if not target.is_file() or root.resolve() not in target.parents:
        return None
    try:
        return target.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None


def _function_spans(lines: list[str]) -> list[tuple[int, int]]:
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return []
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            spans.append((start, node.end_lineno))
    return spans


def _ranges(lines: list[str], hits: list[int]) -> list[tuple[int, int]]:
    """1-based inclusive line ranges to show for suspicious lines ``hits`` of a file."""
    if len(lines) <= WHOLE_FILE_LINES:
        return [(1, len(lines))]
    spans = _function_spans(lines)
    wanted = []
    for line in hits:
        inner = [s for s in spans if s[0] <= line <= s[1] and s[1] - s[0] < MAX_FUNCTION_LINES]
        if inner:
            wanted.append(min(inner, key=lambda s: s[1] - s[0]))
        else:
            wanted.append((max(1, line - WINDOW), min(len(lines), line + WINDOW)))
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(wanted):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def _excerpts(
    instance: Instance, plan: Plan, root: Path, focus: Sequence[str]
) -> list[tuple[str, list[str], list[tuple[int, int]]]]:
    order: list[str] = [f for f in focus if in_scope(instance, f)]
    hits: dict[str, list[int]] = {}
    for s in plan.suspicious:
        hits.setdefault(s.path, []).append(s.line)
        if s.path not in order:
            order.append(s.path)
    if not order:
        order = sorted(
            str(p.relative_to(root))
            for p in root.rglob("*.py")
            if in_scope(instance, str(p.relative_to(root)))
        )
    out = []
    for path in order:
        lines = _read(root, path)
        if lines is None:
            continue
        ranges = _ranges(lines, hits.get(path, [])) if hits.get(path) else [(1, len(lines))]
        out.append((path, lines, ranges))
    return out


def _goal_context(plan: Plan, budget: int) -> list[str]:
    """A refactoring's targets: where the forbidden patterns still occur (where, not what:
    the code is in the excerpts), and the goal's check output while it fails."""
    assert plan.goal is not None
    parts = []
    where = [
        f"- {o.path}, line {o.line} (pattern `{o.pattern}`)"
        for o in plan.goal.occurrences[:TOP_LINES]
    ]
    if where:
        parts.append("Occurrences to change, each one (every test that passes now must still "
                     "pass):\n" + "\n".join(where) + "\n")  # fmt: skip
    check = plan.goal.check
    if check is not None and not check.passed and check.log_tail.strip():
        keep = max(200, budget // 4)
        tail = steady(check.log_tail)[-keep:]
        parts.append(f"The goal's check still fails (tail):\n```\n{tail}\n```\n")
    return parts


def build_context(
    instance: Instance,
    plan: Plan,
    root: Path,
    budget_tokens: int,
    focus: Sequence[str] = (),
) -> str:
    """The context for ``instance`` from its plan and pristine copy, within the budget."""
    budget = budget_tokens * CHARS_PER_TOKEN
    parts = []
    if plan.fail_to_pass:
        tests = "\n".join(f"- {t}" for t in plan.fail_to_pass[:10])
        parts.append(f"Failing tests that must pass:\n{tests}\n")
    if plan.goal is not None:  # a refactoring: what must change, and what says it is not done
        parts += _goal_context(plan, budget)
    ranked = []
    for s in [] if plan.goal is not None else plan.suspicious[:TOP_LINES]:
        # Where, not what: small models copy any listed code into SEARCH as the file's text
        # (Qwen2.5-Coder-1.5B did, in every format tried); the code is in the excerpts.
        ranked.append(f"- {s.path}, line {s.line} (score {s.score:.2f})")
    if ranked:
        parts.append("Suspicious lines, most suspicious first (their code is in the excerpts "
                     "below):\n" + "\n".join(ranked) + "\n")  # fmt: skip
    log = "" if plan.goal is not None else steady(plan.baseline.log_tail).strip()
    if log:
        keep = max(200, budget // 4)
        parts.append(f"Failing test output (tail):\n```\n{log[-keep:]}\n```\n")
    text = "\n".join(parts)
    for path, lines, ranges in _excerpts(instance, plan, root, focus):
        for lo, hi in ranges:
            room = budget - len(text) - len(path) - 40
            if room < 80:
                return text
            body: list[str] = []
            used = 0
            for line in lines[lo - 1 : hi]:
                if used + len(line) + 1 > room:
                    break
                body.append(line)
                used += len(line) + 1
            if body:
                end = lo + len(body) - 1
                text += f"\n{path} (lines {lo}-{end}):\n```python\n" + "\n".join(body) + "\n```\n"
    return text


FUNCTIONS_SHOWN = 2
LOG_LINES = 20


def function_context(instance: Instance, plan: Plan, root: Path, budget_tokens: int) -> str:
    """The context for whole-function replies (``edit_format: function``): the most
    suspicious functions, whole (the first one always), then the failing output's last
    lines in what is left of the budget. Short on purpose: small models echo long
    structured contexts instead of answering (Qwen2.5-Coder-1.5B did)."""
    budget = budget_tokens * CHARS_PER_TOKEN
    best: dict[tuple[str, int, int], float] = {}
    cache: dict[str, list[str] | None] = {}
    for s in plan.suspicious:
        if not in_scope(instance, s.path):
            continue
        lines = cache.setdefault(s.path, _read(root, s.path)) or []
        inner = [sp for sp in _function_spans(lines) if sp[0] <= s.line <= sp[1]]
        if inner:
            key = (s.path, *min(inner, key=lambda sp: sp[1] - sp[0]))
            best[key] = max(best.get(key, s.score), s.score)
    code = ""
    for (path, lo, hi), _ in sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:FUNCTIONS_SHOWN]:
        body = "\n".join((cache[path] or [])[lo - 1 : hi])
        part = f"\nThe code to fix, from {path}:\n```python\n{body}\n```\n"
        if code and len(code) + len(part) > budget:
            break
        code += part
    room = min(budget // 3, budget - len(code))
    log = "\n".join(steady(plan.baseline.log_tail).strip().splitlines()[-LOG_LINES:])
    log = log[-room:] if room > 0 else ""
    return (f"The failing tests say:\n```\n{log}\n```\n" if log else "") + code
