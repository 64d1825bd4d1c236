"""The package's shape: stages import only earlier stages and the core, never a later one, no
module imports itself back through others, and long functions say why they are long."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# The workflow's stages in DAG order; a module may import its own stage, earlier stages and the
# core. The application layer (CLI, config, results reader, simulator, benchmark) sits above
# every stage and may import any of them; no stage imports it.
LAYERS = ("core", "ingest", "validate", "measures", "models", "report", "multisite")
APPLICATION = "application"
MAX_FUNCTION_LINES = 80
# A function longer than the limit carries this comment on the line above its `def`.
LONG_REASON = "# Long:"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted((SRC / "accord").rglob("*.py"))}


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Every accord module each module imports, at the top or inside a function."""
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                if not base.startswith("accord"):
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    graph[name].add(full if full in modules else base)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name.startswith("accord."))
    return graph


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return APPLICATION


def _rank(module: str) -> int:
    name = layer(module)
    return len(LAYERS) if name == APPLICATION else LAYERS.index(name)


MODULES = _modules()
GRAPH = _imports(MODULES)


def test_the_tree_has_one_package_per_stage():
    packages = {name.split(".")[1] for name in MODULES if name.count(".") >= 1}
    assert set(LAYERS) <= packages
    for stage in LAYERS:
        doc = ast.get_docstring(ast.parse((SRC / "accord" / stage / "__init__.py").read_text()))
        assert doc, f"accord/{stage}/__init__.py says what the stage reads and writes"


def test_no_stage_imports_a_later_stage_or_the_application():
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if target in MODULES and _rank(target) > _rank(module)
    )
    assert upward == []


def test_no_import_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(GRAPH.get(node, ())):
            if target not in MODULES or target == node:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert cycles == []


def _long_functions(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        length = node.end_lineno - node.lineno + 1
        above = lines[first - 2].strip() if first >= 2 else ""
        if length > MAX_FUNCTION_LINES and not above.startswith(LONG_REASON):
            found.append(f"{_module_name(path)}.{node.name} ({length} lines)")
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_functions_are_short_or_say_why(module):
    assert _long_functions(MODULES[module]) == []
