"""No import cycle among pyod_odim's modules, imports inside functions included."""

import ast
from pathlib import Path

import pyod_odim

PACKAGE = Path(pyod_odim.__file__).parent


# The C++ extensions: modules that import nothing of the package.
EXTENSIONS = ("pyod_odim._gmm", "pyod_odim._iwae")


def _modules():
    """Every Python module of the package by dotted name (``pyod_odim`` for ``__init__.py``)."""
    names = {}
    for path in sorted(PACKAGE.glob("*.py")):
        name = "pyod_odim" if path.stem == "__init__" else f"pyod_odim.{path.stem}"
        names[name] = path
    return names


def _imported(tree, modules):
    """The package's modules that a module's code imports, anywhere in it."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1 or (node.level == 0 and not (node.module or "").startswith("pyod_odim")):
                continue
            base = "pyod_odim" + (f".{node.module}" if node.level == 1 and node.module else "")
            if node.level == 0:
                base = node.module
            for alias in node.names:
                # `from . import x` names a module; `from .x import y` imports x.
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules or sub in EXTENSIONS else base)
    return found & set(modules) - set(EXTENSIONS)


def import_graph():
    modules = _modules()
    return {name: _imported(ast.parse(path.read_text()), modules) - {name}
            for name, path in modules.items()}


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for other in sorted(graph[node]):
            if state.get(other) == "open":
                return stack[stack.index(other):] + [other]
            if other not in state:
                cycle = visit(other)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_lazy_imports():
    graph = import_graph()
    # ODIM.save imports model_file; the package imports ODIM on first use.
    assert "pyod_odim.model_file" in graph["pyod_odim.detector"]
    assert "pyod_odim.detector" in graph["pyod_odim"]


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_imports_another_modules_private_name():
    modules = _modules()
    private = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                private += [f"{name}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert private == []
