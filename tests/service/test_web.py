"""The web form at ``/``: the page, its static assets, their security headers and ``GET /profile/fields``."""

from __future__ import annotations

import re
import types
import typing
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from optirec.rules import default_rulebook
from optirec.rules.profile import ENUM_FIELDS, Profile, profile_field_options
from optirec.service.app import create_app
from optirec.service.routers.web import STATIC_DIR
from optirec.service.settings import Settings

SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(Settings()))


@pytest.fixture(scope="module")
def fields(client: TestClient) -> dict[str, dict[str, typing.Any]]:
    r = client.get("/profile/fields")
    assert r.status_code == 200
    return {f["name"]: f for f in r.json()}


class _Refs(HTMLParser):
    """Every src/href/action of a page, and its inline scripts/styles/handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.inline_scripts = 0
        self.inline_styles = 0
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href", "action", "formaction", "srcset", "data", "poster"):
            if values.get(name):
                self.refs.append((tag, name, values[name] or ""))
        self.handlers += [n for n, _ in attrs if n.startswith("on")]
        if "style" in values:
            self.inline_styles += 1
        if tag == "style":
            self.inline_styles += 1
        self._in_script = tag == "script"
        if tag == "script" and not values.get("src"):
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def _assert_security_headers(headers: typing.Mapping[str, str]) -> None:
    for name, value in SECURITY.items():
        assert headers.get(name) == value, name
    assert headers.get("referrer-policy"), "Referrer-Policy"
    csp = headers.get("content-security-policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}
    assert directives.get("default-src") == ["'self'"], csp
    script = directives.get("script-src", directives["default-src"])
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, csp
    assert all(s.startswith("'") for s in script), f"scripts only from the page's own origin: {csp}"
    assert directives.get("frame-ancestors") == ["'none'"], csp


# ---------------------------------------------------------------------------------------- the page
def test_index_is_html_with_security_headers(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    _assert_security_headers(r.headers)
    assert "<form" in r.text
    for element_id in ("profile-form", "optimizer-name", "trial-button", "trial-progress", "trial-steps"):
        assert f'id="{element_id}"' in r.text, element_id


def test_page_has_no_external_urls_and_no_inline_script(client: TestClient) -> None:
    html = client.get("/").text
    parser = _Refs()
    parser.feed(html)
    assert parser.refs, "the page loads its assets"
    for tag, attr, value in parser.refs:
        assert not re.match(r"^\s*([a-z][a-z0-9+.-]*:)?//", value, re.I), f"<{tag} {attr}={value!r}> leaves the origin"
        assert not value.lower().startswith(("http:", "https:", "javascript:")), value
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", html, re.I)
    assert parser.inline_scripts == 0, "CSP forbids inline script: everything lives in app.js"
    assert parser.inline_styles == 0, "CSP forbids inline style: everything lives in app.css"
    assert not parser.handlers, parser.handlers
    srcs = {value for tag, attr, value in parser.refs if attr in ("src", "href")}
    assert {"/static/app.js", "/static/app.css"} <= srcs


def test_static_assets_reference_nothing_external() -> None:
    """No CDN, no web fonts, no remote images in the assets either (the SVG namespace is not a fetch)."""
    for path in STATIC_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        text = text.replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"https?://", text), f"{path.name} references an external URL"
        assert "@import" not in text and "url(http" not in text, path.name
    js = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    assert "innerHTML" not in js and "outerHTML" not in js and "insertAdjacentHTML" not in js, "API data as text only"
    assert "eval(" not in js and "new Function" not in js


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/static/app.js", ("text/javascript", "application/javascript")),
        ("/static/app.css", ("text/css",)),
        ("/static/index.html", ("text/html",)),
        ("/static/favicon.svg", ("image/svg+xml",)),
    ],
)
def test_static_files_are_served_with_their_types_and_headers(
    client: TestClient, path: str, media_type: tuple[str, ...]
) -> None:
    r = client.get(path)
    assert r.status_code == 200, path
    assert r.headers["content-type"].split(";")[0].strip() in media_type, r.headers["content-type"]
    _assert_security_headers(r.headers)
    assert r.content == (STATIC_DIR / Path(path).name).read_bytes()


def test_every_referenced_asset_exists(client: TestClient) -> None:
    parser = _Refs()
    parser.feed(client.get("/").text)
    for _, _, value in parser.refs:
        if value.startswith("/static/"):
            assert client.get(value).status_code == 200, value


@pytest.mark.parametrize("path", ["/static/missing.js", "/static/../app.py", "/static/%2e%2e/app.py"])
def test_missing_or_escaping_static_paths_are_404_json(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert r.json()["error"]["status"] == 404


def test_page_and_static_are_not_in_the_schema_but_fields_are(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not any(p.startswith("/static") for p in paths)
    op = paths["/profile/fields"]["get"]
    assert "knowledge base" in op["tags"]


# ---------------------------------------------------------------------------------------- /profile/fields
def _base_type(annotation: typing.Any) -> typing.Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _base_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(inner)
    return origin or annotation


def test_fields_list_every_profile_field_in_model_order(fields: dict[str, dict[str, typing.Any]]) -> None:
    assert list(fields) == list(Profile.model_fields)


def test_field_types_follow_the_model(fields: dict[str, dict[str, typing.Any]]) -> None:
    expected = {bool: "boolean", int: "integer", float: "number"}
    for name, info in Profile.model_fields.items():
        kind = fields[name]["type"]
        base = _base_type(info.annotation)
        if name in ENUM_FIELDS:
            assert kind == ("multi_enum" if base is list else "enum"), name
        else:
            assert kind == expected[base], (name, kind)
        assert fields[name]["description"] == (info.description or ""), name
        assert fields[name]["label"], name


def test_enum_options_are_exactly_what_the_engine_validates(
    client: TestClient, fields: dict[str, dict[str, typing.Any]]
) -> None:
    book = default_rulebook()
    valid = profile_field_options()
    assert set(valid) == {n for n, f in fields.items() if f["type"] in ("enum", "multi_enum")}
    for name, values in valid.items():
        options = fields[name]["options"]
        assert sorted(o["value"] for o in options) == sorted(values), name
        assert len({o["value"] for o in options}) == len(options), f"{name}: duplicates"
        terms = book.terms[ENUM_FIELDS[name]]
        for option in options:
            assert option["label"] == terms[option["value"]].label
            # every option the form offers is accepted by the engine
            payload = [option["value"]] if fields[name]["type"] == "multi_enum" else option["value"]
            r = client.post("/recommend", json={name: payload})
            assert r.status_code == 200, (name, option["value"], r.text)


def test_non_enum_fields_have_no_options(fields: dict[str, dict[str, typing.Any]]) -> None:
    for name, field in fields.items():
        if name not in ENUM_FIELDS:
            assert field["options"] == [], name


def test_numeric_bounds_match_the_model_and_the_engine(
    client: TestClient, fields: dict[str, dict[str, typing.Any]]
) -> None:
    for name, field in fields.items():
        if field["type"] not in ("integer", "number"):
            continue
        low = field["minimum"] if field["minimum"] is not None else field["exclusive_minimum"]
        high = field["maximum"] if field["maximum"] is not None else field["exclusive_maximum"]
        assert low is not None and high is not None, name
        schema = Profile.model_json_schema()["properties"][name]["anyOf"][0]
        assert schema.get("minimum", schema.get("exclusiveMinimum")) == low, name
        assert schema.get("maximum", schema.get("exclusiveMaximum")) == high, name
        inside = low if field["minimum"] is not None else low + 1
        outside = low - 1 if field["minimum"] is not None else low
        assert client.post("/recommend", json={name: inside}).status_code == 200, name
        r = client.post("/recommend", json={name: outside})
        assert r.status_code == 422, name
        assert r.json()["error"]["issues"][0]["field"] == name
        if field["maximum"] is not None:
            assert client.post("/recommend", json={name: high + 1}).status_code == 422, name


def test_multi_enum_max_items(fields: dict[str, dict[str, typing.Any]]) -> None:
    assert fields["data"]["max_items"] == 16


def test_a_new_profile_field_shows_up_by_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """Derived from the live model: a field added to Profile appears without touching the web router."""
    from pydantic import Field, create_model

    from optirec.service.routers import web

    extended = create_model(
        "ExtendedProfile",
        __base__=Profile,
        warm_start=(bool | None, Field(default=None, description="Resumes from a checkpoint.")),
        grad_accum=(int | None, Field(default=None, ge=1, le=64)),
    )
    monkeypatch.setattr(web, "Profile", extended)
    got = {f.name: f for f in web.profile_fields()}
    assert got["warm_start"].type == "boolean"
    assert got["warm_start"].description == "Resumes from a checkpoint."
    assert (got["grad_accum"].type, got["grad_accum"].minimum, got["grad_accum"].maximum) == ("integer", 1, 64)
    assert list(got)[: len(Profile.model_fields)] == list(Profile.model_fields)


@pytest.mark.parametrize(
    ("page", "kinds"),
    [("/docs", {"script": "javascript", "stylesheet": "css"})],
    ids=["swagger-ui"],
)
def test_docs_pages_load_only_assets_the_service_serves(client: TestClient, page: str, kinds: dict[str, str]) -> None:
    """Offline the CDN copies FastAPI's pages used are unreachable (a blank page): every asset is local and served."""
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    parser = _Refs()
    parser.feed(r.text)
    urls = [url for _, _, url in parser.refs] + re.findall(r"""url:\s*['"]([^'"]+)['"]""", r.text)
    assert urls, r.text
    external = [u for u in urls if re.match(r"^(https?:)?//", u)]
    assert not external, external
    served: dict[str, str] = {}
    for tag, attr, url in parser.refs:
        kind = "script" if tag == "script" else ("stylesheet" if attr == "href" and url.endswith(".css") else "other")
        got = client.get(url)
        assert got.status_code == 200, (url, got.status_code)
        if kind in kinds:
            assert kinds[kind] in got.headers["content-type"], (url, got.headers["content-type"])
            assert len(got.content) > 10_000, url  # the real bundle, not an error page
            served[kind] = url
    assert set(served) == set(kinds), served
    assert client.get("/openapi.json").status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/static-offline-docs/missing.js", "/static-offline-docs/../core.py", "/redoc"],
    ids=["missing-asset", "escaping-path", "redoc-is-off"],
)
def test_docs_assets_outside_the_bundle_are_404(client: TestClient, path: str) -> None:
    """ReDoc is off: its bundle loads a logo from cdn.redoc.ly, which offline is a failed request."""
    assert client.get(path).status_code == 404
