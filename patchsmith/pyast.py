"""One lock around every ``ast.parse`` of the process, for CPython's AST constructor.

CPython (3.11 here) keeps the AST constructor's recursion depth in per-interpreter state.
When two threads build AST objects at once (the GIL can switch between them when the
constructor's allocations run a finalizer), one of them ends with the other's depth and
fails with ``SystemError: AST constructor recursion depth mismatch (before=78, after=72)``
(python/cpython#106905 is the same family). It ended an instance of the example campaign in
an error: search threads parse candidates while a model loads in another thread, and the
loader parses too (torch's TorchScript compiles functions from their source with
``ast.parse``). Our own calls are not enough to lock, so ``install`` replaces
``ast.parse`` itself with a locked version; parses are short and the GIL serializes them
anyway. Re-entrant: a finalizer that parses on the same thread does not deadlock.
"""

from __future__ import annotations

import ast
import threading
from typing import Any

_lock = threading.RLock()
_raw = ast.parse


def _parse(*args: Any, **kwargs: Any) -> Any:
    with _lock:
        return _raw(*args, **kwargs)


def install() -> None:
    """Make ``ast.parse`` take the lock, for every caller in this process (idempotent)."""
    ast.parse = _parse


def installed() -> bool:
    return ast.parse is _parse
