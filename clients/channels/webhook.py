"""Webhook channel: an HTTP POST of the message as JSON, signed with HMAC-SHA256.

The body (UTF-8 JSON)::

    {"campaign_id": "...", "user_id": "...", "idempotency_key": "...", "subject": "...",
     "message": "<rendered body>", "to": "<user address or null>", "data": {...},
     "sent_at": "2026-01-01T12:00:00.123Z"}

Headers: ``X-CEP-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed by the
secret>``, ``X-CEP-Timestamp`` (unix seconds of ``sent_at``, which the signature covers
through the body, so a receiver can refuse old replays), ``Idempotency-Key``,
``X-CEP-Attempt`` (1, 2, ...). Every attempt of one send carries the same body and
signature; receivers drop duplicates by ``idempotency_key``.

WhatsApp and push go through this channel: point it at the provider's HTTP endpoint (or a
small adapter in front of it) with the user's phone number or push token in ``to`` and the
provider's credentials in ``headers``.

Retries: connection errors and timeouts, 429 (waiting at least its ``Retry-After``) and
5xx; any other status is final. Redirects are not followed (a redirect would also escape
the private-address guard)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import orjson

from clients.channels.message import DeliveryResult, Message
from clients.channels.retry import DEFAULT_BACKOFF, Attempt, Backoff, deliver_with_retries
from clients.channels.urls import private_address, url_problem

SIGNATURE_HEADER = "X-CEP-Signature"
TIMESTAMP_HEADER = "X-CEP-Timestamp"
ATTEMPT_HEADER = "X-CEP-Attempt"
RESERVED_HEADERS = frozenset({
    "content-type", "content-length", "host", "idempotency-key", "transfer-encoding",
    SIGNATURE_HEADER.lower(), TIMESTAMP_HEADER.lower(), ATTEMPT_HEADER.lower(),
})
_MAX_ANSWER_BYTES = 64 << 10  # of a receiver's answer read (for an error detail or an id)


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, body: bytes) -> str:
    """The ``X-CEP-Signature`` value for ``body``: ``sha256=<hex digest>``."""
    return "sha256=" + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """For receivers: whether ``header`` (the ``X-CEP-Signature`` value) signs the raw
    request ``body`` with ``secret``. Compares in constant time; a missing or malformed
    header is False. Verify the bytes as received, before parsing the JSON."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


def encode_payload(message: Message, sent_at: float) -> bytes:
    """The JSON body for ``message``; raises TypeError when ``data`` is not serializable."""
    moment = datetime.fromtimestamp(sent_at, UTC)
    return orjson.dumps({
        "campaign_id": message.campaign_id,
        "user_id": message.user_id,
        "idempotency_key": message.idempotency_key,
        "subject": message.subject,
        "message": message.body,
        "to": message.to,
        "data": dict(message.data),
        "sent_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    })


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _provider_id(answer: bytes) -> str | None:
    try:
        parsed = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return None
    if isinstance(parsed, dict):
        for key in ("id", "message_id"):
            if isinstance(parsed.get(key), str | int) and not isinstance(parsed[key], bool):
                return str(parsed[key])
    return None


def _snippet(answer: bytes) -> str:
    text = answer[:200].decode("utf-8", "replace").strip()
    return f": {text}" if text else ""


class WebhookChannel:
    """POSTs each message to ``url`` (see the module doc for the wire format).

    ``timeout`` (seconds) bounds each attempt; ``max_attempts`` counts the first one;
    ``headers`` are extra request headers (a provider's ``Authorization``); ``client`` is a
    shared ``httpx.AsyncClient`` (not closed by :meth:`aclose`), else the channel makes its
    own; ``block_private`` refuses to send when the host resolves to a non-public address
    (see :mod:`clients.channels.urls`)."""

    def __init__(self, url: str, secret: str | bytes, *, timeout: float = 10.0,
                 max_attempts: int = 4, backoff: Backoff = DEFAULT_BACKOFF,
                 headers: Mapping[str, str] | None = None,
                 client: httpx.AsyncClient | None = None, block_private: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        problem = url_problem(url)  # the private-address guard runs at send time
        if problem:
            raise ValueError(f"url: {problem}")
        if not secret:
            raise ValueError("secret: must not be empty")
        if max_attempts < 1:
            raise ValueError("max_attempts: must be >= 1")
        reserved = sorted(h for h in (headers or {}) if h.lower() in RESERVED_HEADERS)
        if reserved:
            raise ValueError(f"headers: {', '.join(reserved)} are set by the channel")
        self._url = httpx.URL(url)
        self._port = self._url.port or (443 if self._url.scheme == "https" else 80)
        self._secret = _key(secret)
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._headers = dict(headers or {})
        self._owns_client = client is None
        self._client = httpx.AsyncClient(follow_redirects=False) if client is None else client
        self._block_private = block_private
        self._clock = clock

    def __repr__(self) -> str:  # the URL's path and query may carry tokens: host only
        return f"WebhookChannel(host={self._url.host!r})"

    async def send(self, message: Message) -> DeliveryResult:
        sent_at = self._clock()
        try:
            body = encode_payload(message, sent_at)
        except TypeError as exc:
            return DeliveryResult("failed", f"message data is not JSON-serializable: {exc}", 0)
        if self._block_private:
            address = await private_address(self._url.host, self._port)
            if address is not None:
                return DeliveryResult("failed", f"refused: {self._url.host} resolves to the "
                                      f"non-public address {address}", 0)
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Idempotency-Key": message.idempotency_key,
            SIGNATURE_HEADER: sign(self._secret, body),
            TIMESTAMP_HEADER: str(int(sent_at)),
        }

        async def attempt(number: int) -> Attempt:
            return await self._post(body, {**headers, ATTEMPT_HEADER: str(number)})

        return await deliver_with_retries(attempt, self._max_attempts, self._backoff)

    async def _post(self, body: bytes, headers: dict[str, str]) -> Attempt:
        try:
            async with self._client.stream("POST", self._url, content=body, headers=headers,
                                           timeout=self._timeout) as response:
                answer = b""
                async for chunk in response.aiter_bytes():
                    answer += chunk
                    if len(answer) >= _MAX_ANSWER_BYTES:
                        break
        except httpx.TimeoutException as exc:
            return Attempt("transient", f"timed out after {self._timeout:g}s "
                           f"({type(exc).__name__})")
        except httpx.TransportError as exc:
            return Attempt("transient", f"could not reach {self._url.host}:{self._port} "
                           f"({type(exc).__name__}: {str(exc) or 'no detail'})")
        status = response.status_code
        label = f"HTTP {status} {response.reason_phrase}".rstrip()
        if 200 <= status < 300:
            return Attempt("sent", label, provider_id=_provider_id(answer))
        if status == 429 or status >= 500:
            return Attempt("transient", label + _snippet(answer), retry_after=parse_retry_after(
                response.headers.get("Retry-After"), self._clock()))
        if 300 <= status < 400:
            return Attempt("failed", f"{label} (redirects are not followed; "
                           "configure the final URL)")
        return Attempt("failed", label + _snippet(answer))

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
