"""The web form in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

A real ``optirec serve`` process with a temporary trial store; the test fills the form, submits it,
sees the optimizer, starts a small trial, follows its progress and sees the loss curves drawn; the
page must log no console error, no CSP violation and fetch nothing from another origin.

Skipped, with the reason, when ``/usr/bin/chromium`` or the ``playwright`` package is missing
(``make test`` installs chromium when it runs as root). Playwright never downloads a browser here:
it is always given ``executable_path``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
TRIAL_TIMEOUT_MS = 240_000  # a 20-step proxy trial, torch import included, on a slow 2-core machine

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} not found: install Debian's chromium (`apt-get install -y chromium`, done by `make test` as root)",
        allow_module_level=True,
    )
try:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    pytest.skip("the playwright package is missing: pip install -e '.[dev]'", allow_module_level=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _start_server(tmp: Path, extra_env: dict[str, str] | None = None) -> Server:
    port = _free_port()
    log = tmp / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIREC_")}
    env.update(
        {
            "OPTIREC_TRIAL_STORE": str(tmp / "trials.sqlite3"),
            "OPTIREC_LOG_LEVEL": "warning",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
    )
    command = [sys.executable, "-m", "optirec", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"optirec serve exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return Server(url=url, process=process, log=log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"optirec serve did not answer /healthz within 60 s:\n{log.read_text(errors='replace')}")


def _stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
        server.process.kill()
        server.process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _start_server(tmp_path_factory.mktemp("web-server"))
    yield srv
    _stop_server(srv)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@dataclass
class Watched:
    """What the page said and fetched while a test drove it."""

    page: Page
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def problems(self, allowed: tuple[str, ...] = ()) -> list[str]:
        bad = [f"{kind}: {text}" for kind, text in self.console if kind in ("error", "warning")]
        bad += [f"pageerror: {e}" for e in self.errors]
        return [b for b in bad if not any(a in b for a in allowed)]


@pytest.fixture
def watched(browser: Browser, server: Server) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server.url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    w = Watched(page=page)

    def on_console(msg: ConsoleMessage) -> None:
        w.console.append((msg.type, msg.text))

    def on_request(request: Request) -> None:
        w.requests.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: w.errors.append(str(exc)))
    page.on("request", on_request)
    yield w
    context.close()


def _open_form(page: Page) -> None:
    page.goto("/")
    page.wait_for_selector("#field-architecture option[value='resnet']", state="attached")


def _eval(page: Page, selector: str, expression: str) -> Any:
    """Read a DOM property (page.wait_for_function would need 'unsafe-eval', which the CSP refuses)."""
    return page.eval_on_selector(selector, expression)


def _trials_api(server: Server) -> bool:
    paths = httpx.get(f"{server.url}/openapi.json", timeout=10).json()["paths"]
    return "/trials" in paths and any(p.startswith("/trials/") and p.endswith("/events") for p in paths)


# ---------------------------------------------------------------------------------------- the form
def test_form_renders_every_field_from_the_api(watched: Watched, server: Server) -> None:
    page = watched.page
    _open_form(page)
    fields = httpx.get(f"{server.url}/profile/fields", timeout=10).json()
    for f in fields:
        control = page.locator(f"#field-{f['name']}")
        assert control.count() == 1, f["name"]
        # every control has an accessible name
        if f["type"] == "multi_enum":
            assert page.locator(f"#field-{f['name']} legend").inner_text().strip()
            boxes = page.locator(f"input[type=checkbox][name='{f['name']}']")
            assert boxes.count() == len(f["options"])
        else:
            assert page.locator(f"label[for='field-{f['name']}']").count() == 1, f["name"]
        if f["type"] == "enum":
            values = _eval(page, f"#field-{f['name']}", "e => Array.from(e.options).map(o => o.value)")
            assert values == ["", *(o["value"] for o in f["options"])], f["name"]
    assert not watched.problems()


def test_recommend_then_validate_with_a_trial_run(watched: Watched, server: Server) -> None:
    page = watched.page
    _open_form(page)
    page.select_option("#field-domain", "computer_vision")
    page.select_option("#field-architecture", "resnet")
    page.select_option("#field-goal", "best_accuracy")
    page.fill("#field-batch_size", "512")
    page.fill("#field-total_steps", "10000")
    page.check("#field-data-noisy")
    page.select_option("#field-mixed_precision", "true")
    page.click("#recommend-button")

    page.wait_for_selector("#optimizer-name:not(:empty)")
    expected = httpx.post(
        f"{server.url}/recommend",
        json={
            "domain": "computer_vision",
            "architecture": "resnet",
            "goal": "best_accuracy",
            "batch_size": 512,
            "total_steps": 10000,
            "data": ["noisy"],
            "mixed_precision": True,
        },
        timeout=10,
    ).json()
    assert page.inner_text("#optimizer-name") == expected["optimizer"]["name"] == "sgd_momentum"
    hyper = page.inner_text("#hyperparameters")
    assert "lr" in hyper and "momentum" in hyper
    assert "cosine" in page.inner_text("#schedule")
    scaling = page.inner_text("#scaling")
    assert "linear" in scaling
    # the training-horizon term: SGD keeps its lr (factor 1) for the 10k-step run of ResNet-50's 600k
    assert expected["lr_scaling"]["horizon_factor"] == 1.0
    assert "horizon factor" in scaling and "steps" in scaling
    rationale = page.inner_text("#rationale")
    for entry in expected["rationale"]:
        assert entry["rule"] in rationale and entry["source"] in rationale
    assert page.locator("#rationale li").count() == len(expected["rationale"])
    for i, alt in enumerate(expected["alternatives"]):
        shown = page.locator("#alternatives li").nth(i).inner_text()
        assert alt["name"] in shown
        for name in alt["hyperparameters"]:  # each alternative with its own hyperparameters
            assert f"{name}=" in shown, (name, shown)
    assert any(alt["hyperparameters"] for alt in expected["alternatives"])
    for avoid in expected["avoid"]:
        assert avoid["name"] in page.inner_text("#avoid")

    assert _trials_api(server), "the service serves POST /trials and GET /trials/{id}/events"

    assert page.is_visible("#trial-button")
    page.fill("#trial-steps", "20")
    page.click("#trial-button")
    page.wait_for_selector("#trial-progress", state="visible")
    page.wait_for_selector("#trial-plot path", timeout=TRIAL_TIMEOUT_MS)

    status = page.inner_text("#trial-status")
    assert status.startswith(("Succeeded", "Diverged")), status
    assert _eval(page, "#trial-progress", "e => [e.value, e.max]") == [20, 20]
    plot = page.locator("#trial-plot")
    assert plot.locator("path.series-train, path.series-heldout").count() >= 1
    labels = " ".join(plot.locator("text").all_text_contents())
    assert "step" in labels and "loss" in labels and "train loss" in labels
    assert page.is_hidden("#trial-cancel")
    assert page.is_enabled("#trial-button")
    # followed with server-sent events (polling only as the fallback)
    assert any("/events" in url for url in watched.requests), watched.requests

    assert not watched.problems(), watched.problems()
    origin = server.url + "/"
    assert all(url.startswith(origin) for url in watched.requests), "only same-origin requests"


def test_a_recipe_answer_names_its_recipe_and_links_its_references(watched: Watched, server: Server) -> None:
    page = watched.page
    _open_form(page)
    page.select_option("#field-architecture", "convnext")
    page.fill("#field-batch_size", "1024")
    page.click("#recommend-button")
    page.wait_for_selector("#optimizer-name:not(:empty)")
    expected = httpx.post(f"{server.url}/recommend", json={"architecture": "convnext", "batch_size": 1024}).json()
    assert expected["recipe"] is not None
    assert page.is_visible("#recipe-block")
    assert expected["recipe"]["title"] in page.inner_text("#recipe-title")
    adapted = page.inner_text("#recipe-adapted")
    for row in expected["recipe"]["adapted"]:
        assert row["field"] in adapted
    # the recipe's citation is a link to the paper, titled with its full reference
    link = page.locator("#recipe-title cite.source a")
    assert link.count() == 1
    sources = httpx.get(f"{server.url}/sources", params={"cite": expected["recipe"]["source"]}).json()
    assert link.get_attribute("href") == sources[0]["link"]
    assert sources[0]["reference"] in (link.get_attribute("title") or "")
    # every cited source is listed once under References; seed citations carry their reference as a title
    refs = page.inner_text("#references")
    assert sources[0]["reference"] in refs
    seed = page.locator("#rationale cite.source[title*='도메인별 선호도']")
    assert seed.count() >= 1
    assert not watched.problems(), watched.problems()


def test_invalid_value_is_shown_next_to_its_field(watched: Watched) -> None:
    page = watched.page
    _open_form(page)
    page.fill("#field-batch_size", "0")
    page.click("#recommend-button")
    page.wait_for_selector("#error-batch_size", state="visible")
    assert "greater than or equal to 1" in page.inner_text("#error-batch_size")
    assert page.get_attribute("#field-batch_size", "aria-invalid") == "true"
    assert page.is_hidden("#result")
    # fixing it clears the error and shows a result
    page.fill("#field-batch_size", "64")
    page.click("#recommend-button")
    page.wait_for_selector("#optimizer-name:not(:empty)")
    assert page.is_hidden("#error-batch_size")
    # the browser itself reports the 422 response; nothing else may be logged
    assert not watched.problems(allowed=("status of 422",)), watched.problems()


def test_api_data_is_rendered_as_text_never_as_html(watched: Watched) -> None:
    """A hostile string in a response stays text: no element is created from it."""
    page = watched.page
    payload = '<img src=x id="injected">'

    def fake_recommend(route: Any) -> None:
        rec = httpx.post(route.request.url, json={}, timeout=10).json()
        rec["optimizer"]["name"] = payload
        rec["warnings"] = [payload]
        route.fulfill(status=200, json=rec)

    page.route("**/recommend", fake_recommend)
    _open_form(page)
    page.click("#recommend-button")
    page.wait_for_selector("#optimizer-name:not(:empty)")
    assert page.inner_text("#optimizer-name") == payload
    assert payload in page.inner_text("#warnings")
    assert page.locator("#injected").count() == 0


# ---------------------------------------------------------------------------------------- API key
@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _start_server(tmp_path_factory.mktemp("web-keyed"), {"OPTIREC_API_KEY": "s3cret-key"})
    yield srv
    _stop_server(srv)


def test_api_key_is_asked_for_and_a_trial_can_be_cancelled(browser: Browser, keyed_server: Server) -> None:
    context = browser.new_context(base_url=keyed_server.url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    try:
        _open_form(page)
        page.select_option("#field-architecture", "resnet")
        page.click("#recommend-button")
        page.wait_for_selector("#optimizer-name:not(:empty)")
        assert page.is_hidden("#api-key")

        page.fill("#trial-steps", "2000")
        page.click("#trial-button")
        page.wait_for_selector("#api-key", state="visible")
        assert "API key" in page.inner_text("#trial-error")

        page.fill("#api-key", "wrong")
        page.click("#trial-button")
        page.wait_for_selector("#trial-error:has-text('refused')")

        page.fill("#api-key", "s3cret-key")
        page.click("#trial-button")
        page.wait_for_selector("#trial-cancel", state="visible")
        assert page.is_hidden("#trial-error")
        page.click("#trial-cancel")
        page.wait_for_selector("#trial-status.cancelled", timeout=60_000)
        assert page.is_hidden("#trial-cancel")
        assert page.is_enabled("#trial-button")
        unexpected = [c for c in console if "status of 401" not in c]
        assert not unexpected, unexpected
    finally:
        context.close()


# ---------------------------------------------------------------------------------------- trial outcomes
def _trial(status: str, done: int, result: dict[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
    return {
        "id": "t-fake",
        "status": status,
        "progress": {"steps_done": done, "steps_total": 6, "loss": 2.0},
        "request": {},
        "result": result,
        "error": error,
    }


_DIVERGED = {
    "status": "diverged",
    "optimizer": "sgd_momentum",
    "workload": {"name": "cnn", "description": "residual CNN <b>on</b> digits", "traits": []},
    "device": "cpu",
    "train_loss": [2.3, 2.0, 5.0, 80.0, None, None],
    "heldout": [{"step": 2, "loss": 2.1, "metric": 0.3}],
    "final_loss": None,
    "final_metric": None,
    "metric_name": "accuracy",
    "diverged": True,
    "diverged_at": 4,
    "divergence_reason": "loss became non-finite at step 5",
    "steps_per_second": 10.0,
}
_SUCCEEDED = {**_DIVERGED, "status": "succeeded", "train_loss": [2.3, 2.0, 1.7, 1.5, 1.4, 1.3], "final_loss": 1.3}
_SUCCEEDED |= {"diverged": False, "diverged_at": None, "divergence_reason": None}


def _sse(*events: tuple[str, dict[str, Any]]) -> str:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)


OUTCOMES = [
    pytest.param(
        _sse(
            ("progress", {"id": "t-fake", "status": "running", "steps_done": 3, "steps_total": 6}),
            ("done", _trial("succeeded", 6, _DIVERGED)),
        ),
        "diverged",
        "non-finite at step 5",
        True,
        id="diverged",
    ),
    pytest.param(
        _sse(("done", _trial("failed", 2, None, "worker died: out of memory"))),
        "failed",
        "out of memory",
        False,
        id="failed",
    ),
    pytest.param(None, "succeeded", "Succeeded", True, id="polling-fallback"),
]


@pytest.mark.parametrize(("events", "css", "text", "plotted"), OUTCOMES)
def test_trial_outcomes_are_shown_clearly(
    watched: Watched, events: str | None, css: str, text: str, plotted: bool
) -> None:
    """Diverged, failed, and the polling fallback when the event stream is unavailable (API mocked)."""
    page = watched.page
    polls: list[str] = []

    def submit(route: Any) -> None:
        route.fulfill(status=202, json=_trial("queued", 0), headers={"Location": "/trials/t-fake"})

    def stream(route: Any) -> None:
        if events is None:
            route.fulfill(status=503, json={"error": {"status": 503, "code": "unavailable", "message": "no stream"}})
        else:
            route.fulfill(status=200, body=events, headers={"Content-Type": "text/event-stream"})

    def status(route: Any) -> None:
        polls.append(route.request.url)
        done = len(polls) > 2
        route.fulfill(status=200, json=_trial("succeeded", 6, _SUCCEEDED) if done else _trial("running", len(polls)))

    page.route("**/trials", submit)
    page.route("**/trials/t-fake/events", stream)
    page.route("**/trials/t-fake", status)
    _open_form(page)
    page.click("#recommend-button")
    page.wait_for_selector("#optimizer-name:not(:empty)")
    page.fill("#trial-steps", "6")
    page.click("#trial-button")
    page.wait_for_selector(f"#trial-status.{css}", timeout=20_000)
    shown = page.inner_text("#trial-status") + " " + page.inner_text("#trial-error")
    assert text in shown, shown
    assert page.is_hidden("#trial-cancel") and page.is_enabled("#trial-button")
    if plotted:
        page.wait_for_selector("#trial-plot path.series-train")
        assert "<b>" in page.inner_text("#trial-summary"), "API text is shown as text"
    else:
        assert page.locator("#trial-plot").count() == 0
    if events is None:
        assert len(polls) >= 3, "polled GET /trials/{id} after the stream failed"
    if css == "diverged":
        assert page.locator("#trial-plot .diverged-mark").count() == 1
    assert not watched.problems(allowed=("status of 503",)), watched.problems()


def test_the_search_shows_its_candidates_and_winner(watched: Watched, server: Server) -> None:
    """ "Search for a better config" posts ``validate: true``; the page lists every candidate with its rung
    scores and marks the winner."""
    page = watched.page
    _open_form(page)
    page.select_option("#field-domain", "tabular")
    page.select_option("#field-architecture", "mlp")
    page.click("#recommend-button")
    page.wait_for_selector("#optimizer-name:not(:empty)")
    page.fill("#trial-steps", "20")
    page.check("#trial-search")
    with page.expect_request(lambda r: r.url.endswith("/trials") and r.method == "POST") as posted:
        page.click("#trial-button")
    assert json.loads(posted.value.post_data or "{}").get("validate") is True
    page.wait_for_selector("#trial-candidates tbody tr", timeout=TRIAL_TIMEOUT_MS)
    rows = page.locator("#trial-candidates tbody tr")
    assert rows.count() >= 3
    assert page.locator("#trial-candidates tbody tr.winner").count() == 1
    first = rows.nth(0).inner_text()
    assert first.startswith("recommendation")
    summary = page.inner_text("#trial-summary")
    assert "winner" in summary and "runs of 20 steps" in summary
    assert page.is_enabled("#trial-button")
    assert not watched.problems(), watched.problems()


# ---------------------------------------------------------------------------------------- layout, Clear, numbers
def _page_at(browser: Browser, server: Server, width: int) -> tuple[Any, Page]:
    context = browser.new_context(viewport={"width": width, "height": 844}, base_url=server.url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    return context, page


def _horizontal_overflow(page: Page) -> list[int]:
    """[document scroll width, viewport width]."""
    return list(page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]"))


@pytest.mark.parametrize("width", [390, 1280], ids=["phone-390px", "desktop-1280px"])
@pytest.mark.parametrize(
    ("choices", "block"),
    [
        ({"#field-architecture": "vit"}, "#param-groups-block"),
        ({"#field-architecture": "transformer", "#field-domain": "nlp"}, "#param-groups-block"),
        ({"#field-architecture": "convnext", "#field-batch_size": "1024"}, "#recipe-block"),
    ],
    ids=["vit-param-groups", "transformer-layerwise-groups", "convnext-recipe"],
)
def test_the_page_never_scrolls_sideways(
    browser: Browser, server: Server, width: int, choices: dict[str, str], block: str
) -> None:
    context, page = _page_at(browser, server, width)
    try:
        _open_form(page)
        assert _horizontal_overflow(page)[0] <= width
        for selector, value in choices.items():
            if selector.endswith("batch_size"):
                page.fill(selector, value)
            else:
                page.select_option(selector, value)
        page.click("#recommend-button")
        page.wait_for_selector("#optimizer-name:not(:empty)")
        assert page.is_visible(block)
        scroll_width, inner_width = _horizontal_overflow(page)
        assert scroll_width <= inner_width == width, (scroll_width, inner_width)
        # a wide table scrolls inside its own box, which a keyboard can reach
        table = page.locator(f"{block} .scroll")
        assert table.get_attribute("tabindex") == "0"
        box = table.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        # the trial's "search" checkbox is a checkbox, not a 110 px wide number-input box
        check = page.locator("#trial-search").bounding_box()
        assert check is not None and check["width"] < 30, check
    finally:
        context.close()


def _show_a_result(page: Page) -> None:
    _open_form(page)
    page.select_option("#field-architecture", "vit")
    page.click("#recommend-button")
    page.wait_for_selector("#optimizer-name:not(:empty)")
    assert page.is_visible("#result") and page.is_visible("#trial-button")


@pytest.mark.parametrize(
    ("action", "error"),
    [
        ("clear", ""),
        ("server-refuses", "greater than or equal to 1"),
        ("not-a-number", "must be a number"),
    ],
    ids=["clear-button", "submit-refused-by-the-server", "submit-refused-in-the-browser"],
)
def test_clear_or_a_failed_submit_removes_the_stale_result(watched: Watched, action: str, error: str) -> None:
    page = watched.page
    _show_a_result(page)
    if action == "clear":
        page.click("#reset-button")
    elif action == "server-refuses":
        page.fill("#field-batch_size", "0")
        page.click("#recommend-button")
    else:  # the browser keeps "1e" as bad input: the form's own check refuses it before anything is sent
        page.focus("#field-total_steps")
        page.keyboard.type("1e")
        page.click("#recommend-button")
    page.wait_for_selector("#result", state="hidden")
    assert page.is_hidden("#trial") and page.is_hidden("#trial-button")
    assert page.inner_text("#optimizer-name") == ""
    if error:
        page.wait_for_selector("#form-error", state="visible")
        shown = page.inner_text("#form-error") + " " + " ".join(page.locator(".field-error:visible").all_inner_texts())
        assert error in shown, shown
    else:
        assert page.is_hidden("#form-error")
        assert page.input_value("#field-architecture") == ""
    assert not watched.problems(allowed=("status of 422",)), watched.problems()


NUMBERS = [
    (67108864, "67,108,864"),
    (10_000_000_000_000, "10 trillion"),
    (10_000_000_000, "10 billion"),
    (1_500_000_000_000, "1.5 trillion"),
    (1_234_567_890_123, "1,234,567,890,123"),
    (10**16, "10 quadrillion"),
    (1_000_000, "1,000,000"),
    (999, "999"),
    (0, "0"),
    (-2048, "-2,048"),
    (0.1, "0.1"),
    (0.0003, "3e-4"),
    (1e-8, "1e-8"),
    (0.123456, "0.1235"),
    (2.5e7 + 0.5, "2.5e7"),
]


def test_numbers_are_written_as_people_write_them(watched: Watched) -> None:
    page = watched.page
    _open_form(page)
    got = page.evaluate("values => values.map(v => window.optirecFormat.number(v))", [v for v, _ in NUMBERS])
    assert dict(zip([t for _, t in NUMBERS], got, strict=True)) == {t: t for _, t in NUMBERS}


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("num_parameters", "(≥ 1, ≤ 10 trillion)"),
        ("batch_size", "(≥ 1, ≤ 67,108,864)"),
        ("epochs", "(≥ 1, ≤ 1,000,000)"),
        ("device_memory_gb", "(> 0, ≤ 100,000)"),
        ("total_tokens", "(≥ 1, ≤ 10 quadrillion)"),
    ],
    ids=["num_parameters", "batch_size", "epochs", "device_memory_gb", "total_tokens"],
)
def test_range_hints_read_naturally(watched: Watched, field: str, text: str) -> None:
    page = watched.page
    _open_form(page)
    hint = page.inner_text(f"#hint-{field}")
    assert hint.endswith(text), hint
    assert "e1" not in hint and "e7" not in hint, hint


# ---------------------------------------------------------------------------------------- API documentation offline
@pytest.mark.parametrize(
    ("path", "rendered"),
    [("/docs", ".swagger-ui .opblock-summary-path"), ("/docs#/recommend", ".swagger-ui .opblock-tag")],
    ids=["swagger-ui", "swagger-ui-deep-link"],
)
def test_api_docs_render_with_the_network_off(browser: Browser, server: Server, path: str, rendered: str) -> None:
    context, page = _page_at(browser, server, 1280)
    refused: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    try:
        context.route("**/*", only_this_server)
        page.goto(path)
        page.wait_for_selector(rendered)
        text = page.inner_text("body")
        assert "/recommend" in text and "optirec" in text
        assert not refused, refused
    finally:
        context.close()
