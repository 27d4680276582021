"""No import cycles between the modules of ``optirec`` (a project standard).

The graph is built from the source, not from ``sys.modules``: every ``import`` and ``from ... import``
anywhere in a file counts, function-local and ``TYPE_CHECKING`` ones included, because a lazy import
only hides a cycle until the day someone moves it to the top.  ``from . import x`` depends on the
package (its ``__init__`` runs first) and on the submodule ``x``; ``from pkg import name`` depends on
``pkg`` and, where ``pkg.name`` is a module, on that too.  Any strongly connected component of more than
one module is a cycle and fails the test, naming the modules and the import lines that close it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parent.parent
_PACKAGES = ("rules", "optimizers", "service")


def module_name(root: Path, path: Path, prefix: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([prefix, *parts])


def import_graph(root: Path, packages: tuple[str, ...], prefix: str = "optirec") -> dict[str, dict[str, int]]:
    """module -> {imported project module: line of the first import of it} for the packages under ``root``."""
    files = {module_name(root, p, prefix): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    graph: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        deps: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            for candidate in candidates:
                if candidate in files and candidate != name:
                    deps.setdefault(candidate, node.lineno)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def describe(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    """The imports inside one cycle, as ``a:LINE -> b`` lines."""
    members = set(component)
    edges = [f"  {m}:{line} -> {dep}" for m in component for dep, line in sorted(graph[m].items()) if dep in members]
    return "import cycle between " + ", ".join(component) + "\n" + "\n".join(edges)


# ------------------------------------------------------------------------------------ the checker itself
_TREES = {
    "no-cycle": ({"a/__init__.py": "", "a/x.py": "import p.a.y\nfrom p.a.y import g\n", "a/y.py": "import os\n"}, []),
    "top-level-cycle": (
        {"a/__init__.py": "", "a/x.py": "from .y import g\n", "a/y.py": "from .x import f\n"},
        [["p.a.x", "p.a.y"]],
    ),
    "function-local-import-counts": (
        {"a/__init__.py": "", "a/x.py": "import p.a.y\n", "a/y.py": "def f():\n    from .x import h\n"},
        [["p.a.x", "p.a.y"]],
    ),
    "submodule-through-its-package": (
        {"a/__init__.py": "from .x import f\n", "a/x.py": "from . import y\n", "a/y.py": ""},
        [["p.a", "p.a.x"]],
    ),
    "submodule-importing-its-sibling": (
        {"a/__init__.py": "from .x import f\n", "a/x.py": "from .y import g\n", "a/y.py": ""},
        [],
    ),
    "across-packages": (
        {"a/__init__.py": "", "a/x.py": "from p.b.z import f\n", "b/__init__.py": "", "b/z.py": "from p.a import x\n"},
        [["p.a.x", "p.b.z"]],
    ),
    "two-cycles-three-modules": (
        {
            "a/__init__.py": "",
            "a/x.py": "from .y import g\n",
            "a/y.py": "from .z import h\n",
            "a/z.py": "from .x import f\n",
            "a/u.py": "from .v import f\n",
            "a/v.py": "from .u import f\n",
        },
        [["p.a.u", "p.a.v"], ["p.a.x", "p.a.y", "p.a.z"]],
    ),
    "outside-modules-ignored": ({"a/__init__.py": "import json\nfrom typing import Any\n", "a/x.py": ""}, []),
}


@pytest.mark.parametrize(("files", "expected"), list(_TREES.values()), ids=list(_TREES))
def test_the_checker_finds_cycles(tmp_path: Path, files: dict[str, str], expected: list[list[str]]) -> None:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    packages = tuple(sorted({rel.split("/")[0] for rel in files}))
    assert cycles(import_graph(tmp_path, packages, prefix="p")) == expected


def test_the_checker_sees_the_project() -> None:
    graph = import_graph(_REPO, _PACKAGES)
    assert {"optirec.rules.engine", "optirec.optimizers.builder", "optirec.service.cli"} <= set(graph)
    assert "optirec.rules.profile" in graph["optirec.rules.engine"]


# ------------------------------------------------------------------------------------ the project
def test_no_import_cycles() -> None:
    graph = import_graph(_REPO, _PACKAGES)
    found = cycles(graph)
    assert not found, "\n".join(describe(graph, component) for component in found)
