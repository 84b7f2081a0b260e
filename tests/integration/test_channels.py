"""Channels against real receivers: a uvicorn HTTP server and an aiosmtpd SMTP server, both
on free ports of 127.0.0.1 in threads of this process, plus the log channel's file.

The HTTP receiver answers each hook path from a plan (503s, 429 with Retry-After, 4xx, a
slow answer) and records what it got and when, so retries, backoff and signatures are
checked on the wire. The SMTP receiver can refuse a recipient or the data with 4xx/5xx
replies and checks credentials. Backoffs are milliseconds, so the module runs in seconds.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clients.channels import (
    Backoff,
    ChannelSettings,
    EmailChannel,
    LogChannel,
    Message,
    SmtpSettings,
    WebhookChannel,
    channel_from_config,
    message_id_for,
    verify_signature,
)

SECRET = "whsec-test-0123456789abcdef"
FAST = Backoff(initial=0.05, multiplier=2.0, max_delay=2.0, jitter=0.0)
MESSAGE = Message(campaign_id="cmp-1", user_id="user-42",
                  idempotency_key="cmp-1:user-42:1760000000000", subject="Your cart is waiting",
                  body="Hi Asha, your Coffee is still in the cart — ₹500.",
                  to="asha@example.com",
                  data={"trigger_event": "Add to Cart", "fired_at": 1_760_000_000_000})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the HTTP receiver ----------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    delay: float = 0.0  # seconds before answering (to trip the client's timeout)


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


class HookServer:
    """A uvicorn server in a thread: ``POST /hook/<name>`` answers from ``plan(name, ...)``
    and then 200 ``{"id": "prov-<n>"}``; every request is kept in ``received[name]``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.plans: dict[str, deque[Answer]] = defaultdict(deque)
        self.received: dict[str, list[Received]] = defaultdict(list)
        app = Starlette(routes=[Route("/hook/{name}", self.hook, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
            ws="none"))
        self.thread = threading.Thread(target=self.server.run, name="hooks-uvicorn",
                                       daemon=True)

    async def hook(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.received[name].append(Received(dict(request.headers), await request.body(),
                                             time.monotonic()))
        plan = self.plans[name]
        if not plan:
            return JSONResponse({"id": f"prov-{len(self.received[name])}"})
        answer = plan.popleft()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        return Response(answer.body, answer.status, answer.headers)

    def plan(self, *answers: Answer) -> str:
        """A fresh hook URL answering ``answers`` first."""
        name = uuid.uuid4().hex
        self.plans[name].extend(answers)
        self.received[name] = []
        return name

    def url(self, name: str) -> str:
        return f"{self.base}/hook/{name}"

    def __enter__(self) -> HookServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def hooks() -> Iterator[HookServer]:
    with HookServer() as server:
        yield server


async def send_webhook(url: str, message: Message = MESSAGE, **options: Any) -> Any:
    channel = WebhookChannel(url, SECRET, **{"timeout": 5.0, "max_attempts": 3,
                                             "backoff": FAST, **options})
    try:
        return await channel.send(message)
    finally:
        await channel.aclose()


# --- webhook --------------------------------------------------------------------------------

async def test_webhook_posts_signed_json(hooks: HookServer) -> None:
    name = hooks.plan()
    before = time.time()
    result = await send_webhook(hooks.url(name))
    assert (result.status, result.attempts, result.provider_id) == ("sent", 1, "prov-1")
    assert result.detail == "HTTP 200 OK"
    (got,) = hooks.received[name]
    assert verify_signature(SECRET, got.body, got.headers["x-cep-signature"])
    assert not verify_signature("some-other-secret-000", got.body, got.headers["x-cep-signature"])
    payload = json.loads(got.body)
    assert payload == {
        "campaign_id": "cmp-1", "user_id": "user-42",
        "idempotency_key": "cmp-1:user-42:1760000000000", "subject": "Your cart is waiting",
        "message": MESSAGE.body, "to": "asha@example.com",
        "data": {"trigger_event": "Add to Cart", "fired_at": 1_760_000_000_000},
        "sent_at": payload["sent_at"]}
    sent_at = datetime.fromisoformat(payload["sent_at"]).timestamp()
    assert before - 1 <= sent_at <= time.time()
    assert got.headers["x-cep-timestamp"] == str(int(sent_at))
    assert got.headers["idempotency-key"] == MESSAGE.idempotency_key
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-cep-attempt"] == "1"


async def test_webhook_retries_503_with_exponential_backoff(hooks: HookServer) -> None:
    name = hooks.plan(Answer(503, body="warming up"), Answer(502))
    result = await send_webhook(hooks.url(name))
    assert (result.status, result.attempts, result.provider_id) == ("sent", 3, "prov-3")
    got = hooks.received[name]
    assert [r.headers["x-cep-attempt"] for r in got] == ["1", "2", "3"]
    assert len({r.body for r in got}) == 1, "every attempt sends the same signed body"
    assert len({r.headers["x-cep-signature"] for r in got}) == 1
    gaps = [b.at - a.at for a, b in zip(got, got[1:], strict=False)]
    # 50 ms then 100 ms (jitter off); 10% slack for the event loop's clock resolution
    assert gaps[0] >= 0.05 * 0.9, gaps
    assert gaps[1] >= 0.10 * 0.9, gaps


async def test_webhook_honours_retry_after_on_429(hooks: HookServer) -> None:
    name = hooks.plan(Answer(429, {"Retry-After": "1"}))
    result = await send_webhook(hooks.url(name))
    assert (result.status, result.attempts) == ("sent", 2)
    first, second = hooks.received[name]
    assert second.at - first.at >= 0.95, "waited Retry-After, not the 50 ms backoff"


async def test_webhook_hands_back_a_retry_after_longer_than_it_waits(hooks: HookServer) -> None:
    name = hooks.plan(Answer(503, {"Retry-After": "120"}))
    started = time.monotonic()
    result = await send_webhook(hooks.url(name))
    assert (result.status, result.attempts, result.retry_after) == ("retry", 1, 120.0)
    assert "HTTP 503 Service Unavailable" in result.detail
    assert "Retry-After 120s" in result.detail
    assert time.monotonic() - started < 1
    assert len(hooks.received[name]) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
async def test_webhook_4xx_fails_without_retry(hooks: HookServer, status: int) -> None:
    name = hooks.plan(Answer(status, body="campaign unknown here"))
    result = await send_webhook(hooks.url(name))
    assert (result.status, result.attempts) == ("failed", 1)
    assert result.detail.startswith(f"HTTP {status} ")
    assert result.detail.endswith(": campaign unknown here")
    assert len(hooks.received[name]) == 1


async def test_webhook_does_not_follow_redirects(hooks: HookServer) -> None:
    target = hooks.plan()
    name = hooks.plan(Answer(307, {"Location": hooks.url(target)}))
    result = await send_webhook(hooks.url(name))
    assert (result.status, result.attempts) == ("failed", 1)
    assert "redirects are not followed" in result.detail
    assert hooks.received[target] == []


async def test_webhook_gives_up_on_persistent_5xx(hooks: HookServer) -> None:
    name = hooks.plan(*[Answer(500, body="boom")] * 3)
    result = await send_webhook(hooks.url(name))
    assert (result.status, result.attempts) == ("failed", 3)
    assert result.detail == ("HTTP 500 Internal Server Error: boom (gave up after 3 attempts)")
    assert len(hooks.received[name]) == 3


async def test_webhook_retries_a_timeout(hooks: HookServer) -> None:
    name = hooks.plan(Answer(200, delay=1.0))
    result = await send_webhook(hooks.url(name), timeout=0.2)
    assert (result.status, result.attempts, result.provider_id) == ("sent", 2, "prov-2")


async def test_unreachable_host_fails_after_max_attempts() -> None:
    port = free_port()  # nothing listens on it
    started = time.monotonic()
    result = await send_webhook(f"http://127.0.0.1:{port}/hook", max_attempts=3)
    assert (result.status, result.attempts) == ("failed", 3)
    assert result.detail.startswith(f"could not reach 127.0.0.1:{port} (ConnectError: ")
    assert result.detail.endswith("(gave up after 3 attempts)")
    assert time.monotonic() - started < 2


async def test_private_address_guard_refuses_before_sending(hooks: HookServer) -> None:
    name = hooks.plan()
    result = await send_webhook(hooks.url(name), block_private=True)
    assert (result.status, result.attempts) == ("failed", 0)
    assert result.detail == "refused: 127.0.0.1 resolves to the non-public address 127.0.0.1"
    assert hooks.received[name] == []


async def test_channel_from_config_webhook_with_shared_client(hooks: HookServer) -> None:
    name = hooks.plan(Answer(503))
    settings = ChannelSettings(webhook_secret=SECRET, backoff=FAST)
    async with httpx.AsyncClient() as client:
        channel = channel_from_config(
            {"type": "WEBHOOK", "url": hooks.url(name), "to": None,
             "headers": {"Authorization": "Bearer provider-token"}}, settings, http_client=client)
        result = await channel.send(MESSAGE)
        await channel.aclose()
        assert not client.is_closed, "a shared client belongs to the caller"
    assert (result.status, result.attempts) == ("sent", 2)
    got = hooks.received[name][-1]
    assert got.headers["authorization"] == "Bearer provider-token"
    assert verify_signature(SECRET, got.body, got.headers["x-cep-signature"])


# --- the SMTP receiver ----------------------------------------------------------------------

class Mailbox:
    """An aiosmtpd handler keeping every accepted message; ``refuse_rcpt`` / ``refuse_data``
    are replies given (once each, in order) instead of accepting."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, email.message.EmailMessage, str | None]] = []
        self.refuse_rcpt: deque[str] = deque()
        self.refuse_data: deque[str] = deque()
        self.rcpt_calls = 0

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        self.rcpt_calls += 1
        if self.refuse_rcpt:
            return self.refuse_rcpt.popleft()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_data:
            return self.refuse_data.popleft()
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        login = session.auth_data.login.decode() if isinstance(
            session.auth_data, LoginPassword) else None
        self.messages.append((envelope, parsed, login))
        return "250 2.0.0 queued as Q1"


def check_password(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (b"cep", b"right-password")
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, SmtpSettings]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port,
                            authenticator=check_password, auth_require_tls=False)
    controller.start()
    try:
        yield mailbox, SmtpSettings(host="127.0.0.1", port=port, sender="cep@example.com",
                                    security="none", timeout=5.0)
    finally:
        controller.stop()


# --- email ----------------------------------------------------------------------------------

async def test_email_is_delivered_with_subject_body_and_message_id(
        smtp: tuple[Mailbox, SmtpSettings]) -> None:
    mailbox, settings = smtp
    result = await EmailChannel(settings, backoff=FAST).send(MESSAGE)
    expected_id = message_id_for(MESSAGE.idempotency_key, "example.com")
    assert (result.status, result.attempts, result.provider_id) == ("sent", 1, expected_id)
    assert "queued as Q1" in result.detail
    ((envelope, mail, login),) = mailbox.messages
    assert envelope.mail_from == "cep@example.com"
    assert envelope.rcpt_tos == ["asha@example.com"]
    assert mail["To"] == "asha@example.com"
    assert mail["From"] == "cep@example.com"
    assert mail["Subject"] == "Your cart is waiting"
    assert mail["Message-ID"] == expected_id
    assert mail["X-CEP-Campaign-Id"] == "cmp-1"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content().replace("\r\n", "\n").rstrip("\n") == MESSAGE.body
    assert login is None


async def test_a_duplicate_email_carries_the_same_message_id(
        smtp: tuple[Mailbox, SmtpSettings]) -> None:
    mailbox, settings = smtp
    channel = EmailChannel(settings, backoff=FAST)
    await channel.send(MESSAGE)
    await channel.send(MESSAGE)
    other = Message("cmp-1", "user-42", "cmp-1:user-42:1760003600000", "s", "b",
                    "asha@example.com")
    await channel.send(other)
    ids = [mail["Message-ID"] for _, mail, _ in mailbox.messages]
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize(("stage", "reply", "status", "attempts"), [
    ("rcpt", "451 4.7.1 Greylisted, try again later", "sent", 2),
    ("data", "452 4.3.1 Insufficient system storage", "sent", 2),
    ("rcpt", "550 5.1.1 No such user", "failed", 1),
    ("data", "554 5.7.1 Message rejected as spam", "failed", 1),
])
async def test_smtp_4xx_is_retried_and_5xx_is_final(
        smtp: tuple[Mailbox, SmtpSettings], stage: str, reply: str, status: str,
        attempts: int) -> None:
    mailbox, settings = smtp
    (mailbox.refuse_rcpt if stage == "rcpt" else mailbox.refuse_data).append(reply)
    result = await EmailChannel(settings, max_attempts=3, backoff=FAST).send(MESSAGE)
    assert (result.status, result.attempts) == (status, attempts), result.detail
    assert len(mailbox.messages) == (1 if status == "sent" else 0)
    if status == "failed":
        assert reply.split()[0] in result.detail
        assert "gave up" not in result.detail


async def test_smtp_credentials_are_used_and_a_wrong_password_is_final(
        smtp: tuple[Mailbox, SmtpSettings]) -> None:
    mailbox, settings = smtp
    good = SmtpSettings(**{**_fields(settings), "username": "cep",
                           "password": "right-password"})
    assert (await EmailChannel(good, backoff=FAST).send(MESSAGE)).status == "sent"
    assert mailbox.messages[-1][2] == "cep"
    assert "right-password" not in repr(good)
    bad = SmtpSettings(**{**_fields(settings), "username": "cep", "password": "wrong"})
    result = await EmailChannel(bad, max_attempts=3, backoff=FAST).send(MESSAGE)
    assert (result.status, result.attempts) == ("failed", 1)
    assert result.detail.startswith("SMTP 535")


async def test_starttls_required_but_not_offered_is_final(
        smtp: tuple[Mailbox, SmtpSettings]) -> None:
    _, settings = smtp
    strict = SmtpSettings(**{**_fields(settings), "security": "starttls"})
    result = await EmailChannel(strict, max_attempts=3, backoff=FAST).send(MESSAGE)
    assert (result.status, result.attempts) == ("failed", 1)
    assert "STARTTLS" in result.detail


async def test_fixed_recipient_and_missing_recipient(smtp: tuple[Mailbox, SmtpSettings]) -> None:
    mailbox, settings = smtp
    channel = channel_from_config({"type": "EMAIL", "to": "team@example.com"},
                                  ChannelSettings(smtp=settings, backoff=FAST))
    assert (await channel.send(MESSAGE)).status == "sent"
    assert mailbox.messages[-1][0].rcpt_tos == ["team@example.com"]
    anonymous = Message("cmp-1", "user-7", "cmp-1:user-7:1", "s", "b", to=None)
    result = await EmailChannel(settings).send(anonymous)
    assert (result.status, result.attempts) == ("failed", 0)
    assert result.detail.startswith("no recipient")
    injected = Message("cmp-1", "user-7", "k", "s", "b", to="a@example.com\r\nBcc: x@evil.com")
    assert (await EmailChannel(settings).send(injected)).status == "failed"
    assert mailbox.rcpt_calls == 1


async def test_unreachable_smtp_server_fails_after_max_attempts() -> None:
    port = free_port()
    settings = SmtpSettings(host="127.0.0.1", port=port, sender="cep@example.com",
                            security="none", timeout=2.0)
    result = await EmailChannel(settings, max_attempts=2, backoff=FAST).send(MESSAGE)
    assert (result.status, result.attempts) == ("failed", 2)
    assert result.detail.startswith(f"SMTP 127.0.0.1:{port}: SMTPConnectError")
    assert result.detail.endswith("(gave up after 2 attempts)")


def _fields(settings: SmtpSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in SmtpSettings.__dataclass_fields__}


# --- log ------------------------------------------------------------------------------------

async def test_log_channel_appends_masked_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "deliveries.jsonl"
    channel = LogChannel(path, clock=lambda: 1_760_000_000.0)
    phone = Message("cmp-2", "user-9", "cmp-2:user-9:1", "", "Thanks for ordering!",
                    "+919876543210", {"city": "New York"})
    results = await asyncio.gather(channel.send(MESSAGE), channel.send(phone))
    assert [r.status for r in results] == ["sent", "sent"]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert {line["to"] for line in lines} == {"***ha@example.com", "***210"}
    assert lines[0]["logged_at"] == "2025-10-09T08:53:20.000Z"
    assert {line["idempotency_key"] for line in lines} == {"cmp-1:user-42:1760000000000",
                                                           "cmp-2:user-9:1"}
    text = path.read_text()
    assert "asha@example.com" not in text
    assert "9876543210" not in text


async def test_log_channel_to_a_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cep.channels.log")
    result = await channel_from_config({"type": "LOG"}).send(MESSAGE)
    assert (result.status, result.attempts) == ("sent", 1)
    (record,) = caplog.records
    logged = json.loads(record.getMessage())
    assert logged["to"] == "***ha@example.com"
    assert logged["message"] == MESSAGE.body


async def test_log_channel_reports_an_unwritable_path(tmp_path: Path) -> None:
    result = await LogChannel(tmp_path / "missing" / "x.jsonl").send(MESSAGE)
    assert (result.status, result.attempts) == ("failed", 1)
    assert "could not write" in result.detail
