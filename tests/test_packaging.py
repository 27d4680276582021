"""The wheel: everything under ``optirec/``, nothing at a generic top level, and it works once installed.

In the source tree ``optirec/rules``, ``optirec/service`` and ``optirec/optimizers`` are links to the
top-level folders; the wheel must copy them under ``optirec/`` so that no ``rules`` / ``service`` /
``optimizers`` package lands in site-packages.  The installed copy is exercised in a fresh virtual
environment that borrows this environment's dependencies (pydantic...) through a ``.pth`` file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from optirec.rules import DATA_DIR, default_rulebook

pytestmark = pytest.mark.slow

_REPO = Path(__file__).resolve().parent.parent
_GENERIC = ("rules", "service", "optimizers")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "OPTIREC_RULES_DIR"}}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel once: without build isolation when hatchling is importable here, else pip fetches it."""
    out = tmp_path_factory.mktemp("wheel")
    args = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out)]
    if importlib.util.find_spec("hatchling") is not None:
        args.append("--no-build-isolation")
    _run([*args, str(_REPO)], cwd=out, timeout=180)
    wheels = sorted(out.glob("optirec-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def test_wheel_name_and_version(wheel: Path) -> None:
    project = tomllib.loads((_REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert wheel.name.startswith(f"optirec-{project['version']}-")
    assert wheel.name.endswith("-py3-none-any.whl")


def test_wheel_contains_the_package(names: list[str]) -> None:
    required = {
        "optirec/__init__.py",
        "optirec/__main__.py",
        "optirec/py.typed",
        "optirec/rules/__init__.py",
        "optirec/rules/engine.py",
        "optirec/rules/loader.py",
        "optirec/service/__init__.py",
        "optirec/service/cli.py",
        "optirec/optimizers/__init__.py",
    }
    assert required <= set(names), sorted(required - set(names))


def test_wheel_contains_every_data_file(names: list[str]) -> None:
    bundled = {f"optirec/rules/data/{p.relative_to(DATA_DIR).as_posix()}" for p in DATA_DIR.rglob("*.toml")}
    assert len(bundled) >= 10
    assert any(name.startswith("optirec/rules/data/recipes/") for name in bundled)  # the recipe library ships
    shipped = {n for n in names if n.startswith("optirec/rules/data/")}
    assert shipped == bundled


def test_wheel_contains_every_source_file(names: list[str]) -> None:
    expected = {
        f"optirec/{p.relative_to(_REPO).as_posix()}"
        for folder in _GENERIC
        for p in (_REPO / folder).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    missing = expected - set(names)
    assert not missing, sorted(missing)


def test_wheel_has_no_generic_top_level_entries(names: list[str]) -> None:
    top = {n.split("/", 1)[0] for n in names}
    dist_info = next(n.split("/", 1)[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert top == {"optirec", dist_info}, top
    for generic in _GENERIC:
        assert not any(n == generic or n.startswith(f"{generic}/") for n in names), generic


def test_wheel_has_no_bytecode_or_caches(names: list[str]) -> None:
    junk = [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo")) or "/.git" in n]
    assert not junk, junk


def test_wheel_metadata(wheel: Path, names: list[str]) -> None:
    dist_info = next(n.split("/", 1)[0] for n in names if n.endswith(".dist-info/METADATA"))
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(f"{dist_info}/METADATA").decode()
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    assert "Name: optirec" in metadata
    assert any(line.startswith("Requires-Dist: pydantic") for line in metadata.splitlines())
    # torch is only an extra: the recommend path installs and runs without it
    torch_lines = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: torch")]
    assert torch_lines and all("extra ==" in line for line in torch_lines), torch_lines
    assert "optirec = optirec.service.cli:main" in entry_points


def test_catalog_class_paths_inside_optirec_are_shipped(names: list[str]) -> None:
    """An optimizer whose class lives in optirec (Newton, K-FAC...) must have its module in the wheel."""
    for spec in default_rulebook().optimizers.values():
        if not spec.class_path.startswith("optirec."):
            continue
        module = spec.class_path.rsplit(".", 1)[0].replace(".", "/")
        assert f"{module}.py" in names or f"{module}/__init__.py" in names, f"{spec.name}: {spec.class_path}"


# ---------------------------------------------------------------------------------------- installed copy
_CHECK = """
import json, sys, importlib.util
import optirec
from optirec.rules import recommend, default_rulebook, DATA_DIR
rec = recommend({"architecture": "resnet", "batch_size": 1024})
print(json.dumps({
    "optirec": optirec.__file__,
    "rules": sys.modules["optirec.rules"].__file__,
    "cli": importlib.util.find_spec("optirec.service.cli").origin,
    "data_dir": str(DATA_DIR),
    "optimizer": rec.optimizer.name,
    "hash": default_rulebook().hash,
    "version": optirec.__version__,
    "top_level_rules": importlib.util.find_spec("rules") is not None,
    "top_level_service": importlib.util.find_spec("service") is not None,
    "top_level_optimizers": importlib.util.find_spec("optimizers") is not None,
    "torch": "torch" in sys.modules,
}))
"""


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh venv with the wheel installed (no deps); this environment's site-packages via a .pth file."""
    root = tmp_path_factory.mktemp("fresh")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)], cwd=root, timeout=180)
    purelib = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root).stdout.strip()
    )
    outer = sysconfig.get_paths()["purelib"]
    (purelib / "zz_outer_site_packages.pth").write_text(outer + "\n", encoding="utf-8")
    return python, purelib


def test_installed_wheel_works_in_a_fresh_venv(installed: tuple[Path, Path]) -> None:
    python, purelib = installed
    result = _run([str(python), "-c", _CHECK], cwd=purelib.parent)  # not the repository: '' must not find optirec
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("optirec", "rules", "cli", "data_dir"):
        assert Path(report[key]).resolve().is_relative_to(purelib.resolve()), (key, report[key])
    assert report["optimizer"] == "sgd_momentum"
    assert report["hash"] == default_rulebook().hash
    project = tomllib.loads((_REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert report["version"] == project["version"]
    assert not report["top_level_rules"]
    assert not report["top_level_service"]
    assert not report["top_level_optimizers"]
    assert not report["torch"]


def test_fresh_site_packages_has_no_generic_top_level(installed: tuple[Path, Path]) -> None:
    _, purelib = installed
    for generic in _GENERIC:
        assert not (purelib / generic).exists(), generic
    assert (purelib / "optirec" / "rules" / "data" / "vocabulary.toml").is_file()
    assert not (purelib / "optirec" / "rules").is_symlink()


def test_installed_console_script(installed: tuple[Path, Path]) -> None:
    python, purelib = installed
    script = python.parent / "optirec"
    assert script.is_file()
    result = _run([str(script), "recommend", "--architecture", "vit", "--compact"], cwd=purelib.parent)
    assert json.loads(result.stdout)["optimizer"]["name"] == "adamw"
    result = subprocess.run(
        [str(script), "recommend", "--architecture", "resnett"],
        cwd=purelib.parent,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "did you mean 'resnet'" in result.stderr


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal", ".lock"])
def test_the_trial_store_files_a_running_server_writes_are_ignored_by_git(suffix: str) -> None:
    """The default store (Settings.trial_store) and SQLite's WAL/shared-memory/journal files beside it must not
    show up in `git status` while `make run` serves from the checkout."""
    from optirec.service.settings import Settings

    store = Path(Settings.model_fields["trial_store"].default).name + suffix
    if shutil.which("git") is None or not (_REPO / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "check-ignore", "-q", store], cwd=_REPO, check=False)
    assert done.returncode == 0, f"{store} is not ignored by .gitignore"
