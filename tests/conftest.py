"""Shared fixtures of the optirec test suite.

pytest runs with ``--import-mode=importlib`` and the test folders have no ``__init__.py``, so test
modules cannot import each other: whatever several files need lives here, as fixtures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from optirec.rules import DATA_DIR, Rulebook, default_rulebook

#: The repository root (tests/ sits directly under it).
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root: pyproject.toml, rules/, service/, optirec/."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def book() -> Rulebook:
    """The bundled knowledge base, as the engine uses it."""
    return default_rulebook()


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled ``rules/data`` folder, for tests that break files on purpose."""
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


@pytest.fixture(scope="session")
def run_python(repo_root: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``sys.executable`` with arguments in a fresh process (cwd = repository root) and return the result.

    ``OPTIREC_RULES_DIR`` is removed from the environment so that the child uses the bundled rulebook.
    """

    def run(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "OPTIREC_RULES_DIR"}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return subprocess.run(
            [sys.executable, *args],
            cwd=repo_root,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
