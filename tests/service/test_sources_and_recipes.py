"""GET /sources and GET /recipes, and the CLI's ``optirec sources`` / ``optirec recipes``."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from optirec.rules import default_rulebook
from optirec.rules.profile import profile_field_options
from optirec.service.app import create_app
from optirec.service.cli import main
from optirec.service.settings import Settings

_BOOK = default_rulebook()


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(Settings()))


def test_sources_lists_every_entry_with_its_reference_and_link(client: TestClient) -> None:
    body = client.get("/sources").json()
    assert {s["id"] for s in body} == set(_BOOK.bibliography.entries)
    seed = next(s for s in body if s["id"] == "004")
    assert seed["kind"] == "seed" and "도메인별 선호도" in seed["title"]
    papers = [s for s in body if s["kind"] == "paper"]
    assert papers and all(s["link"] and s["link"].startswith("https://") for s in papers)
    assert all(s["reference"] for s in body)


@pytest.mark.parametrize(
    ("cite", "spelling"),
    [
        ("004 §2.3 ResNet", None),
        ("004 §2.5 zero-shot; 004 §2.3 GPT", None),
        ("external: Brown et al. 2020 Table 2.1 (6e-4 at 125M; 300B tokens)", "Brown et al. 2020"),
    ],
)
def test_sources_resolves_a_citation(client: TestClient, cite: str, spelling: str | None) -> None:
    body = client.get("/sources", params={"cite": cite}).json()
    assert len(body) == 1
    if spelling is None:
        assert body[0]["id"] == "004"
    else:
        assert spelling in body[0]["cite_as"]


def test_sources_of_an_unknown_citation_is_empty(client: TestClient) -> None:
    assert client.get("/sources", params={"cite": "external: Nobody et al. 1999"}).json() == []


def test_recipes_filter_by_architecture_alias_and_phase(client: TestClient) -> None:
    everything = client.get("/recipes").json()
    assert len(everything) == len(_BOOK.recipes) >= 80
    llama = client.get("/recipes", params={"architecture": "Llama-2", "phase": "pretraining"}).json()
    assert llama and all(r["job"]["architecture"] == "llama" and r["job"]["phase"] == "pretraining" for r in llama)
    first = llama[0]
    assert first["citation"].startswith("external: ") and first["cite"]["lr"]
    assert set(first["config"]) >= {"optimizer", "lr"}


def test_recipes_refuse_an_unknown_architecture_with_a_suggestion(client: TestClient) -> None:
    r = client.get("/recipes", params={"architecture": "convnxt"})
    assert r.status_code == 422
    issue = r.json()["error"]["issues"][0]
    assert issue["field"] == "architecture" and issue["suggestion"] == "convnext"


@pytest.mark.parametrize("field", ["architecture", "domain", "phase"])
def test_recipes_filters_state_their_valid_values_in_the_schema(client: TestClient, field: str) -> None:
    params = client.get("/openapi.json").json()["paths"]["/recipes"]["get"]["parameters"]
    (schema,) = [p["schema"] for p in params if p["name"] == field]
    assert schema["type"] == "string" and schema["enum"] == profile_field_options()[field]
    for value in schema["enum"]:  # every value the schema offers is one the filter takes
        assert client.get("/recipes", params={field: value}).status_code == 200, value
    assert client.get("/recipes", params={field: "0" * 40}).status_code == 422  # and the schema rules it out


def test_cli_sources_prints_references(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sources", "--cite", "004 §2.3 ResNet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("004 ") and "1 source(s)" in out


def test_cli_sources_json_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sources", "--json", "--id", "004"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "004"
    assert main(["sources", "--id", "00x"]) == 2
    assert "id: unknown source '00x'" in capsys.readouterr().err
    assert main(["sources", "--cite", "external: Nobody et al. 1999"]) == 2
    assert "cite: no source matches" in capsys.readouterr().err


def test_cli_recipes_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recipes", "--architecture", "convnext"]) == 0
    out = capsys.readouterr().out
    assert "convnext." in out and "adamw" in out
    assert main(["recipes", "--domain", "speech", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["job"]["domain"] == "speech" for r in rows)
    assert main(["recipes", "--phase", "pretrainnig"]) == 2
    assert "did you mean 'pretraining'" in capsys.readouterr().err
