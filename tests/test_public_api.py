"""The public surface of ``optirec``: complete ``__all__`` lists, and a recommend path that never imports torch.

``recommend`` is pure Python (stdlib + pydantic); importing torch costs seconds and gigabytes, so the
library and the CLI must not pull it in.  That is checked in fresh interpreters (this test process may
already have torch loaded by other tests) and statically, on the import statements of the source files.
"""

from __future__ import annotations

import ast
import importlib
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import optirec
import optirec.rules

_REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------- __all__
def _module_level_names(source: str) -> set[str]:
    """Names a module binds itself: def/class/assignments and relative (project) re-exports.

    Absolute imports of other libraries (``from importlib.metadata import version``) are not the
    module's own names and are left out.
    """
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                names.update(alias.asname or alias.name for alias in node.names if alias.name != "*")
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.If):
                visit(node.body)
                visit(node.orelse)

    visit(ast.parse(source).body)
    return names


@pytest.mark.parametrize("module", [optirec, optirec.rules], ids=["optirec", "optirec.rules"])
def test_all_is_complete(module: types.ModuleType) -> None:
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), "no duplicates in __all__"
    for name in exported:
        assert hasattr(module, name), f"{module.__name__}.__all__ names {name!r}, which does not exist"
    assert module.__file__ is not None
    own = _module_level_names(Path(module.__file__).read_text(encoding="utf-8"))
    public = {
        name
        for name in own
        if not name.startswith("_") and not isinstance(getattr(module, name, None), types.ModuleType)
    }
    missing = public - set(exported)
    assert not missing, f"{module.__name__} defines public names missing from __all__: {sorted(missing)}"


@pytest.mark.parametrize("module", [optirec, optirec.rules], ids=["optirec", "optirec.rules"])
def test_public_attributes_from_the_project_are_exported(module: types.ModuleType) -> None:
    """The runtime view: every public, non-module attribute whose object comes from optirec is in __all__."""
    exported = set(module.__all__)
    for name, value in vars(module).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        origin = getattr(value, "__module__", None)
        if isinstance(origin, str) and origin.split(".")[0] in {"optirec", "rules"}:
            assert name in exported, f"{module.__name__}.{name} is public but not in __all__"


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, Any] = {}
    exec("from optirec import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(optirec.__all__)
    namespace = {}
    exec("from optirec.rules import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(optirec.rules.__all__)


def test_top_level_reexports_are_the_same_objects() -> None:
    import optirec.optimizers

    for name in optirec.__all__:
        if name == "__version__":
            continue
        home = optirec.optimizers if name in ("autoconfig", "validate") else optirec.rules  # torch-side, lazy
        assert getattr(optirec, name) is getattr(home, name), name


def test_version_is_a_string() -> None:
    assert isinstance(optirec.__version__, str) and optirec.__version__


def test_the_docstring_example_holds() -> None:
    assert optirec.recommend({"architecture": "resnet", "batch_size": 1024}).optimizer.name == "sgd_momentum"


def test_optirec_rules_is_the_package_under_optirec() -> None:
    """The recommend path is reached through ``optirec.rules``, not through a top-level ``rules`` package."""
    assert optirec.rules.__name__ == "optirec.rules"
    assert optirec.recommend.__module__ == "optirec.rules.engine"
    engine = importlib.import_module("optirec.rules.engine")
    assert engine.recommend is optirec.recommend


# ---------------------------------------------------------------------------------------- no torch
_NO_TORCH_SCRIPTS = {
    "import-and-recommend": """
import sys
import optirec
from optirec import recommend
rec = recommend({"architecture": "resnet"})
assert rec.optimizer.name == "sgd_momentum", rec.optimizer.name
""",
    "every-architecture": """
import sys
from optirec import recommend
from optirec.rules import default_rulebook
for arch in default_rulebook().valid("architecture"):
    recommend({"architecture": arch, "num_parameters": 10**6, "batch_size": 64, "total_steps": 100})
""",
    "cli-recommend": """
import sys, io, contextlib
import optirec.service.cli
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = optirec.service.cli.main(["recommend", "--architecture", "vit"])
assert code == 0, code
import json
assert json.loads(out.getvalue())["optimizer"]["name"] == "adamw"
""",
    "diagnose": """
import sys, io, contextlib
from optirec import diagnose
dx = diagnose(train_loss=[2.3, 2.0, 9.0, None], symptoms=["overfitting"])
assert [f.symptom for f in dx.findings] == ["divergence", "overfitting"], dx.findings
import optirec.service.cli
sys.stdin = io.StringIO("[2.3, 2.0, 1.8]")
with contextlib.redirect_stdout(io.StringIO()):
    assert optirec.service.cli.main(["diagnose"]) == 0
""",
    "cli-rules-and-optimizers": """
import sys, io, contextlib
import optirec.service.cli
with contextlib.redirect_stdout(io.StringIO()):
    assert optirec.service.cli.main(["rules", "--level", "data"]) == 0
    assert optirec.service.cli.main(["optimizers", "--json"]) == 0
""",
}
_HEAVY = ("torch", "fastapi", "starlette", "uvicorn", "numpy")
_REPORT = f"\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {_HEAVY!r})))\n"


@pytest.mark.parametrize("script", list(_NO_TORCH_SCRIPTS.values()), ids=list(_NO_TORCH_SCRIPTS))
def test_recommend_path_never_imports_torch(run_python: Any, script: str) -> None:
    result = run_python("-c", script + _REPORT)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert "torch" not in loaded
    assert not loaded, f"heavy modules imported on the recommend path: {loaded}"


def test_the_child_really_is_checking(run_python: Any) -> None:
    """Sanity check of the check above: a child that imports torch is seen to have it."""
    pytest.importorskip("torch")
    result = run_python("-c", "import torch" + _REPORT)
    assert result.returncode == 0, result.stderr
    assert "torch" in json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------- static import scan
_ALLOWED_THIRD_PARTY = {"pydantic", "pydantic_core"}
_FORBIDDEN = {"torch", "fastapi", "starlette", "uvicorn", "httpx", "numpy"}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) for every absolute import in a file, nested ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


_RULES_FILES = sorted((_REPO / "rules").rglob("*.py"))


def test_rules_sources_are_found() -> None:
    names = {p.name for p in _RULES_FILES}
    assert {"engine.py", "loader.py", "profile.py", "schema.py", "errors.py", "recommendation.py"} <= names


@pytest.mark.parametrize("path", _RULES_FILES, ids=[p.relative_to(_REPO).as_posix() for p in _RULES_FILES])
def test_rules_imports_only_stdlib_and_pydantic(path: Path) -> None:
    for line, module in _imports(path):
        assert module not in _FORBIDDEN, f"{path.name}:{line} imports {module}"
        assert module in sys.stdlib_module_names or module in _ALLOWED_THIRD_PARTY or module == "optirec", (
            f"{path.name}:{line} imports {module}, which is neither the standard library nor pydantic"
        )


@pytest.mark.parametrize("name", ["cli.py", "cli_profile.py"])
def test_cli_imports_only_stdlib_at_module_level(name: str) -> None:
    """service/cli.py starts fast: its module-level imports, and those of the profile flags it shares with
    cli_diagnose.py (cli_profile.py), are the standard library only."""
    path = _REPO / "service" / name
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Import):
            modules = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module.split(".")[0]]
        else:
            continue
        for module in modules:
            assert module in sys.stdlib_module_names or module == "__future__", f"{name}:{node.lineno} imports {module}"
