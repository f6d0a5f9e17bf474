"""The reference broker's modules import one way: no cycle at run time (imports for type checking
only do not count), the personality interface imports nothing of the broker's, and a platform's
personality imports neither the registry nor another platform."""

from __future__ import annotations

import ast
from pathlib import Path

import harness.broker

PACKAGE = Path(harness.broker.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> set[str]:
    """The harness.broker modules `path` imports when it runs (module level or inside functions)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.ImportFrom) and child.module:
                found.add(child.module)
            elif isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in found if name.startswith("harness.broker")}


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _runtime_imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_the_broker_modules_import_one_way() -> None:
    graph = _graph()
    state: dict[str, str] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            assert state.get(target) != "open", "import cycle: " + " -> ".join([*trail, node, target])
            if target not in state:
                walk(target, [*trail, node])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module, [])


def test_the_personality_interface_and_each_platform_stand_alone() -> None:
    graph = _graph()
    assert graph["harness.broker.personality"] == set()
    platforms = {m for m in graph if m.startswith("harness.broker.personalities.")}
    assert len(platforms) == 4
    for platform in platforms:
        assert "harness.broker.personalities" not in graph[platform], platform
        assert not graph[platform] & platforms, platform
    assert graph["harness.broker.personalities"] == platforms | {"harness.broker.personality"}
