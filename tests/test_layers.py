"""The package's layers: every import inside ``edgecnn/`` points down this order, and no import cycle exists.

The order is written once, here. A module's layer is its top package (``edgecnn/pipeline/…`` → pipeline)
or, for a top-level module, its name. Imports inside functions count like the others: deferring an
import hides a cycle from Python, not from the design. Imports under ``if TYPE_CHECKING:`` (names for
annotations only) do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgecnn"

LAYERS: tuple[tuple[str, ...], ...] = (  # top to bottom; a module may import its own layer and the ones below
    ("__main__", "cli", "commands"),
    ("pipeline",),
    ("analysis",),
    ("runtime", "bench"),
    ("lowering",),
    ("data",),
    ("config",),
    ("costs",),
    ("models", "ops"),
    ("progress", "applies", "formats", "files", "errors", "__init__"),
)
RANK = {name: depth for depth, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> set[str]:
    """The edgecnn modules ``path`` imports (``from edgecnn.x import y`` counts as edgecnn.x.y when that is a
    module, else edgecnn.x; relative imports are resolved)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {  # ``if TYPE_CHECKING:`` imports name types for annotations; nothing is imported at run time
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "edgecnn"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            if base.split(".")[0] != "edgecnn":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return found - {module}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: _imports(path, name) for name, path in MODULES.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_has_a_layer():
    assert {_layer(m) for m in MODULES} <= set(RANK), {_layer(m) for m in MODULES} - set(RANK)


def test_imports_point_down():
    upward = sorted(
        f"{source} → {target}"
        for source, targets in GRAPH.items()
        for target in targets
        if target in MODULES and RANK[_layer(target)] < RANK[_layer(source)]
    )
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _package(module: str) -> str:
    """A sub-package's modules are one node; each top-level module (edgecnn.cli, edgecnn.errors …) is its own."""
    if module in PACKAGES or module.count(".") == 1:
        return module
    return module.rpartition(".")[0]


PACKAGES = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for source, targets in GRAPH.items():
        for target in targets:
            if target in MODULES and _package(target) != _package(source):
                graph.setdefault(_package(source), set()).add(_package(target))
    assert not _cycles(graph), _cycles(graph)


def test_no_import_cycle_between_modules():
    graph = {source: {t for t in targets if t in MODULES} for source, targets in GRAPH.items()}
    assert not _cycles(graph), _cycles(graph)
