"""The dashboard at ``/``: static pages that ask the public GraphQL API, served by the gateway.

The page (``static/dashboard/index.html``), its stylesheet and its ES modules are plain files
in the repository, served under :data:`ASSETS_URL`. Charts are drawn by Apache ECharts, which
``scripts/build-dashboard.sh`` vendors from npm into ``static/dashboard/vendor/`` at set-up
time (never a CDN: the dashboard works offline). When the bundle is missing ``/`` says how to
build it instead of showing a page whose charts cannot load.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static" / "dashboard"
ASSETS_URL = "/dashboard"
# Files the page loads from STATIC_DIR/vendor (see ASSETS in scripts/build-dashboard.sh).
VENDOR_ASSETS = ("echarts.min.js",)
BUILD_COMMAND = "make dashboard"
# The page keeps a read key in sessionStorage, so it runs only its own scripts. ECharts sets
# inline styles on the tooltips it builds, hence 'unsafe-inline' for styles alone.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; connect-src 'self'; "
                           "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                           "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
_HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def assets_available(static_dir: Path = STATIC_DIR) -> bool:
    """True when every vendored file the page loads is present (and non-empty)."""
    try:
        return all((static_dir / "vendor" / name).stat().st_size > 0 for name in VENDOR_ASSETS)
    except OSError:
        return False


def _missing_page(vendor: Path) -> str:
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>CEP dashboard: assets not built</title>
<link rel="icon" href="data:,">
<style>body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 42em; margin: 3em auto; }}
code {{ background: #f3f3f3; padding: 0 .2em; }}</style></head>
<body>
<h1>Dashboard assets are not built — run <code>{BUILD_COMMAND}</code></h1>
<p>The dashboard draws its charts with Apache ECharts served by this gateway (no CDN), and
its bundle is missing from <code>{html.escape(str(vendor))}</code>. Run
<code>{BUILD_COMMAND}</code> (or <code>scripts/build-dashboard.sh</code>, which needs npm
and access to the npm registry) on the gateway's machine, then reload this page.</p>
<p>The API works without it: <a href="/graphql">/graphql</a> answers queries with a read
key.</p>
</body>
</html>
"""


def dashboard_html(static_dir: Path = STATIC_DIR) -> str:
    """The dashboard page, or a page saying how to build the chart bundle when it is missing.

    Vendored URLs carry the build stamp, so a new build is fetched instead of a cached one.
    """
    vendor = static_dir / "vendor"
    if not assets_available(static_dir):
        return _missing_page(vendor)
    try:
        stamp = "".join(c for c in (vendor / ".build-stamp").read_text()[:16] if c.isalnum())
    except OSError:
        stamp = ""
    page = (static_dir / "index.html").read_text(encoding="utf-8")
    if stamp:
        for name in VENDOR_ASSETS:
            url = f"{ASSETS_URL}/vendor/{name}"
            page = page.replace(f'"{url}"', f'"{url}?v={stamp}"')
    return page


class _AssetFiles(StaticFiles):
    """The page's own files and the vendored bundle: revalidated on every load (an ETag, so
    usually a 304), since an ES module imported by another cannot carry a version in its
    URL. A vendored file that is not built yet is a 404 like any other missing file."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result,
                      scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(_HEADERS)
        return response


def dashboard_routes(static_dir: Path = STATIC_DIR) -> list[BaseRoute]:
    """``/`` (the page) and :data:`ASSETS_URL` (its files and the vendored bundle)."""

    async def page(_request: Request) -> Response:
        return HTMLResponse(dashboard_html(static_dir), headers=_HEADERS)

    return [Route("/", page),
            Mount(ASSETS_URL, app=_AssetFiles(directory=static_dir), name="dashboard")]
