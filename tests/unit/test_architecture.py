"""The package's shape: no import circles, no function over 80 lines, the API process loads no worker loop.

Imports are read with ``ast``, so function-level and ``TYPE_CHECKING`` imports count too. What still fails
because of work in progress is listed in the allow-lists below, to be emptied, never grown.
"""

from __future__ import annotations

import ast
import pathlib
from typing import Dict, List, Set

ROOT = pathlib.Path(__file__).resolve().parents[2] / "litserve"
MAX_FUNCTION_LINES = 80

# Circles still to break (each a sorted tuple of module names).
KNOWN_CYCLES: Set[tuple] = set()
# Functions still longer than MAX_FUNCTION_LINES ("path:Qualified.name").
KNOWN_LONG: Set[str] = set()
# Edges from the API process's modules into worker-loop modules still to remove ("importer -> imported").
KNOWN_API_TO_WORKER: Set[str] = set()
# Modules kept only so an old import keeps working; they may only re-export.
TRANSITIONAL_SHIMS: Set[str] = set()

API_PROCESS_MODULES = ("litserve.app", "litserve.routes", "litserve.transport.dispatcher")
WORKER_LOOP_MODULES = {
    "litserve.workers.skeleton",
    "litserve.workers.sync_loops",
    "litserve.workers.async_loops",
    "litserve.workers.continuous",
    "litserve.workers.selection",
    "litserve.workers.process",
    "litserve.specs.chat_loop",
}


def _modules() -> Dict[str, pathlib.Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _import_graph(runtime_only: bool = False) -> Dict[str, Set[str]]:
    """Module -> modules it imports; ``runtime_only`` leaves out what ``if TYPE_CHECKING:`` imports."""
    modules = _modules()

    def resolve(name: str) -> str:
        while name and name not in modules:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        return name

    edges: Dict[str, Set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        if name.startswith("litserve.test_examples"):
            continue
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        type_only = {id(inner) for block in ast.walk(tree) if _is_type_checking(block) for inner in ast.walk(block)}
        for node in ast.walk(tree):
            if runtime_only and id(node) in type_only:
                continue
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{alias.name}" for alias in node.names]
                # ``from pkg import module`` names the module; ``from module import name`` the module itself
                targets = [t for t in targets if t in modules] or [module]
            for target in targets:
                resolved = resolve(target) if target.startswith("litserve") else ""
                if resolved and resolved != name:
                    edges[name].add(resolved)
    return edges


def _is_type_checking(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    edges = _import_graph()
    cycles = [c for c in _cycles(edges) if tuple(c) not in KNOWN_CYCLES]
    described = [" | ".join(f"{m} -> {sorted(edges[m] & set(c))}" for m in c) for c in cycles]
    assert not cycles, "import circles:\n" + "\n".join(described)


def test_no_function_longer_than_80_lines():
    long = set()
    for path in ROOT.rglob("*.py"):
        relative = str(path.relative_to(ROOT.parent))

        def walk(node: ast.AST, prefix: str, relative: str = relative) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    name = prefix + child.name
                    if child.end_lineno - child.lineno + 1 > MAX_FUNCTION_LINES:
                        long.add(f"{relative}:{name}")
                    walk(child, name + ".")
                elif isinstance(child, ast.ClassDef):
                    walk(child, prefix + child.name + ".")

        walk(ast.parse(path.read_text()), "")
    assert not (long - KNOWN_LONG), f"functions over {MAX_FUNCTION_LINES} lines: {sorted(long - KNOWN_LONG)}"


def test_api_process_imports_no_worker_loop():
    # What the API process loads: imports under ``if TYPE_CHECKING:`` never run.
    edges = _import_graph(runtime_only=True)
    for start in API_PROCESS_MODULES:
        seen, todo, path_to = {start}, [start], {start: [start]}
        while todo:
            v = todo.pop()
            for w in edges[v]:
                if f"{v} -> {w}" in KNOWN_API_TO_WORKER or w in seen:
                    continue
                seen.add(w)
                path_to[w] = path_to[v] + [w]
                todo.append(w)
        reached = sorted(seen & WORKER_LOOP_MODULES)
        assert not reached, f"{start} reaches worker loops: {[' -> '.join(path_to[m]) for m in reached]}"


def test_transitional_shims_only_re_export():
    modules = _modules()
    for name in TRANSITIONAL_SHIMS:
        tree = ast.parse(modules[name].read_text())
        kinds = {type(node).__name__ for node in tree.body}
        assert kinds <= {"Expr", "ImportFrom", "Assign"}, f"{name} holds more than re-exports: {kinds}"
