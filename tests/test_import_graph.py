"""The import graph of the four installed folders: no cycles, and imports run one way.

DESIGN.md: `server/` -> `tools/` -> `flow_library/`, and `evals/` -> `tools/`, `flow_library/`;
`evals/` never imports `server/`. Every `import` counts, including those inside functions (a lazy
import is still a dependency); only type-only imports under `if TYPE_CHECKING:` are left out.

Run `pytest tests/test_import_graph.py -s` to print the folder-level graph (sibling folders, each with its
subfolders; see `package_graph`).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("server", "tools", "flow_library", "evals")

# What each top-level folder may import (besides itself).
ALLOWED = {
    "flow_library": set(),
    "tools": {"flow_library"},
    "evals": {"tools", "flow_library"},
    "server": {"tools", "flow_library", "evals"},
}

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except the bodies of `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


def _resolve(name: str, modules: set[str]) -> str | None:
    """The longest known module that `name` (a dotted path, without `comfygen.`) names."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def build_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for f in FOLDERS for p in (ROOT / f).rglob("*.py")}
    modules = set(files)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        package = mod if is_pkg else mod.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name.removeprefix("comfygen.") for a in node.names if a.name.startswith("comfygen.")]
            elif node.level:  # relative import
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
                targets = [f"{prefix}.{a.name}" for a in node.names]
            elif node.module and node.module.startswith("comfygen."):
                prefix = node.module.removeprefix("comfygen.")
                targets = [f"{prefix}.{a.name}" for a in node.names]
            elif node.module == "comfygen":
                targets = [a.name for a in node.names]
            for target in targets:
                dep = _resolve(target, modules)
                if dep and dep != mod:
                    graph[mod].add(dep)
    return graph


def _is_package(mod: str, graph: dict[str, set[str]]) -> bool:
    return any(m.startswith(mod + ".") for m in graph)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
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
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _path_in(comp: list[str], graph: dict[str, set[str]]) -> str:
    """One concrete cycle through the component, for the failure message."""
    members = set(comp)
    start = comp[0]
    prev: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                path = [start]
                while node != start:
                    path.append(node)
                    node = prev[node]
                return " -> ".join([start] + path[1:][::-1] + [start])
            if nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    return " <-> ".join(comp)


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Imports between sibling folders, each folder counted with everything below it.

    ``server.commands.bench -> evals.perf.runner`` is an edge ``server -> evals``, and
    ``tools.categorize.fast -> tools.planner.runtime`` one ``tools.categorize -> tools.planner``. An import
    between a folder's own modules and its subfolders (``tools.pipeline -> tools.comfy``,
    ``tools.comfy.client -> tools.errors``) is not a folder edge: a package's loose modules are its base layer
    for some subpackages and use others; any cycle among those modules is still caught module by module.
    """
    pkgs: dict[str, set[str]] = defaultdict(set)
    for mod, deps in graph.items():
        for dep in deps:
            src, dst = mod.split("."), dep.split(".")
            common = 0
            while common < min(len(src), len(dst)) and src[common] == dst[common]:
                common += 1
            if common >= min(len(src), len(dst)):
                continue  # one contains the other (a package and its own __init__ or module)
            a, b = ".".join(src[: common + 1]), ".".join(dst[: common + 1])
            if _is_package(a, graph) and _is_package(b, graph):
                pkgs[a].add(b)
                pkgs[b]
    return dict(pkgs)


def test_no_cycle_between_modules():
    graph = build_graph()
    cycles = _cycles(graph)
    assert not cycles, "import cycles between modules:\n" + "\n".join(_path_in(c, graph) for c in cycles)


def test_no_cycle_between_packages():
    pkgs = package_graph(build_graph())
    cycles = _cycles(pkgs)
    assert not cycles, "import cycles between packages:\n" + "\n".join(_path_in(c, pkgs) for c in cycles)


def test_the_job_runner_does_not_know_the_service():
    """Run jobs run the bodies they are given; the service starts them (not the other way round), so the
    runner does not import the service, not even for its types."""
    tree = ast.parse((ROOT / "tools" / "app" / "jobs.py").read_text(encoding="utf-8"))
    names = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m.endswith("service") for m in names), names


def test_imports_run_one_way():
    graph = build_graph()
    bad = sorted(
        f"{mod} imports {dep}"
        for mod, deps in graph.items()
        for dep in deps
        if (src := mod.split(".")[0]) != (dst := dep.split(".")[0]) and dst not in ALLOWED[src]
    )
    assert not bad, "imports against DESIGN.md's one-way rule:\n" + "\n".join(bad)


def test_graph_sees_lazy_imports_and_skips_type_checking(tmp_path):
    src = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from comfygen.server import cli\n"
        "def f():\n    from ..graph import accel\n"
    )
    tree = ast.parse(src)
    found = _imports(tree)
    assert len(found) == 2  # typing + the lazy relative one; the TYPE_CHECKING one is skipped
    assert any(isinstance(n, ast.ImportFrom) and n.level == 2 for n in found)


def test_print_folder_graph():
    pkgs = package_graph(build_graph())
    for src in sorted(pkgs):
        print(f"{src} -> {', '.join(sorted(pkgs[src])) or '-'}")
