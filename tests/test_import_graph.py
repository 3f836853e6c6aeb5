"""The core is a one-way stack: no import cycles, and no import from a lower layer to a higher one.

Every module under cvdemo/ is parsed (not imported) with `ast`; every import counts, including
the ones inside functions and under `if TYPE_CHECKING:`, with relative imports resolved. Importing
`a.b.c` also runs the packages `a.b` and `a` first, so a module outside a package that imports one
of its submodules depends on that package's `__init__` too.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top. A module may import its own layer (without cycles) and the layers below it.
# Each pattern names a module, or a package with everything in it; the longest match wins.
LAYERS: dict[str, tuple[str, ...]] = {
    "base": ("cvdemo", "cvdemo.allocator", "cvdemo.errors", "cvdemo.limits", "cvdemo.config", "cvdemo.device", "cvdemo.checkpoint",
             "cvdemo.runs", "cvdemo.spare", "cvdemo.public_names", "cvdemo.run_list", "cvdemo.progress", "cvdemo.share", "cvdemo.recipes",
             "cvdemo.health", "cvdemo.lessons"),
    "data": ("cvdemo.data", "cvdemo.uploads"),
    "models": ("cvdemo.models",),
    "train": ("cvdemo.train", "cvdemo.predict"),
    # cvdemo.explain and cvdemo.report are packages: each pattern covers every module in them.
    "analysis": ("cvdemo.evaluate", "cvdemo.embed", "cvdemo.explain", "cvdemo.filters", "cvdemo.plots",
                 "cvdemo.report", "cvdemo.export", "cvdemo.compare", "cvdemo.augment_preview", "cvdemo.audit",
                 "cvdemo.lesson_results"),
    "faces": ("cvdemo.cli*", "cvdemo.bench*", "cvdemo.__main__"),
}
# data and models are peers: each may use the other, as long as no cycle forms.
RANK = {"base": 0, "data": 1, "models": 1, "train": 2, "analysis": 3, "faces": 4}

Graph = dict[str, set[str]]


# -- reading the graph ---------------------------------------------------------------------------------

def module_files(root: Path, package: str) -> dict[str, Path]:
    """{dotted module name: file} for every .py file of `package` under `root` (a package is its __init__)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imported_names(module: str, source: str, is_package: bool) -> set[str]:
    """Absolute dotted names a module's source imports anywhere in it; `from x import y` gives x and x.y."""
    names: set[str] = set()
    here = module.split(".") if is_package else module.split(".")[:-1]  # the package relative imports start in
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{a.name}" for a in node.names if a.name != "*")
    return names


def build_graph(root: Path, package: str = "cvdemo") -> Graph:
    """{module: modules of `package` it imports}, parent packages included as Python runs them."""
    files = module_files(root, package)
    graph: Graph = {}
    for module, path in files.items():
        targets = set()
        for name in imported_names(module, path.read_text(encoding="utf-8"), path.name == "__init__.py"):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                inside = module == candidate or module.startswith(candidate + ".")
                if candidate in files and not inside:  # a package the module is in is already running
                    targets.add(candidate)
        graph[module] = targets
    return graph


# -- checking it ---------------------------------------------------------------------------------------

def layer_of(module: str, layers: dict[str, tuple[str, ...]] = LAYERS) -> str | None:
    """The layer whose most specific pattern matches `module` (a package pattern covers its submodules)."""
    best, best_len = None, -1
    for layer, patterns in layers.items():
        for pattern in patterns:
            hit = fnmatch.fnmatchcase(module, pattern) or (
                "*" not in pattern and pattern != "cvdemo" and module.startswith(pattern + "."))
            if hit and len(pattern) > best_len:
                best, best_len = layer, len(pattern)
    return best


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle (a -> ... -> a) per strongly connected group of modules, found with Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_through(graph, set(g), g[0]) for g in groups]


def _cycle_through(graph: Graph, group: set[str], start: str) -> list[str]:
    """A shortest path start -> ... -> start inside one strongly connected group (breadth-first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if w in group and w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start, start]


def problems(graph: Graph, layers: dict[str, tuple[str, ...]] = LAYERS, rank: dict[str, int] = RANK) -> list[str]:
    """One sentence per module without a layer, per upward import, and per import cycle."""
    found = []
    for module in sorted(graph):
        if layer_of(module, layers) is None:
            found.append(f"{module} has no layer: add it to LAYERS in tests/test_import_graph.py")
    for module in sorted(graph):
        mine = layer_of(module, layers)
        for target in sorted(graph[module]):
            theirs = layer_of(target, layers)
            if mine is not None and theirs is not None and rank[theirs] > rank[mine]:
                found.append(f"{module} ({mine}) imports {target} ({theirs}): upward")
    for cycle in find_cycles(graph):
        found.append("import cycle: " + " -> ".join(cycle))
    return found


# -- the real package ----------------------------------------------------------------------------------

def test_the_core_imports_only_downward_and_without_cycles():
    graph = build_graph(ROOT)
    assert len(graph) > 40 and graph["cvdemo.data.loader"]  # the parse found the package
    assert problems(graph) == []


def test_every_layer_pattern_names_something_that_exists():
    modules = list(build_graph(ROOT))
    stale = [p for patterns in LAYERS.values() for p in patterns
             if not any(fnmatch.fnmatchcase(m, p) or m.startswith(p + ".") for m in modules)]
    assert stale == []


# -- the checker itself, on made-up graphs ----------------------------------------------------------

def test_checker_passes_a_clean_graph():
    clean = {"cvdemo.errors": set(), "cvdemo.runs": {"cvdemo.errors"},
             "cvdemo.data.loader": {"cvdemo.errors", "cvdemo.data.sharding"}, "cvdemo.data.sharding": set(),
             "cvdemo.train.distributed": {"cvdemo.data.sharding", "cvdemo.runs"},
             "cvdemo.evaluate": {"cvdemo.models.features"}, "cvdemo.models.features": {"cvdemo.data.loader"},
             "cvdemo.cli": {"cvdemo.evaluate", "cvdemo.train.distributed"}}
    assert problems(clean) == []


def test_checker_names_an_upward_import():
    graph = {"cvdemo.errors": set(), "cvdemo.data.loader": {"cvdemo.train.distributed", "cvdemo.errors"},
             "cvdemo.train.distributed": {"cvdemo.errors"}}
    assert problems(graph) == [
        "cvdemo.data.loader (data) imports cvdemo.train.distributed (train): upward"]


def test_checker_names_a_cycle_even_within_one_layer():
    graph = {"cvdemo.evaluate": {"cvdemo.embed"}, "cvdemo.embed": {"cvdemo.evaluate"},
             "cvdemo.explain": {"cvdemo.embed"}}
    assert problems(graph) == ["import cycle: cvdemo.embed -> cvdemo.evaluate -> cvdemo.embed"]


def test_checker_finds_the_cycle_that_crossed_four_layers():
    graph = {"cvdemo.data.loader": {"cvdemo.train.distributed"}, "cvdemo.train.distributed": {"cvdemo.train.job"},
             "cvdemo.train.job": {"cvdemo.predict"}, "cvdemo.predict": {"cvdemo.data.loader"}}
    found = problems(graph)
    assert "cvdemo.data.loader (data) imports cvdemo.train.distributed (train): upward" in found
    assert found[-1] == ("import cycle: cvdemo.data.loader -> cvdemo.train.distributed -> cvdemo.train.job "
                         "-> cvdemo.predict -> cvdemo.data.loader")


def test_checker_asks_for_a_layer_for_a_new_module():
    assert problems({"cvdemo.mystery": set()}) == [
        "cvdemo.mystery has no layer: add it to LAYERS in tests/test_import_graph.py"]


def test_the_parse_sees_function_level_relative_and_parent_package_imports(tmp_path):
    pkg = tmp_path / "cvdemo"
    (pkg / "data").mkdir(parents=True)
    (pkg / "train").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("from .loader import make_loader\n")
    (pkg / "data" / "loader.py").write_text(
        "from . import imageset\n"
        "def shard():\n    from ..train.distributed import shard_order\n    return shard_order\n")
    (pkg / "data" / "imageset.py").write_text("from ..errors import *\n")
    (pkg / "train" / "__init__.py").write_text("")
    (pkg / "train" / "distributed.py").write_text("import cvdemo.data.loader\n")
    graph = build_graph(tmp_path)
    assert graph["cvdemo.data"] == {"cvdemo.data.loader"}
    assert graph["cvdemo.data.loader"] == {"cvdemo.data.imageset", "cvdemo.train", "cvdemo.train.distributed"}
    assert graph["cvdemo.data.imageset"] == {"cvdemo.errors"}
    assert graph["cvdemo.train.distributed"] == {"cvdemo.data", "cvdemo.data.loader"}
    found = problems(graph)
    assert "cvdemo.data.loader (data) imports cvdemo.train.distributed (train): upward" in found
    assert any(p.startswith("import cycle: ") and "cvdemo.train.distributed" in p for p in found)
