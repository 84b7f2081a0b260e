"""The dashboard at ``/``, in headless Chromium against a real ``cep serve --demo``.

Debian's chromium is driven by Playwright with ``executable_path`` (no browser download).
Without chromium these tests skip locally and fail under ``CI=true``. Every wait is on a
selector or a condition the page sets (``data-state`` on panels and cards, ``data-rendered``
on charts once ECharts has drawn them), never on elapsed time. Screenshots of each panel
are kept under ``$CEP_TEST_ARTIFACTS/dashboard`` (default ``test-artifacts/dashboard``).

The module's tests share one gateway and run in file order: the one that posts a live
event comes last, so the numbers compared before it are those of the demo data alone.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from starlette.applications import Starlette

from gateway.dashboard import STATIC_DIR, VENDOR_ASSETS, assets_available, dashboard_routes
from tests.e2e.conftest import ROOT, Gateway

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("CEP_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "dashboard"
PANELS = ("overview", "trends", "funnel", "retention", "paths", "segments", "people",
          "breakdowns", "crashes", "live")
WINDOW = {"last": "30d"}  # the dashboard's default window
WAIT_MS = 60_000  # generous: two cores, and another suite may be running
Demo = tuple[Gateway, dict[str, Any]]  # the gateway and the demo project's keys


def require_chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: `make setup` installs Debian's chromium")
        pytest.skip("chromium is not installed (`make setup` installs it as root on Debian)")
    return CHROMIUM


@pytest.fixture(scope="module")
def built() -> None:
    """The vendored chart bundle: that of ``make setup``, else built here (it is git-ignored,
    and the gateway under test serves it from the same place)."""
    if assets_available():
        return
    build = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-dashboard.sh")], cwd=ROOT,
        capture_output=True, text=True, timeout=600)
    if build.returncode != 0 or not assets_available():
        pytest.fail("the dashboard's chart bundle is not built and scripts/build-dashboard.sh "
                    "failed:\n" + build.stdout + build.stderr)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, built: None) -> Iterator[Demo]:
    gw = Gateway(tmp_path_factory.mktemp("dashboard"), extra=("--demo",))
    gw.start(timeout=600)
    keys = json.loads((gw.data / "demo.json").read_text())
    yield gw, keys
    gw.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = require_chromium()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US",
                                  timezone_id="UTC", accept_downloads=True)
    context.set_default_timeout(WAIT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture
def errors(page: Page) -> list[str]:
    """The page's console errors and uncaught exceptions, from before it loads."""
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: found.append(f"uncaught: {e}"))
    return found


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, gw: Gateway, key: str) -> None:
    page.goto(gw.url + "/")
    page.get_by_label("Read key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def panel(name: str) -> str:
    return f'section[data-panel="{name}"]'


def wait_panel(page: Page, name: str) -> None:
    """The panel finished loading (every card answered) and its charts are drawn."""
    sel = panel(name)
    page.wait_for_selector(f'{sel}[data-state="ready"], {sel}[data-state="error"]')
    if page.get_attribute(sel, "data-state") == "error":
        problems = page.locator(f"{sel} .banner, {sel} .card-status.error").all_inner_texts()
        pytest.fail(f"panel {name} failed: {problems}")
    page.wait_for_function(
        """sel => [...document.querySelectorAll(sel + ' [data-chart]')]
                 .every(el => el.dataset.rendered === 'true')""", arg=sel)


def open_panel(page: Page, name: str) -> None:
    page.locator(f'nav a[data-nav="{name}"]').click()
    wait_panel(page, name)


def number(n: float) -> str:
    return f"{n:,.0f}"


def percent(x: float, digits: int = 1) -> str:
    """As the dashboard shows a share: ``x * 100`` in doubles (as in JavaScript), its exact
    value rounded half away from zero (Intl.NumberFormat), not to even as Python's format
    rounds an exact tie."""
    exact = Decimal(x * 100)
    return f"{exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP):,}%"


def gql(gw: Gateway, key: str, query: str, variables: dict[str, Any] | None = None
        ) -> dict[str, Any]:
    body = gw.gql(key, query, variables)
    assert "errors" not in body, body
    return dict(body["data"])


# -- serving -------------------------------------------------------------------------------

class AssetRefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        url = a.get("src") if tag in ("script", "img", "iframe") else (
            a.get("href") if tag == "link" else None)
        if url:
            self.urls.append(url)


def test_root_serves_the_page_and_only_local_assets(demo: Demo) -> None:
    gw, _keys = demo
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        resp = client.get("/")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in resp.headers["content-security-policy"]
        refs = AssetRefs()
        refs.feed(resp.text)
        assert 'for="read-key">Read key</label>' in resp.text
        for marker in ("unpkg", "jsdelivr", "cdnjs", "esm.sh"):
            assert marker not in resp.text
        local = [u for u in refs.urls if not u.startswith("data:")]
        assert sorted(u.split("?")[0] for u in local) == [
            "/dashboard/dashboard.css", "/dashboard/js/main.js",
            "/dashboard/vendor/echarts.min.js"]
        for url in local:
            served = client.get(url)
            assert served.status_code == 200, url
            assert served.headers["cache-control"] == "no-cache"
        # the vendored bundle carries the build stamp, so a rebuild is not served from cache
        assert any(re.search(r"/echarts\.min\.js\?v=[0-9a-f]{16}$", u) for u in local)
        modules = sorted(p.relative_to(STATIC_DIR).as_posix()
                         for p in (STATIC_DIR / "js").rglob("*.js"))
        for module in modules:
            served = client.get(f"/dashboard/{module}")
            assert served.status_code == 200, module
            assert "javascript" in served.headers["content-type"]
            # modules import one another by relative URL only: nothing from elsewhere
            for spec in re.findall(r'^import .*? from "([^"]+)";', served.text, re.M | re.S):
                assert spec.startswith(("./", "../")), (module, spec)
        assert client.get("/dashboard/vendor/no-such-file.js").status_code == 404


async def test_missing_bundle_says_how_to_build(tmp_path: Path) -> None:
    static = tmp_path / "dashboard"
    shutil.copytree(STATIC_DIR, static, ignore=shutil.ignore_patterns("vendor"))
    assert not assets_available(static)
    app = Starlette(routes=dashboard_routes(static))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert "Dashboard assets are not built" in page.text
        assert "make dashboard" in page.text
        assert "<script" not in page.text  # nothing that could hang or half-load
        assert (await client.get("/dashboard/vendor/echarts.min.js")).status_code == 404
        assert (await client.get("/dashboard/js/main.js")).status_code == 200

        (static / "vendor").mkdir()
        for name in VENDOR_ASSETS:
            (static / "vendor" / name).write_text("/* built */")
        assert 'src="/dashboard/vendor/echarts.min.js"' in (await client.get("/")).text
        assert (await client.get("/dashboard/vendor/echarts.min.js")).text == "/* built */"


# -- in the browser --------------------------------------------------------------------------

def test_every_panel_renders_the_demo_data(page: Page, errors: list[str], demo: Demo) -> None:
    gw, keys = demo
    key = keys["read_key"]
    sign_in(page, gw, key)
    wait_panel(page, "overview")
    assert page.evaluate("sessionStorage.getItem('cep.dashboard.readKey')") == key
    assert page.evaluate("localStorage.length") == 0  # the key stays in this tab's session

    truth = gql(gw, key, """query($w: TimeWindow!) {
        sessionMetrics(window: $w) { count purchaseSessionRate topLandingPages { url } }
        engagement(window: $w) { mau }
        crashes(window: $w) { crashesPer1000Sessions }
    }""", {"w": WINDOW})

    def kpi(name: str) -> str:
        return page.inner_text(f'[data-kpi="{name}"] .kpi-value')

    assert kpi("sessions") == number(truth["sessionMetrics"]["count"])
    assert kpi("mau") == number(truth["engagement"]["mau"])
    # one decimal, rounded by the browser (half away from zero, where Python's format rounds
    # an exact tie to even): compare the numbers, to within that rounding
    for name, unit, want in (
            ("purchase-rate", "%", truth["sessionMetrics"]["purchaseSessionRate"] * 100),
            ("crash-rate", " ‰", truth["crashes"]["crashesPer1000Sessions"])):
        shown = kpi(name)
        assert re.fullmatch(r"[\d,]+\.\d" + unit, shown), (name, shown)
        assert abs(float(shown[:-len(unit)].replace(",", "")) - want) <= 0.05 + 1e-9, (
            name, shown, want)
    for name in ("sessions-today", "average-session", "dau", "wau", "stickiness"):
        assert re.search(r"\d", kpi(name)), name
    assert page.locator('[data-card="landing-pages"] td[data-col="url"]').first.inner_text() \
        == truth["sessionMetrics"]["topLandingPages"][0]["url"]
    screenshot(page, "overview")

    for name in PANELS[1:]:
        open_panel(page, name)
        assert page.locator(f"{panel(name)} .card-status.error").count() == 0
        screenshot(page, name)

        if name == "retention":
            cells = page.evaluate("""() => echarts.getInstanceByDom(
                document.querySelector('[data-chart="retention-heatmap"]'))
                .getOption().series[0].data.length""")
            assert cells > 10
        elif name == "paths":
            sankey = page.evaluate("""() => echarts.getInstanceByDom(
                document.querySelector('[data-chart="journey-sankey"]'))
                .getOption().series[0].links.length""")
            assert sankey > 5
            assert page.locator('tr[data-group="converters"]').count() > 0
        elif name == "trends":
            assert page.locator('[data-card="trends-chart"] tbody tr').count() == 3
        elif name == "segments":
            assert page.locator('[data-card="segment-users"] tbody tr').count() == 25
        elif name == "people":
            assert page.locator('[data-card="person-profile"][data-state="empty"]').count() == 1
        elif name == "breakdowns":
            for dimension in ("city", "deviceType", "os", "ageBand", "gender"):
                assert page.locator(f'[data-chart="breakdown-{dimension}"]').count() == 1
        elif name == "crashes":
            assert float(page.inner_text('[data-kpi="crashes"] .kpi-value')
                         .replace(",", "")) > 0
        elif name == "live":
            assert page.locator('[data-kpi="active-sessions"]').count() == 1

    # a reload keeps the session (the key is in sessionStorage) and the panel (the URL's hash)
    page.reload()
    wait_panel(page, "live")
    assert page.locator("#signin").is_hidden()
    assert errors == []


def test_bad_key_is_refused(page: Page, demo: Demo) -> None:
    gw, keys = demo
    sign_in(page, gw, "cep_r_this-is-not-a-key")
    alert = page.locator("#signin-error")
    alert.wait_for(state="visible")
    assert "refused" in alert.inner_text()
    assert page.locator("#app").is_hidden()
    assert page.evaluate("sessionStorage.getItem('cep.dashboard.readKey')") is None
    screenshot(page, "bad-key")

    # a valid key of the wrong kind is refused too, saying which kind it needs
    page.get_by_label("Read key").fill(keys["write_key"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_function("""() => /read key/.test(
        document.querySelector('#signin-error').textContent)""")
    assert "refused" in alert.inner_text()


def test_no_data_and_server_down(page: Page, demo: Demo) -> None:
    gw, _keys = demo
    empty = gw.create_project(f"empty-{uuid.uuid4().hex[:6]}")
    sign_in(page, gw, empty["read_key"])
    wait_panel(page, "overview")
    status = page.locator('[data-card="kpis"][data-state="empty"] .card-status')
    assert "No data yet" in status.inner_text()
    screenshot(page, "no-data")

    # the gateway stops answering: every request fails at the network level
    page.route("**/graphql", lambda route: route.abort())
    page.select_option("#window", "7d")
    page.wait_for_selector(f'{panel("overview")}[data-state="error"]')
    # said once for the panel, not once per card
    banner = page.locator(f'{panel("overview")} .banner')
    assert "Cannot reach the CEP gateway" in banner.inner_text()
    assert page.locator('[data-card="kpis"][data-state="error"]').count() == 1
    screenshot(page, "server-down")

    page.evaluate("sessionStorage.clear()")
    sign_in(page, gw, empty["read_key"])
    page.wait_for_function("""() => /Cannot reach the CEP gateway/.test(
        document.querySelector('#signin-error').textContent)""")


FUNNEL = """query($steps: [FunnelStepInput!]!, $w: TimeWindow, $cw: String!, $b: String) {
  funnel(steps: $steps, window: $w, conversionWindow: $cw, breakdown: $b) {
    steps { event users conversionFromPrevious conversionFromFirst dropOff }
    breakdowns { key steps { users conversionFromFirst } }
  }
  funnelUsers(steps: $steps, step: 2, dropped: true, window: $w, conversionWindow: $cw,
              first: 50) { totalCount users }
}"""


def test_built_funnel_matches_the_api(page: Page, errors: list[str], demo: Demo) -> None:
    gw, keys = demo
    sign_in(page, gw, keys["read_key"])
    wait_panel(page, "overview")
    open_panel(page, "funnel")
    steps = page.locator(f'{panel("funnel")} li.step')
    assert steps.count() == 4
    steps.nth(2).get_by_role("button", name="Remove this step").click()  # Begin Checkout
    page.locator('button[data-action="add-step"]').click()
    chosen = ["Product View", "Add to Cart", "Purchase", "Order Delivered"]
    for i, event in enumerate(chosen):
        steps.nth(i).locator("select").select_option(event)
    page.select_option('select[name="conversion-window"]', "7d")
    page.fill('input[name="breakdown"]', "os")
    page.get_by_role("button", name="Run funnel").click()
    wait_panel(page, "funnel")
    page.wait_for_selector('[data-card="funnel-breakdown"] tbody tr')
    page.wait_for_selector('.dropped-list[data-state="ready"]')
    page.select_option('select[name="dropped-step"]', "2")
    page.wait_for_selector('.dropped-list[data-state="ready"] p[data-total]')
    screenshot(page, "funnel-built")

    truth = gql(gw, keys["read_key"], FUNNEL, {
        "steps": [{"event": e} for e in chosen], "w": WINDOW, "cw": "7d", "b": "os"})
    expected = truth["funnel"]["steps"]
    assert [s["event"] for s in expected] == chosen
    assert expected[0]["users"] > expected[-1]["users"] > 0

    rows = page.locator('[data-card="funnel-chart"] tbody tr')
    assert rows.count() == len(chosen)
    for i, step in enumerate(expected):
        row = rows.nth(i)
        assert row.get_attribute("data-users") == str(step["users"])
        assert row.locator('td[data-col="users"]').inner_text() == number(step["users"])
        assert row.locator('td[data-col="drop-off"]').inner_text() == number(step["dropOff"])
        assert row.locator('td[data-col="conversion-from-first"]').inner_text() \
            == percent(step["conversionFromFirst"])
    chart = page.evaluate("""() => echarts.getInstanceByDom(
        document.querySelector('[data-chart="funnel"]')).getOption().series[0].data""")
    assert [d["value"] for d in chart] == [s["users"] for s in expected]
    assert [d["name"] for d in chart] == [f"{i + 1}. {e}" for i, e in enumerate(chosen)]

    groups = {g["key"]: g for g in truth["funnel"]["breakdowns"] if g["steps"][0]["users"]}
    shown = page.locator('[data-card="funnel-breakdown"] tbody tr')
    assert shown.count() == len(groups)
    for i in range(shown.count()):
        row = shown.nth(i)
        key = row.locator('td[data-col="key"]').inner_text()
        group = groups[None if key == "(unknown)" else key]
        assert row.locator('td[data-col="entered"]').inner_text() \
            == number(group["steps"][0]["users"])
        assert row.locator('td[data-col="converted"]').inner_text() \
            == number(group["steps"][-1]["users"])

    dropped = truth["funnelUsers"]
    assert page.get_attribute(".dropped-list p[data-total]", "data-total") \
        == str(dropped["totalCount"])
    listed = page.locator(".dropped-list a[data-user]").evaluate_all(
        "els => els.map(e => e.dataset.user)")
    assert listed == dropped["users"]
    assert errors == []


def test_segment_export_is_the_whole_segment(page: Page, errors: list[str], demo: Demo) -> None:
    gw, keys = demo
    sign_in(page, gw, keys["read_key"])
    wait_panel(page, "overview")
    open_panel(page, "segments")
    page.fill('input[name="segment-city"]', "London")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_function("""() => /London/.test(document.querySelector(
        '[data-card="segment-users"] p[data-total]')?.textContent || '')""")
    wait_panel(page, "segments")

    truth = gql(gw, keys["read_key"], """query($w: TimeWindow) {
        segment(filter: {city: "London"}, window: $w, first: 10000) { totalCount rows } }""",
                {"w": WINDOW})["segment"]
    assert truth["totalCount"] > 0
    assert page.get_attribute('[data-card="segment-users"] p[data-total]', "data-total") \
        == str(truth["totalCount"])
    cities = page.locator('[data-card="segment-users"] td[data-col="city"]').all_inner_texts()
    assert cities
    assert all("London" in c for c in cities)

    with page.expect_download() as info:
        page.locator('button[data-action="export-csv"]').click()
    text = Path(info.value.path()).read_text(encoding="utf-8")
    exported = list(csv.DictReader(io.StringIO(text)))
    assert len(exported) == truth["totalCount"]
    assert [r["userId"] for r in exported] == [r["userId"] for r in truth["rows"]]
    assert list(exported[0]) == ["userId", "city", "state", "country", "postalCode", "lat",
                                 "long", "deviceType", "os", "appVersion", "gender", "age",
                                 "email", "phone"]
    assert errors == []


TRENDS = """query($series: [TrendSeriesInput!]!, $w: TimeWindow, $b: String) {
  trends(series: $series, interval: DAY, window: $w, breakdown: $b, timezone: "UTC",
         breakdownLimit: 5) {
    buckets series { name breakdownValue total values }
  }
}"""


def chart_series(page: Page, name: str) -> list[dict[str, Any]]:
    return list(page.evaluate("""name => echarts.getInstanceByDom(
        document.querySelector(`[data-chart="${name}"]`)).getOption().series
        .map(s => ({name: s.name, data: s.data}))""", name))


def test_trends_match_the_api(page: Page, errors: list[str], demo: Demo) -> None:
    gw, keys = demo
    key = keys["read_key"]
    sign_in(page, gw, key)
    wait_panel(page, "overview")
    open_panel(page, "trends")
    # the busiest three events of the pick-list's catalogue, counted per day
    catalogue = gql(gw, key, """{ eventDefinitions(window: {last: "90d"}, first: 500) {
        name } }""")["eventDefinitions"]
    busiest = [d["name"] for d in catalogue[:3]]
    chosen = page.locator('select[name="trends-event"]').evaluate_all(
        "els => els.map(e => e.value)")
    assert chosen == busiest
    assert page.input_value('select[name="trends-math"]') == "TOTAL"
    assert page.input_value('select[name="trends-interval"]') == "DAY"
    card = page.locator('[data-card="trends-chart"]')

    def matches_the_api(math: str, breakdown: str | None) -> None:
        truth = gql(gw, key, TRENDS, {"series": [{"event": e, "math": math} for e in busiest],
                                      "w": WINDOW, "b": breakdown})["trends"]
        series = truth["series"]
        assert series
        assert sum(s["total"] for s in series) > 0
        rows = card.locator("tbody tr")
        assert rows.count() == len(series)
        for i, s in enumerate(series):
            row = rows.nth(i)
            assert float(row.get_attribute("data-total") or "nan") == s["total"]
            assert row.locator('td[data-col="name"]').inner_text() == s["name"]
            if math == "TOTAL":
                assert row.locator('td[data-col="total"]').inner_text() == number(s["total"])
            if breakdown:
                assert row.locator('td[data-col="breakdown-value"]').inner_text() \
                    == (s["breakdownValue"] or "(unknown)")
        lines = chart_series(page, "trends")
        assert [line["data"] for line in lines] == [s["values"] for s in series]
        axis = page.evaluate("""() => echarts.getInstanceByDom(
            document.querySelector('[data-chart="trends"]')).getOption().xAxis[0].data""")
        assert axis == [b[:10] for b in truth["buckets"]]

    matches_the_api("TOTAL", None)
    assert [line["name"] for line in chart_series(page, "trends")] == busiest

    page.select_option('select[name="trends-math"]', "UNIQUE_USERS")
    wait_panel(page, "trends")
    page.select_option('select[name="trends-breakdown"]', "country")
    page.wait_for_function("""() => /Unique users per day, by country/.test(
        document.querySelector('[data-card="trends-chart"] h3').textContent)""")
    wait_panel(page, "trends")
    matches_the_api("UNIQUE_USERS", "country")
    screenshot(page, "trends-breakdown")
    assert errors == []


PERSON = """query($u: String!, $w: TimeWindow) {
  user(userId: $u, window: $w) {
    userId eventCount sessionCount
    events(first: 50) { totalCount edges { node { insertId } } }
  }
}"""


def test_person_page_matches_the_api(page: Page, errors: list[str], demo: Demo) -> None:
    gw, keys = demo
    key = keys["read_key"]
    rows = gql(gw, key, """query($w: TimeWindow) { segment(window: $w, first: 20) { rows } }""",
               {"w": WINDOW})["segment"]["rows"]
    people = (gql(gw, key, PERSON, {"u": r["userId"], "w": WINDOW})["user"] for r in rows)
    # one with more than a page of events (25), so that "Load more" has more to load
    person = next(p for p in people if p and p["eventCount"] > 25)
    user = person["userId"]
    newest = [e["node"]["insertId"] for e in person["events"]["edges"]]

    sign_in(page, gw, key)
    wait_panel(page, "overview")
    open_panel(page, "people")
    page.fill('input[name="people-user"]', user)
    page.get_by_role("button", name="Show").click()
    page.wait_for_function("""user => document.querySelector(
        '[data-card="person-profile"] dd[data-field="userId"]')?.textContent === user""",
                           arg=user)
    wait_panel(page, "people")
    assert page.inner_text('[data-kpi="user-events"] .kpi-value') \
        == number(person["eventCount"])
    assert page.inner_text('[data-kpi="user-sessions"] .kpi-value') \
        == number(person["sessionCount"])
    events = page.locator('[data-card="person-events"]')
    assert events.locator("p[data-total]").get_attribute("data-total") \
        == str(person["events"]["totalCount"])

    def listed() -> list[str]:
        return list(events.locator("tbody tr").evaluate_all(
            "els => els.map(e => e.dataset.insertId)"))

    assert listed() == newest[:25]
    events.locator('button[data-action="load-more"]').click()
    page.wait_for_function("""n => document.querySelectorAll(
        '[data-card="person-events"] tbody tr').length === n""", arg=len(newest))
    assert listed() == newest
    screenshot(page, "people")

    # a user in the segment explorer opens their page
    open_panel(page, "segments")
    member = page.locator('[data-card="segment-users"] td[data-col="userId"] a').first
    other = member.inner_text()
    member.click()
    page.wait_for_function("""user => document.querySelector(
        '[data-card="person-profile"] dd[data-field="userId"]')?.textContent === user""",
                           arg=other)
    wait_panel(page, "people")
    assert page.input_value('input[name="people-user"]') == other
    assert errors == []


def test_live_event_arrives_after_posting_it(page: Page, errors: list[str], demo: Demo) -> None:
    gw, keys = demo
    sign_in(page, gw, keys["read_key"])
    wait_panel(page, "overview")
    open_panel(page, "live")
    user = f"dashboard-live-{uuid.uuid4().hex[:8]}"
    page.select_option('select[name="live-mode"]', "user")
    page.fill('input[name="live-id"]', user)
    page.locator('[data-card="live-stream"]').get_by_role("button", name="Watch",
                                                           exact=True).click()
    page.wait_for_selector('.stream-status[data-stream-state="listening"]')

    insert_id = str(uuid.uuid4())
    event = {"event_name": "Add to Cart", "time": int(time.time() * 1000),
             "insert_id": insert_id, "distinct_user_id": user, "device_id": f"{user}-phone",
             "url": "moreretail.com/cart", "custom_properties": {"item": "Coffee",
                                                                 "amount": 5.0}}
    resp = httpx.post(gw.url + "/v1/events", json=[event], timeout=30,
                      headers={"Authorization": f"Bearer {keys['write_key']}"})
    assert resp.json() == {"accepted": 1, "rejected": []}

    row = page.locator(f'ol.events li[data-insert-id="{insert_id}"]')
    row.wait_for(state="visible")
    assert "Add to Cart" in row.inner_text()
    assert user in row.inner_text()
    # and the live metrics count it in the interval it was processed in
    page.locator('[data-card="live-metrics"] td[data-col="event"]',
                 has_text="Add to Cart").wait_for(state="visible")
    # and the open sessions (openSessions) list its session, in progress
    sessions = page.locator('[data-card="open-sessions"]')
    sessions.get_by_role("button", name="Refresh").click()
    opened = sessions.locator("tr[data-session]", has=page.locator(
        'td[data-col="userId"]', has_text=user))
    opened.wait_for(state="visible")
    assert "Add to Cart" in opened.locator('td[data-col="lastEvent"]').inner_text()
    screenshot(page, "live")
    assert errors == []
