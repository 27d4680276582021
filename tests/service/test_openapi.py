"""openapi.yaml at the repository root: generated from the app, never drifting from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import optirec
from optirec.service.cli import main
from optirec.service.openapi import openapi_document, render_openapi

#: The endpoints of DESIGN.md ("Endpoints"): (method, path). GET / (the web form) is not part of the API schema.
DESIGN_ENDPOINTS = [
    ("post", "/recommend"),
    ("get", "/optimizers"),
    ("get", "/rules"),
    ("post", "/diagnose"),
    ("post", "/trials"),
    ("get", "/trials/{id}"),
    ("delete", "/trials/{id}"),
    ("get", "/healthz"),
    ("get", "/metrics"),
]

DRIFT_HINT = "openapi.yaml is out of date with the app: run `make openapi` and commit the result"


@pytest.fixture(scope="module")
def committed(repo_root: Path) -> str:
    path = repo_root / "openapi.yaml"
    assert path.is_file(), f"openapi.yaml is missing at the repository root: {DRIFT_HINT}"
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def spec(committed: str) -> dict[str, Any]:
    document = yaml.safe_load(committed)
    assert isinstance(document, dict)
    return document


def _normalise(path: str) -> str:
    """``/trials/{trial_id}`` and ``/trials/{id}`` name the same route: compare with parameters blanked."""
    return "/".join("{}" if part.startswith("{") and part.endswith("}") else part for part in path.split("/"))


def test_committed_file_equals_the_generated_one(committed: str) -> None:
    fresh = render_openapi()
    if committed != fresh:
        old = yaml.safe_load(committed) or {}
        new = yaml.safe_load(fresh)
        added = sorted(set(new.get("paths", {})) - set(old.get("paths", {})))
        removed = sorted(set(old.get("paths", {})) - set(new.get("paths", {})))
        pytest.fail(f"{DRIFT_HINT} (paths only in the app: {added}; only in the file: {removed})")


def test_generation_is_stable() -> None:
    assert render_openapi() == render_openapi(openapi_document())


def test_version_is_the_package_version(spec: dict[str, Any]) -> None:
    assert spec["info"]["version"] == optirec.__version__
    assert spec["openapi"].startswith("3.")


@pytest.mark.parametrize(("method", "path"), DESIGN_ENDPOINTS, ids=[f"{m.upper()} {p}" for m, p in DESIGN_ENDPOINTS])
def test_design_endpoint_is_documented(spec: dict[str, Any], method: str, path: str) -> None:
    paths = {_normalise(p): ops for p, ops in spec["paths"].items()}
    assert _normalise(path) in paths, (
        f"{method.upper()} {path} is not in openapi.yaml; documented: {sorted(spec['paths'])}"
    )
    assert method in paths[_normalise(path)], f"{path} has no {method.upper()} operation in openapi.yaml"


def test_recommend_documents_profile_and_recommendation(spec: dict[str, Any]) -> None:
    post = spec["paths"]["/recommend"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Profile")
    ok = post["responses"]["200"]["content"]["application/json"]["schema"]
    # a Recommendation, or with ?format= other than json an Export wrapping one (schemathesis checks both)
    refs = [branch["$ref"] for branch in ok.get("anyOf", [ok])]
    assert refs[0].endswith("/Recommendation"), refs
    assert [r.rsplit("/", 1)[-1] for r in refs[1:]] == ["Export"], refs
    schemas = spec["components"]["schemas"]
    for field in ("optimizer", "schedule", "alternatives", "avoid", "rationale", "warnings", "rulebook"):
        assert field in schemas["Recommendation"]["properties"], field


def test_cli_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "openapi.yaml"
    assert main(["openapi", "--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render_openapi()
    assert main(["openapi", "--check", "--output", str(target)]) == 0
    target.write_text(target.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert main(["openapi", "--check", "--output", str(target)]) == 1
    assert "make openapi" in capsys.readouterr().err
    assert main(["openapi", "--check", "--output", str(tmp_path / "missing.yaml")]) == 2


def test_cli_prints_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["openapi"]) == 0
    assert capsys.readouterr().out == render_openapi()
