"""The package's arrows point one way (README "Layout", DESIGN "Layers and arrows"): read from the
source with `ast`, every import counted, those inside functions and under TYPE_CHECKING included.

No import cycle among graphnet's modules; no layer imports one above it (so ops, the Graph IR and the
values never reach a back end, the CLI or the Python API); the back ends (NumPy, ONNX, render,
summary) never import each other. A module that no layer claims is a failure too: say where it sits.
The rules are checked on a copy of the package with each one broken, so the check itself can fail.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "graphnet"

# From the bottom up. A name is a module, or with `*` a module or package and everything below it
# (`graphnet.backends.numpy*`: numpy_backend.py, or a numpy/ package). Each layer may import only its
# own and the layers below it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("values", ("graphnet.types", "graphnet.dims", "graphnet.expr", "graphnet.expr_syntax", "graphnet.names", "graphnet.errors",
                "graphnet.files", "graphnet.openblas")),
    ("ops", ("graphnet.ops*",)),
    ("ir", ("graphnet.graph", "graphnet.init", "graphnet.infer", "graphnet.bounds", "graphnet.weights*")),
    ("front ends", ("graphnet.source", "graphnet.spec", "graphnet.load", "graphnet.expand*",
                    "graphnet.onnx_import*")),
    ("transforms", ("graphnet.transforms*",)),
    ("back ends", ("graphnet.backends*", "graphnet.render", "graphnet.summary")),
    # the host side of training: it drives the back ends, and the CLI drives it
    ("training", ("graphnet.training*",)),
    ("surface", ("graphnet", "graphnet.__main__", "graphnet.network", "graphnet.cli", "graphnet.commands*", "graphnet.docgen",
                 "graphnet.schema")),
]
# The back ends, none of which imports another.
BACK_ENDS: dict[str, tuple[str, ...]] = {
    "numpy": ("graphnet.backends.numpy*", "graphnet.backends.rewrites*"),
    "onnx": ("graphnet.backends.onnx*",),
    "render": ("graphnet.render",),
    "summary": ("graphnet.summary",),
}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in its source."""
    files = {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    top = root.name
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:   # `from pkg import mod` imports the module pkg.mod
                    found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in files else target)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "import_module"):
                # a package importing its own modules by name (the op registry) imports every one
                found.update(m for m in files if m.startswith(package + ".") and m.count(".") == package.count(".") + 1)
        graph[module] = {m for m in found if (m == top or m.startswith(top + ".")) and m in files and m != module}
    return graph


def _group(module: str, groups) -> str | None:
    for name, patterns in groups:
        for p in patterns:
            if module == p or (p.endswith("*") and module.startswith(p[:-1])):
                return name
    return None


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    rank = {name: i for i, (name, _) in enumerate(LAYERS)}
    for module in sorted(graph):
        if _group(module, LAYERS) is None:
            found.append(f"{module}: in no layer (add it to LAYERS in tests/test_architecture.py)")
    for cycle in nx.simple_cycles(nx.DiGraph([(a, b) for a, bs in graph.items() for b in bs])):
        found.append("import cycle: " + " -> ".join(cycle + cycle[:1]))
    for module, imported in sorted(graph.items()):
        here = _group(module, LAYERS)
        for other in sorted(imported):
            there = _group(other, LAYERS)
            if here and there and rank[there] > rank[here]:
                found.append(f"{module} ({here}) imports {other} ({there}), a layer above it")
            a, b = _group(module, BACK_ENDS.items()), _group(other, BACK_ENDS.items())
            if a and b and a != b:
                found.append(f"{module} (the {a} back end) imports {other} (the {b} back end)")
    return found


def test_the_arrows_point_one_way():
    assert violations(import_graph(PACKAGE)) == []


def test_the_graph_reads_every_kind_of_import():
    graph = import_graph(PACKAGE)
    assert "graphnet.ops.base" in graph["graphnet.ops"]                      # from .base import Op
    assert "graphnet.ops.scan" in graph["graphnet.ops"]                      # importlib.import_module
    assert "graphnet.backends.rewrites" in graph["graphnet.backends.numpy_backend"]   # from . import rewrites
    assert "graphnet.render" in graph["graphnet.cli"]                       # top level
    assert "graphnet.summary" in graph["graphnet.network"]                  # inside a method
    assert "graphnet.graph" in graph["graphnet.render"]                     # under TYPE_CHECKING


BROKEN = [
    # (file, a line to add, what the check must say)
    ("ops/scan.py", "def _f():\n    from ..backends.numpy_backend import compile_plan\n",
     "graphnet.ops.scan (ops) imports graphnet.backends.numpy_backend (back ends), a layer above it"),
    ("graph.py", "def _f():\n    from . import network\n",
     "graphnet.graph (ir) imports graphnet.network (surface), a layer above it"),
    ("types.py", "from .cli import main\n", "graphnet.types (values) imports graphnet.cli (surface), a layer above it"),
    ("render.py", "def _f():\n    from .cli import _dims\n",
     "graphnet.render (back ends) imports graphnet.cli (surface)"),
    ("backends/onnx_export.py", "from . import rewrites\n",
     "graphnet.backends.onnx_export (the onnx back end) imports graphnet.backends.rewrites (the numpy back end)"),
    ("backends/numpy_backend.py", "import graphnet.backends.onnx_export\n",
     "graphnet.backends.numpy_backend (the numpy back end) imports graphnet.backends.onnx_export (the onnx back end)"),
    ("cli.py", "def _f():\n    import graphnet.render as r\n", None),       # allowed: the surface reads a back end
    ("ops/recurrent.py", "def _f():\n    from .scan import Scan\n",
     "import cycle: "),
    ("new_module.py", "", "graphnet.new_module: in no layer"),
]


@pytest.mark.parametrize("file, line, message", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_rule_is_found(tmp_path, file, line, message):
    copy = tmp_path / "graphnet"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.yaml"))
    path = copy / file
    path.write_text((path.read_text() if path.exists() else "") + "\n" + line)
    found = violations(import_graph(copy))
    if message is None:
        assert found == []
    else:
        assert any(v.startswith(message) for v in found), found
        assert all(file.removesuffix(".py").replace("/", ".") in v for v in found), found
