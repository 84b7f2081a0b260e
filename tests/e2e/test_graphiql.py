"""GraphiQL works offline: the page at /graphql loads only the gateway's own vendored bundles.

A tiny strawberry app whose ``render_graphql_ide`` returns :func:`graphiql_html`, plus
:func:`graphiql_routes`, served by a real uvicorn server on a free port in a thread. When
Debian's chromium is installed the page is also rendered headless (``--dump-dom``) to check
that GraphiQL's editor appears and fetches the schema; without chromium that test skips.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import strawberry
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from gateway.graphiql import (
    ASSETS,
    DEFAULT_HEADERS,
    VENDOR_DIR,
    VENDOR_URL,
    assets_available,
    graphiql_html,
    graphiql_routes,
)
from tests.e2e.conftest import ROOT, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@strawberry.type
class PipelineStatus:
    pending_events: int


@strawberry.type
class Query:
    @strawberry.field
    def pipeline_status(self) -> PipelineStatus:
        return PipelineStatus(pending_events=0)


class IDEGraphQL(GraphQL[dict[str, Any], None]):
    """As the gateway does it: strawberry's GraphQL view with our page instead of the CDN one."""

    def __init__(self, vendor: Path, seen: list[tuple[str, str]]) -> None:
        super().__init__(strawberry.Schema(query=Query), graphql_ide="graphiql")
        self.vendor = vendor
        self.seen = seen

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql_html(static_dir=self.vendor))

    async def get_context(self, request: Request | WebSocket, response: Any) -> dict[str, Any]:
        self.seen.append((request.scope["type"], request.headers.get("authorization", "")))
        return {}


class AssetRefs(HTMLParser):
    """Every URL the page would fetch: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        url = a.get("src") if tag in ("script", "img", "iframe") else (
            a.get("href") if tag == "link" else None)
        if url:
            self.urls.append(url)
        elif tag == "script":
            self.inline_scripts += 1


@pytest.fixture(scope="module")
def vendor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built bundles: those of ``make setup``, else built here into a temporary dir."""
    if assets_available():
        return VENDOR_DIR
    out = tmp_path_factory.mktemp("graphiql-vendor")
    build = subprocess.run(["bash", str(ROOT / "scripts" / "build-graphiql.sh"), str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    if build.returncode != 0 or not assets_available(out):
        pytest.fail("GraphiQL assets are not built and scripts/build-graphiql.sh failed:\n"
                    + build.stdout + build.stderr)
    return out


class Server:
    def __init__(self, app: Starlette) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
            ws="websockets-sansio"))
        self.thread = threading.Thread(target=self.server.run, name="graphiql-uvicorn",
                                       daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def seen() -> list[tuple[str, str]]:
    return []


@pytest.fixture(scope="module")
def server(vendor_dir: Path, seen: list[tuple[str, str]]) -> Iterator[Server]:
    gql = IDEGraphQL(vendor_dir, seen)
    app = Starlette(routes=[
        Route("/graphql", gql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", gql),
        *graphiql_routes(vendor_dir),
    ])
    with Server(app) as srv:
        yield srv


def vendored(refs: AssetRefs) -> list[str]:
    return [url for url in refs.urls if not url.startswith("data:")]


def get_page(server: Server) -> httpx.Response:
    resp = httpx.get(server.url + "/graphql", headers={"Accept": "text/html"}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    return resp


def test_page_loads_only_local_assets(server: Server) -> None:
    page = get_page(server).text
    refs = AssetRefs()
    refs.feed(page)
    assert "not built" not in page
    assert refs.urls, "the page references no assets"
    for url in refs.urls:
        assert not url.startswith(("http://", "https://", "//")), f"remote asset: {url}"
        assert url.startswith((VENDOR_URL + "/", "data:")), f"unexpected asset URL: {url}"
    for marker in ("unpkg", "jsdelivr", "cdnjs", "esm.sh"):
        assert marker not in page
    assert sorted(u.split("?")[0].rsplit("/", 1)[1] for u in vendored(refs)) == sorted(ASSETS)


def test_every_asset_is_served(server: Server) -> None:
    refs = AssetRefs()
    refs.feed(get_page(server).text)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for url in vendored(refs):
            resp = client.get(url)
            assert resp.status_code == 200, url
            assert len(resp.content) > 5_000, f"{url}: only {len(resp.content)} bytes"
            kind = "text/css" if url.split("?")[0].endswith(".css") else "javascript"
            assert kind in resp.headers["content-type"], (url, resp.headers["content-type"])
        assert client.get(VENDOR_URL + "/no-such-file.js").status_code == 404


def test_page_prefills_query_and_headers(server: Server) -> None:
    page = get_page(server).text
    # the config travels as JSON inside <script type="application/json">, "<" escaped
    start = page.index('<script id="cep-graphiql-config" type="application/json">')
    body = page[page.index(">", start) + 1:page.index("</script>", start)]
    config = orjson.loads(body)
    assert config["endpoint"] == "/graphql"
    assert "pipelineStatus" in config["defaultQuery"]
    assert "pendingEvents" in config["defaultQuery"]
    assert orjson.loads(config["defaultHeaders"]) == {"Authorization": "Bearer <read key>"}
    assert config["defaultHeaders"] == DEFAULT_HEADERS
    assert "<read key>" not in body  # escaped, so it cannot close the script element


def test_endpoint_still_answers_queries(server: Server) -> None:
    query = "{ pipelineStatus { pendingEvents } }"
    resp = httpx.post(server.url + "/graphql", json={"query": query}, timeout=30)
    assert resp.json() == {"data": {"pipelineStatus": {"pendingEvents": 0}}}


async def test_missing_assets_say_how_to_build(tmp_path: Path) -> None:
    missing = tmp_path / "vendor"
    assert not assets_available(missing)
    page = graphiql_html(static_dir=missing)
    assert "GraphiQL assets are not built" in page
    assert "make setup" in page
    refs = AssetRefs()
    refs.feed(page)
    assert refs.urls == []  # nothing that could hang
    assert refs.inline_scripts == 0

    # the vendor mount 404s (not 500s) until the bundles appear, then serves them
    app = Starlette(routes=graphiql_routes(missing))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        assert (await client.get(VENDOR_URL + "/graphiql.min.js")).status_code == 404
        missing.mkdir()
        for name in ASSETS:
            (missing / name).write_text("/* built */")
        assert assets_available(missing)
        assert (await client.get(VENDOR_URL + "/graphiql.min.js")).text == "/* built */"
    assert VENDOR_URL + "/graphiql.min.js" in graphiql_html(static_dir=missing)


def test_headless_chromium_renders_graphiql(server: Server, seen: list[tuple[str, str]]) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: `make setup` installs Debian's chromium")
        pytest.skip("chromium is not installed (`make setup` installs it as root on Debian)")
    seen.clear()
    with tempfile.TemporaryDirectory(prefix="cep-chromium-") as profile:
        run = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
             "--virtual-time-budget=15000", "--dump-dom", server.url + "/graphql"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "HOME": profile})
    assert run.returncode == 0, run.stderr[-3000:]
    dom = re.sub(r"<script\b.*?</script>", "", run.stdout, flags=re.DOTALL)
    assert "Loading GraphiQL" not in dom, dom[-3000:]
    assert "did not load" not in dom, dom[-3000:]
    assert "graphiql-query-editor" in dom, dom[-3000:]
    assert "graphiql-editor-tool" in dom  # the headers editor, open and pre-filled
    text = html.unescape(re.sub(r"<[^>]+>", "", dom))
    assert '"Authorization": "Bearer <read key>"' in text, text[-3000:]
    assert "pipelineStatus" in text  # the pre-filled query, rendered by CodeMirror
    # GraphiQL fetched the schema by introspection (POST /graphql) through its fetcher
    assert ("http", "") in seen, seen
