"""Security promises of SECURITY.md, each tested here:

(a) no request can make the service execute code or load a pickle: trials take names only from the
    workload, optimizer and device catalogs, hyperparameter names cannot smuggle anything, and the source of
    service/, rules/ and optimizers/ has no pickle, eval/exec, unsafe torch.load/yaml.load, and imports by
    name only what the rulebook names;
(b) trial limits hold on the server whatever the client sends (steps, size, wall time, model size);
(c) the API key never appears in logs or in any response body (a real server at log level debug);
(d) the web form's security headers are on every response, error pages included.
"""

from __future__ import annotations

import ast
import importlib
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from optirec.rules import default_rulebook
from optirec.service.app import create_app
from optirec.service.routers.web import SECURITY_HEADERS
from optirec.service.settings import Settings

#: Names an attacker might hope the service resolves to code or files.
HOSTILE_NAMES = [
    "os.system",
    "__import__('os')",
    "__import__('os').system('id')",
    "torch.load",
    "torch.optim.SGD",
    "pytorch_optimizer.SGD",
    "optirec.optimizers.kfac.KFAC",
    "builtins.eval",
    "pickle",
    "pickle.loads",
    "subprocess.Popen",
    "../../etc/passwd",
    "/etc/passwd",
    "file:///etc/passwd",
    "${jndi:ldap://x}",
    "{{7*7}}",
    "sgd; rm -rf /",
    "SGD\x00",
]
SMALL = {"steps": 5, "workload": "mlp", "device": "cpu"}
FINISHED = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def paused() -> Iterator[TestClient]:
    """Trials are validated and queued, never run."""
    settings = Settings(
        trial_store=":memory:", trial_concurrency=0, trial_queue_size=1000, trial_max_steps=500, trial_max_size=2
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def rec(paused: TestClient) -> dict[str, Any]:
    """A real recommendation with param groups (recommender hybrid) and alternatives."""
    body = paused.post("/recommend", json={"architecture": "resnet"}).json()
    assert body["alternatives"], body
    return dict(body)


def _refused(response: Any, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text[:1500]
    assert "Traceback" not in response.text
    return dict(response.json()["error"])


def _copy(rec: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(rec)


# -- (a) names only from the catalogs ------------------------------------------------------------------------


def test_no_hostile_name_resolves_in_the_catalogs() -> None:
    book = default_rulebook()
    for name in HOSTILE_NAMES:
        for kind in ("optimizer", "architecture", "domain", "goal", "data"):
            assert book.resolve(kind, name) is None, (kind, name)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=ascii)
def test_trials_take_names_only_from_the_catalogs(paused: TestClient, rec: dict[str, Any], name: str) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"profile": {}, **SMALL, "workload": name}, "workload"),
        ({"profile": {}, **SMALL, "device": name}, "device"),
        ({"profile": {"architecture": name}, **SMALL}, "profile.architecture"),
    ]
    optimizer = _copy(rec)
    optimizer["optimizer"]["name"] = name
    cases.append(({"recommendation": optimizer, **SMALL}, "recommendation.optimizer.name"))
    group = _copy(rec)
    group["param_groups"] = [{"name": "dense", "match": ["Linear"], "optimizer": name, "why": "x"}]
    cases.append(({"recommendation": group, **SMALL}, "recommendation.param_groups[0].optimizer"))
    alternative = _copy(rec)
    alternative["alternatives"][0]["name"] = name
    cases.append(({"recommendation": alternative, **SMALL, "race": 2}, "recommendation.alternatives[0].name"))
    base = _copy(rec)
    base["optimizer"] = {"name": "lookahead", "hyperparameters": {"base": name, "lr": 0.01}}
    cases.append(({"recommendation": base, **SMALL}, "recommendation.optimizer.hyperparameters.base"))
    schedule = _copy(rec)
    schedule["schedule"]["name"] = name
    cases.append(({"recommendation": schedule, **SMALL}, "recommendation.schedule.name"))
    for body, field in cases:
        error = _refused(paused.post("/trials", json=body))
        fields = [issue["field"] for issue in error["issues"]]
        assert field in fields, (field, error)
    assert paused.get("/trials").json() == [], "nothing was queued"


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=ascii)
def test_catalog_lookups_of_hostile_names_are_404(paused: TestClient, name: str) -> None:
    by_path = paused.get("/optimizers/" + quote(name, safe=""))
    for response in (by_path, paused.get("/rules", params={"optimizer": name})):
        error = _refused(response, 404)
        assert error["code"] == "not_found"
        if "/" not in name or response is not by_path:  # a '/' in a path segment matches no route at all
            assert "adamw" in error["issues"][0]["valid"]


@pytest.mark.parametrize(
    "key",
    [
        "__import__('os').system('id')",
        "__class__.__init__.__globals__",
        "lr; import os",
        "lr\x00",
        "x" * 65,
        "",
        "a.b",
    ],
    ids=ascii,
)
def test_hyperparameter_names_cannot_smuggle_code(paused: TestClient, rec: dict[str, Any], key: str) -> None:
    bad = _copy(rec)
    bad["optimizer"]["hyperparameters"][key] = 1
    error = _refused(paused.post("/trials", json={"recommendation": bad, **SMALL}))
    assert error["issues"][0]["field"].startswith("recommendation.optimizer.hyperparameters.")
    assert "not a hyperparameter name" in error["message"]


def test_the_registry_looks_names_up_in_the_catalog_before_importing(monkeypatch: pytest.MonkeyPatch) -> None:
    """make_optimizer() resolves a *catalog* name to the rulebook's class path; a dotted path is just unknown."""
    torch = pytest.importorskip("torch")
    from optirec.optimizers import registry
    from optirec.rules.errors import UnknownNameError

    imported: list[str] = []
    real = importlib.import_module

    def spy(name: str, package: str | None = None) -> Any:
        imported.append(name)
        return real(name, package)

    monkeypatch.setattr(registry, "importlib", SimpleNamespace(import_module=spy))
    registry.resolve_class.cache_clear()
    params = [torch.nn.Parameter(torch.zeros(2))]
    book = default_rulebook()
    for name in HOSTILE_NAMES:
        with pytest.raises(UnknownNameError):
            registry.make_optimizer(book, name, params, {})
    assert imported == []
    registry.make_optimizer(book, "sgd", params, {"lr": 0.1})
    assert imported == ["torch.optim"]
    registry.resolve_class.cache_clear()


def test_every_class_path_of_the_catalog_is_in_an_allowed_package() -> None:
    allowed = ("torch.optim.", "pytorch_optimizer.", "optirec.optimizers.")
    for spec in default_rulebook().optimizers.values():
        assert spec.class_path.startswith(allowed), (spec.name, spec.class_path)


# -- (a) the source: no pickle, no eval, no unsafe loaders, imports by name only from the rulebook ---------------

PACKAGES = ("service", "rules", "optimizers")
#: (file, enclosing function) pairs allowed to call importlib.import_module, and why it is safe.
IMPORT_BY_NAME = {
    ("optimizers/__init__.py", "__getattr__"): "lazy attributes: the module comes from the constant _HOMES map",
    ("optimizers/workloads/lm.py", "corpus"): "the constant CORPUS_MODULES tuple (stdlib modules)",
    ("optimizers/registry.py", "resolve_class"): "the class_path of a catalog entry (rules/data), never a request",
}
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "breakpoint"}


def _sources(repo_root: Path) -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((repo_root / package).rglob("*.py")):
            rel = path.relative_to(repo_root).as_posix()
            yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    """Every node with the name of its innermost enclosing function ('' at module level)."""
    stack: list[tuple[str, ast.AST]] = [("", tree)]
    while stack:
        owner, node = stack.pop()
        yield owner, node
        name = node.name if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else owner
        stack.extend((name, child) for child in ast.iter_child_nodes(node))


def test_no_pickle_eval_or_unsafe_loaders_in_the_source(repo_root: Path) -> None:
    problems: list[str] = []
    imports_by_name: set[tuple[str, str]] = set()
    for rel, tree in _sources(repo_root):
        for owner, node in _functions(tree):
            where = f"{rel}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for module in modules:
                    if module.split(".")[0] in FORBIDDEN_MODULES:
                        problems.append(f"{where}: imports {module}")
                torch_module = isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch")
                if torch_module and any(a.name == "load" for a in node.names):
                    problems.append(f"{where}: imports torch's load (call torch.load(..., weights_only=True))")
            if not isinstance(node, ast.Call):
                continue
            func = _dotted(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            if isinstance(node.func, ast.Name) and func in FORBIDDEN_CALLS:
                problems.append(f"{where}: calls {func}()")
            if func.endswith(("os.system", "os.popen", "pty.spawn")) or func in ("system", "popen"):
                problems.append(f"{where}: calls {func}()")
            shell = keywords.get("shell")
            if func.startswith("subprocess.") and isinstance(shell, ast.Constant) and shell.value:
                problems.append(f"{where}: subprocess with shell=True")
            if func in ("torch.load", "torch.serialization.load"):
                weights_only = keywords.get("weights_only")
                if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                    problems.append(f"{where}: torch.load without weights_only=True")
            if func in ("torch.jit.load", "torch.hub.load", "torch.package.PackageImporter"):
                problems.append(f"{where}: calls {func}()")
            if func in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all"):
                problems.append(f"{where}: calls {func}() (use yaml.safe_load)")
            if func.endswith("import_module"):
                imports_by_name.add((rel, owner))
    assert not problems, "\n".join(problems)
    assert imports_by_name <= set(IMPORT_BY_NAME), (
        f"new import-by-name call sites: {sorted(imports_by_name - set(IMPORT_BY_NAME))}; "
        "make sure no request data can reach them, then list them in IMPORT_BY_NAME"
    )


def test_resolve_class_is_only_fed_catalog_class_paths(repo_root: Path) -> None:
    """Every call of resolve_class() passes ``<catalog entry>.class_path``, never a name from a request."""
    calls = 0
    for rel, tree in _sources(repo_root):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _dotted(node.func).endswith("resolve_class"):
                calls += 1
                (arg,) = node.args
                assert isinstance(arg, ast.Attribute) and arg.attr == "class_path", f"{rel}:{node.lineno}"
    assert calls >= 1
    source = (repo_root / "optimizers/registry.py").read_text(encoding="utf-8")
    body = source[source.index("def make_optimizer") :]
    assert body.index("book.optimizer(name)") < body.index("resolve_class("), "catalog lookup comes first"


def test_the_api_key_is_compared_in_constant_time(repo_root: Path) -> None:
    source = (repo_root / "service/deps.py").read_text(encoding="utf-8")
    assert "hmac.compare_digest(" in source
    assert not re.search(r"(given|expected)\s*==|==\s*(given|expected)", source)


# -- (b) server-side limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"steps": 501}, "steps"),
        ({"steps": 10**12}, "steps"),
        ({"size": 3}, "size"),
        ({"size": 10**9}, "size"),
        ({"race": 5}, "race"),
        ({"seed": 2**32}, "seed"),
    ],
)
def test_limits_are_enforced_whatever_the_client_sends(
    paused: TestClient, overrides: dict[str, Any], field: str
) -> None:
    error = _refused(paused.post("/trials", json={"profile": {}, **SMALL, **overrides}))
    assert error["issues"][0]["field"] == field


def test_the_limits_allow_what_they_promise(paused: TestClient) -> None:
    ok = paused.post("/trials", json={"profile": {}, **SMALL, "steps": 500, "size": 2, "race": 4})
    assert ok.status_code == 202, ok.text
    assert ok.json()["progress"]["steps_total"] <= 500 * 4
    paused.delete(f"/trials/{ok.json()['id']}")


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A real worker under a tight budget: 1.5 s of wall time, models of at most 20 000 parameters."""
    settings = Settings(
        trial_store=str(tmp_path_factory.mktemp("tight") / "trials.sqlite3"),
        trial_concurrency=1,
        trial_max_steps=1_000_000,
        trial_max_seconds=1.5,
        trial_max_parameters=20_000,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _wait(client: TestClient, trial_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/trials/{trial_id}", params={"wait": 2}).json()
        if body["status"] in FINISHED:
            return dict(body)
        assert time.monotonic() < deadline, body


@pytest.mark.slow
def test_the_worker_caps_wall_time_and_model_size(tight: TestClient) -> None:
    long = tight.post("/trials", json={"profile": {}, "workload": "mlp", "device": "cpu", "steps": 1_000_000})
    assert long.status_code == 202, long.text
    done = _wait(tight, long.json()["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["status"] == "budget_exhausted"
    assert done["result"]["steps_done"] < 1_000_000
    assert any("1.5 s" in w for w in done["result"]["warnings"]), done["result"]["warnings"]
    big = tight.post("/trials", json={"profile": {}, "workload": "transformer_lm", "device": "cpu", "steps": 5})
    failed = _wait(tight, big.json()["id"])
    assert failed["status"] == "failed" and "20,000" in failed["error"], failed["error"]


@pytest.mark.slow
def test_unknown_hyperparameters_fail_the_trial_saying_so(tight: TestClient, tmp_path: Path) -> None:
    rec = tight.post("/recommend", json={"architecture": "mlp"}).json()
    for key in ("foo", "params", "self"):
        bad = _copy(rec)
        bad["optimizer"]["hyperparameters"][key] = 1
        r = tight.post("/trials", json={"recommendation": bad, **SMALL})
        assert r.status_code == 202, r.text  # a well-formed name: the optimizer class decides
        failed = _wait(tight, r.json()["id"])
        assert failed["status"] == "failed" and key in failed["error"], failed["error"]
        assert "Traceback" not in failed["error"]
    assert tight.get("/healthz").status_code == 200


# -- (c) the API key never leaks -----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_api_key_never_appears_in_logs_or_bodies(live_server: Callable[..., Any]) -> None:
    key = "k-" + secrets.token_urlsafe(24)
    server = live_server(OPTIREC_API_KEY=key, OPTIREC_LOG_LEVEL="debug")
    wrong = [key[:-1], key + "x", key.upper(), "Bearer " + key, key[: len(key) // 2]]
    bodies: list[str] = []
    with httpx.Client(base_url=server.url, timeout=30) as http:

        def call(method: str, path: str, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
            response = http.request(method, path, headers=headers, **kwargs)
            bodies.append(response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items()))
            return response

        endpoints = [
            ("POST", "/trials", {"json": {"profile": {}, **SMALL}}),
            ("POST", "/trials", {"json": {"profile": {"architecture": "resnett"}, **SMALL}}),
            ("POST", "/trials", {"content": b"{not json", "headers_extra": {"content-type": "application/json"}}),
            ("GET", "/trials", {}),
            ("GET", "/trials/nope", {}),
            ("GET", "/trials/nope/events", {}),
            ("DELETE", "/trials/nope", {}),
        ]
        for method, path, kwargs in endpoints:
            extra = kwargs.pop("headers_extra", {})
            for headers in [{}, *({"X-API-Key": w} for w in wrong), *({"Authorization": f"Bearer {w}"} for w in wrong)]:
                assert call(method, path, {**headers, **extra}, **kwargs).status_code == 401
            for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
                assert call(method, path, {**headers, **extra}, **kwargs).status_code in (202, 200, 404, 422)
            kwargs["headers_extra"] = extra
        good = {"X-API-Key": key}
        trial = call("POST", "/trials", good, json={"profile": {}, **SMALL}).json()
        call("GET", f"/trials/{trial['id']}", good)
        call("DELETE", f"/trials/{trial['id']}", good)
        call("GET", f"/trials/{trial['id']}/events", good)
        for path in ("/metrics", "/readyz", "/healthz", "/", "/openapi.json"):
            call("GET", path, good)
    server.stop()
    log = server.output()
    assert "GET /trials" in log or "POST /trials" in log, "the debug log should show the requests"
    for text in (*bodies, log):
        assert key not in text
        assert key[: len(key) // 2 + 4] not in text  # nor most of it


# -- (d) security headers ------------------------------------------------------------------------------------


def test_security_headers_on_every_response(paused: TestClient) -> None:
    responses = [
        paused.get("/"),
        paused.get("/static/app.js"),
        paused.get("/static/missing.js"),
        paused.get("/static/../../etc/passwd"),
        paused.post("/"),  # 405 on the page
        paused.get("/no/such/page"),
        paused.post("/recommend", json={}),
        paused.post("/recommend", content=b"x" * 2_000_000, headers={"content-type": "application/json"}),  # 413
        paused.get("/healthz"),
    ]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.request.url, response.status_code, name)


def test_loopback_and_no_cors_by_default(paused: TestClient) -> None:
    settings = Settings.model_construct()
    assert Settings.model_fields["host"].default == "127.0.0.1" and settings.host == "127.0.0.1"
    assert Settings.model_fields["cors_origins"].default_factory() == []  # type: ignore[misc, call-arg]
    preflight = paused.options(
        "/recommend", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    answer = paused.post("/recommend", json={}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answer.headers
