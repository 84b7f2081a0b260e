"""A webhook endpoint for campaign tests: a real HTTP server in the test process."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """A webhook endpoint that records every delivery (body and headers)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, Any], dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.received.append((json.loads(body), dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_campaign(self, campaign: str) -> list[dict[str, Any]]:
        return [body for body, _, _ in self.received if body["campaign_id"] == campaign]

    def wait(self, campaign: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.for_campaign(campaign)
            if len(got) >= count:
                return got
            time.sleep(0.1)
        raise AssertionError(f"{campaign}: {len(self.for_campaign(campaign))} of {count} "
                             f"deliveries after {timeout} s")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
