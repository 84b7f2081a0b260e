"""GraphiQL served by the gateway itself, so /graphql's IDE works with no internet access.

Strawberry's stock page loads React and GraphiQL from a CDN and hangs at "Loading…" offline.
Here the page (template ``static/graphiql/index.html``) loads the browser bundles that
``scripts/build-graphiql.sh`` vendors into ``static/graphiql/vendor/`` at set-up time, served
at ``/graphiql/vendor/`` by :func:`graphiql_routes`. When they are missing the page says so.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import anyio
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static" / "graphiql"
TEMPLATE = STATIC_DIR / "index.html"
VENDOR_DIR = STATIC_DIR / "vendor"
VENDOR_URL = "/graphiql/vendor"
# Files the page loads, as named in VENDOR_DIR (see ASSETS in scripts/build-graphiql.sh).
ASSETS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "graphiql.min.css",
)
BUILD_COMMAND = "make setup"

DEFAULT_QUERY = """\
# CEP GraphiQL: write a query here and run it with Ctrl-Enter (or the ▶ button).
#
# Most fields need a project key: open the Headers tab below and replace
# <read key> with your project's read key. Subscriptions run over a websocket
# on this same endpoint and send those headers in the connection payload.

{
  pipelineStatus {
    pendingEvents
  }
}
"""
DEFAULT_HEADERS = '{\n  "Authorization": "Bearer <read key>"\n}'


def _vendor_dir(static_dir: Path | None) -> Path:
    return VENDOR_DIR if static_dir is None else Path(static_dir)


def assets_available(static_dir: Path | None = None) -> bool:
    """True when every bundle the page loads is present (and non-empty) in ``static_dir``."""
    vendor = _vendor_dir(static_dir)
    try:
        return all((vendor / name).stat().st_size > 0 for name in ASSETS)
    except OSError:
        return False


def _json_for_script(value: object) -> str:
    """JSON safe to embed in a ``<script>`` element (no ``</script>`` or ``<!--`` escapes)."""
    return (json.dumps(value, ensure_ascii=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _missing_page(vendor: Path) -> str:
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>CEP GraphiQL: assets not built</title>
<style>body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 42em; margin: 3em auto; }}
code {{ background: #f3f3f3; padding: 0 .2em; }}</style></head>
<body>
<h1>GraphiQL assets are not built — run <code>{BUILD_COMMAND}</code></h1>
<p>The in-browser IDE is served from this gateway (no CDN), and its files are missing from
<code>{html.escape(str(vendor))}</code>. Run <code>{BUILD_COMMAND}</code> (or
<code>scripts/build-graphiql.sh</code>, which needs npm and access to the npm registry)
on the gateway's machine, then reload this page.</p>
<p>The GraphQL endpoint itself works without them: POST queries to it as JSON.</p>
</body>
</html>
"""


def graphiql_html(endpoint: str = "/graphql", *, static_dir: Path | None = None) -> str:
    """The GraphiQL page for ``endpoint`` (resolved against the page's URL in the browser).

    It loads its assets only from :data:`VENDOR_URL`; if they are not built it returns a page
    saying how to build them instead of one that would hang.
    """
    vendor = _vendor_dir(static_dir)
    if not assets_available(vendor):
        return _missing_page(vendor)
    try:
        stamp = "".join(c for c in (vendor / ".build-stamp").read_text()[:16] if c.isalnum())
    except OSError:
        stamp = ""
    config = {"endpoint": endpoint, "defaultQuery": DEFAULT_QUERY,
              "defaultHeaders": DEFAULT_HEADERS}
    page = TEMPLATE.read_text(encoding="utf-8")
    for name in ASSETS:  # a new build gets new URLs, so browsers drop cached old bundles
        if stamp:
            page = page.replace(f"__VENDOR__/{name}", f"__VENDOR__/{name}?v={stamp}")
    return (page.replace("__VENDOR__", VENDOR_URL)
            .replace("__CONFIG__", _json_for_script(config)))


class _VendorFiles(StaticFiles):
    """StaticFiles that answers 404, not 500, while the vendor directory is not built yet."""

    async def check_config(self) -> None:
        if self.directory is not None and not await anyio.to_thread.run_sync(
                os.path.isdir, self.directory):
            return
        await super().check_config()


def graphiql_routes(static_dir: Path | None = None) -> list[BaseRoute]:
    """Routes serving the vendored bundles at :data:`VENDOR_URL` (add them to the app)."""
    vendor = _vendor_dir(static_dir)
    return [Mount(VENDOR_URL, app=_VendorFiles(directory=vendor, check_dir=False),
                  name="graphiql-vendor")]
