"""The package's import graph: arrows point down (commands -> library), never in a circle.

Read from the source with ``ast`` (nothing is imported), so the check costs milliseconds and
sees imports inside functions too: a deferred import is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ecg_keras"
# ``python -m ecg_keras.X``: the top-level modules that parse flags (shared/ARCHITECTURE.md).
COMMANDS = frozenset(
    "compare download ensemble evaluate explain export predict prepare report train tune "
    "visualize".split()
)


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package modules it imports (``from a import b`` counts ``a.b`` when that is
    a module, else ``a``)."""
    paths = {module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in paths else base)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def is_command(module: str) -> bool:
    parts = module.split(".")
    return len(parts) == 2 and parts[1] in COMMANDS


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    package = tmp_path / "ecg_keras"
    (package / "lib").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "lib" / "__init__.py").write_text("")
    (package / "lib" / "a.py").write_text("from ecg_keras.lib import b\n")
    (package / "lib" / "b.py").write_text("def f():\n    from . import a\n")
    (package / "lib" / "c.py").write_text("from ecg_keras import train\n")
    (package / "train.py").write_text("from ecg_keras.lib import a\n")
    graph = import_graph(package)
    assert cycles(graph) == [["ecg_keras.lib.a", "ecg_keras.lib.b"]]
    assert graph["ecg_keras.lib.c"] == {"ecg_keras.train"}


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_no_library_module_imports_a_command():
    graph = import_graph()
    assert set(COMMANDS) <= {m.split(".")[-1] for m in graph}, "a command was renamed"
    upward = {
        module: sorted(t for t in targets if is_command(t))
        for module, targets in graph.items()
        if not is_command(module)
    }
    assert {m: t for m, t in upward.items() if t} == {}
