"""Structured logs: one JSON object per line, the request id on every line a request caused.

- :func:`configure` installs the root handler (``json`` or ``text``) at the configured level,
  and routes uvicorn's loggers through it; uvicorn's own access log is off (it prints query
  strings, where SDKs put their keys: Mixpanel's ``data=``, PostHog's ``api_key``).
- :class:`RequestId` (ASGI middleware) takes ``X-Request-ID`` from the request when it is a
  sane token (else makes one), keeps it in a context variable for every log line written
  while the request is served, returns it in the response's ``X-Request-ID``, and writes one
  access line per request: method, path (never the query string), status, duration.
- :class:`Redact` scrubs what must never reach a log line, whatever logged it: project keys,
  bearer tokens, passwords in URLs, e-mail addresses and phone numbers.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "cep_request_id", default=None)
access = logging.getLogger("cep.access")

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# The attributes every LogRecord has; anything else was passed in ``extra=`` and is kept.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName",
                                                            "color_message"}

_SECRETS = [
    (re.compile(r"\bcep_([wra])_[A-Za-z0-9_-]{8,}"), r"cep_\1_****"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ****"),
    (re.compile(r"(?P<h>[a-z][a-z0-9+.-]*://[^/@:\s]*:)[^/@\s]+@"), r"\g<h>****@"),
    (re.compile(r"(?i)\b(password|passwd|secret|token|api_key)=[^\s&\"']+"), r"\1=****"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "<email>"),
    (re.compile(r"\+\d[\d ().-]{6,}\d"), "<phone>"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class Redact(logging.Filter):
    """Rewrites the record's message (arguments merged in) with :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


class JSONFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "request_id"?, …extra, "exc"?}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = request_id.get()
        return f"{line} [request_id={rid}]" if rid else line


def configure(level: str = "info", fmt: str = "json") -> None:
    """The process's logging: one handler on stderr, redacted, in ``fmt``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(Redact())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def uvicorn_log_config() -> dict[str, Any]:
    """For ``uvicorn.run(log_config=…)``: leave the handlers :func:`configure` installed."""
    return {"version": 1, "disable_existing_loggers": False}


class RequestId:
    """ASGI middleware: the request id (see the module docstring) and one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope.get("headers", ())
                      if k == b"x-request-id"), "")
        rid = given if _VALID_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.accept"):
                status = int(message.get("status", 101))
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "websocket.close" and not status:
                status = 403
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            status = 500
            raise
        finally:
            access.info("%s %s %s", scope.get("method", "WS"), scope.get("path", ""), status,
                        extra={"method": scope.get("method", "WS"),
                               "path": scope.get("path", ""), "status": status,
                               "duration_ms": round((time.perf_counter() - started) * 1e3, 2)})
            request_id.reset(token)
