"""The architecture as a test: every import in ``resclaims`` points down the layers, no module imports itself back
through others, and no module outgrows about 400 lines.

The layers, top down (docs/layout.md draws them): the command line (``__main__``), the pytest plugin
(``plugin``), the report (``report``), the per-source statistics and figures (``families``), the kernels
(``kernels``), runs (``run``: cache, store, engines), models and data sets (``models``, ``datasets``: neither
imports the other), and the decisions (``decide``: no torch, no pytest).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "resclaims"
LAYERS = {"decide": 0, "models": 1, "datasets": 1, "run": 2, "kernels": 3, "families": 4, "report": 5, "plugin": 6,
          "__main__": 7, "__init__": 7}
MOST_LINES = 420  # "no module over ~400 lines"


def modules() -> dict[str, Path]:
    return {".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): path
            for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> set[str]:
    """Every resclaims module ``path`` imports, at its top or inside a function (not those only a type checker
    reads, under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("resclaims.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("resclaims"):
            known = modules()
            for alias in node.names:  # "from resclaims.decide import stats" imports the module resclaims.decide.stats
                name = f"{node.module}.{alias.name}"
                found.add(name if name in known else node.module)
    return found - {"resclaims"}


def test_every_import_points_down_the_layers():
    back_edges = []
    for module, path in modules().items():
        for target in imports(path):
            a, b = layer(module), layer(target)
            if LAYERS[b] > LAYERS[a] or (LAYERS[b] == LAYERS[a] and a != b):
                back_edges.append(f"{module} -> {target}")
    assert not back_edges, "imports against the layers: " + "; ".join(back_edges)


def test_no_import_cycle():
    graph = {module: imports(path) & set(modules()) for module, path in modules().items()}
    for package in [m for m in graph if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()]:
        graph[package] = {t for t in graph[package] if not t.startswith(package + ".")}  # a package re-exports its own
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                pytest.fail("import cycle: " + " -> ".join([*trail[trail.index(target):], target]))
            if target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_decide_needs_neither_torch_nor_pytest():
    for module, path in modules().items():
        if layer(module) == "decide":
            tree = ast.parse(path.read_text())
            names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
            names |= {node.module.split(".")[0] for node in ast.walk(tree)
                      if isinstance(node, ast.ImportFrom) and node.module}
            assert not names & {"torch", "pytest"}, f"{module} imports {names & {'torch', 'pytest'}}"


@pytest.mark.parametrize("module", sorted(modules()))
def test_module_size(module):
    lines = len(modules()[module].read_text().splitlines())
    assert lines <= MOST_LINES, f"{module} has {lines} lines: split it by what its parts do (at most ~400)"
