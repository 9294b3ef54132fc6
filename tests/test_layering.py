"""The package's import graph is acyclic, and the engine works without the drawing stack."""
import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tinygrad_l2"
CORE = ["context", "memory", "anomaly", "function", "engine", "ops", "arrays", "tensor_methods", "tensor"]


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name, path, known):
    """Every module of the package that `path` imports, at top level or inside a function.
    `from . import x` counts as importing the submodule x when there is one."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text())
    for block in ast.walk(tree):  # `if TYPE_CHECKING:` imports never run: annotations only
        if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING"):
            block.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "tinygrad_l2")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "tinygrad_l2":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return found - {name}


def import_graph():
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(graph):
    """A list of modules forming a cycle, or None (iterative depth-first search)."""
    state = {}
    for start in graph:
        if start in state:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = "open"
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = "done"
            elif state.get(child) == "open":
                return path[path.index(child):] + [child]
            elif child not in state and child in graph:
                state[child] = "open"
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 20 and "tinygrad_l2.engine" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def layer_of(module):
    """The core layer a module belongs to (a package's submodules belong to the package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in CORE else None


def test_the_core_imports_only_the_layers_below_it():
    graph = import_graph()
    assert "tinygrad_l2.ops.elementwise" in graph
    for name, imported in graph.items():
        layer = layer_of(name)
        if layer is None:
            continue
        allowed = set(CORE[:CORE.index(layer) + 1])
        outside = {m for m in imported if layer_of(m) not in allowed}
        assert not outside, f"{name} imports {sorted(outside)}"


def test_import_and_backward_work_with_graphviz_blocked():
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('graphviz', 'graphviz_pure'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import numpy as np
import tinygrad_l2 as tl
x = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
model = tl.nn.Linear(2, 1, kernel_regularizer=tl.nn.L2(0.1), rng=0)
(model(x).sum() + model.regularization_loss()).backward()
assert x.grad.shape == (2,) and 'graphviz' not in sys.modules
try:
    tl.draw_dot
except ImportError as err:
    print('draw_dot:', err)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr
    assert "draw_dot: tinygrad_l2.draw_dot needs the graphviz Python package" in result.stdout


def test_nothing_in_the_library_imports_the_lessons():
    graph = import_graph()
    lessons = {name for name in graph if name.startswith("tinygrad_l2.lessons")}
    assert {"tinygrad_l2.lessons.cli", "tinygrad_l2.lessons.manual", "tinygrad_l2.lessons.compare"} <= lessons
    for name, imported in graph.items():
        if name not in lessons and name != "tinygrad_l2.__main__":
            assert not imported & lessons, f"{name} imports {sorted(imported & lessons)}"


def test_the_lessons_check_catches_a_library_module_that_imports_them(tmp_path):
    fake = tmp_path / "tinygrad_l2" / "engine.py"
    fake.parent.mkdir()
    fake.write_text("from .lessons import manual\n")
    known = {"tinygrad_l2.engine": fake, "tinygrad_l2.lessons.manual": fake}
    assert imports_of("tinygrad_l2.engine", fake, known) == {"tinygrad_l2.lessons.manual"}


def test_every_function_fits_a_screen_and_every_module_stays_small():
    """Functions at most 50 lines, modules at most about 300 (330), docstrings included."""
    long_functions, long_modules = [], []
    for name, path in modules().items():
        source = path.read_text()
        if len(source.splitlines()) > 330:
            long_modules.append((name, len(source.splitlines())))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > 50:
                    long_functions.append((name, node.name, node.end_lineno - node.lineno + 1))
    assert not long_functions and not long_modules, (long_functions, long_modules)
