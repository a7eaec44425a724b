"""No import cycles among ``patchsmith`` modules.

The graph is read with ``ast``, not by importing: an edge is any import of a ``patchsmith``
module, at module level, under ``if TYPE_CHECKING:`` (a type that can only be named that
way is a cycle too) or inside a function (a lazy import of a heavy backend is fine; one
that hides a cycle is a cycle). Move shared names to the lower module instead.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

# patchsmith's own folder and the root folders mapped into it (pyproject's package-dir).
ROOTS = (
    "patchsmith",
    "patchsmith.flows",
    "patchsmith.tasks",
    "patchsmith.adapters",
    "patchsmith.infra",
)


def package_roots() -> dict[str, Path]:
    """Where each root package's files are, as the installed patchsmith finds them."""
    roots: dict[str, Path] = {}
    for name in ROOTS:
        spec = importlib.util.find_spec(name)
        assert spec and spec.submodule_search_locations, name
        roots[name] = Path(next(iter(spec.submodule_search_locations)))
    return roots


def module_files(roots: dict[str, Path]) -> dict[str, Path]:
    """Every module under the roots, by dotted name (a root nested in another is its own)."""
    files: dict[str, Path] = {}
    for name, folder in roots.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            files.setdefault(".".join([name, *parts]), path)
    return files


def imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in a module: top level, under ``if``/``try``, in functions."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def import_graph(roots: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """Each ``patchsmith`` module and the ``patchsmith`` modules it imports."""
    files = module_files(roots or package_roots())
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:  # relative: from the package that holds this module
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in files else base)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph[node]):
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done and (cycle := visit(nxt)):
                return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done and (cycle := visit(start)):
            return cycle
    return None


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "patchsmith.infra.tracking_mlflow" in graph
    assert "patchsmith.tasks.testing.run" in graph["patchsmith.tasks.repair"]
    assert "patchsmith.infra.tracking_types" in graph["patchsmith.infra.tracking_mlflow"]


def test_a_cycle_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "patchsmith"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from patchsmith.sub import b\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import A\n"
    )
    (pkg / "c.py").write_text("def f():\n    from patchsmith import a\n")  # lazy: an edge too
    graph = import_graph({"patchsmith": pkg})
    assert graph["patchsmith.c"] == {"patchsmith.a"}
    assert find_cycle(graph) == ["patchsmith.a", "patchsmith.sub.b", "patchsmith.a"]


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, (
        "import cycle: " + " -> ".join(cycle or []) + " (move the shared names to the lower "
        "module, or to a small module of their own, so imports go one way)"
    )
