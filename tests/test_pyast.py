"""``ast.parse`` goes through one lock once a campaign session is open (see pyast.py)."""

from __future__ import annotations

import ast
import threading

from patchsmith import pyast


def test_every_ast_parse_of_the_process_waits_for_the_lock() -> None:
    pyast.install()
    assert pyast.installed()
    parsed: list[ast.Module] = []
    with pyast._lock:  # another thread is building AST objects right now
        worker = threading.Thread(target=lambda: parsed.append(ast.parse("x = 1")))
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive() and not parsed  # it waits its turn
        assert isinstance(ast.parse("y = 2"), ast.Module)  # the holder may parse (re-entrant)
    worker.join()
    assert isinstance(parsed[0].body[0], ast.Assign)
