"""Channels, the pure parts: templates, channel config validation, the retry policy,
signatures, masking, Retry-After and address checks. No sockets (see
tests/integration/test_channels.py for the real receivers)."""

from __future__ import annotations

import email.utils
from typing import Any

import pytest

from clients.channels import (
    Backoff,
    ChannelConfigError,
    ChannelSettings,
    EmailChannel,
    EmailSpec,
    LogChannel,
    LogSpec,
    Message,
    SmtpSettings,
    TemplateError,
    WebhookChannel,
    WebhookSpec,
    channel_from_config,
    check_template,
    mask_contact,
    message_id_for,
    render,
    sign,
    validate_channel_config,
    verify_signature,
)
from clients.channels.retry import Attempt, deliver_with_retries
from clients.channels.smtp import address_problem
from clients.channels.urls import url_problem
from clients.channels.webhook import encode_payload, parse_retry_after

PROFILE = {"first_name": "Asha", "city": "Pune", "vip": False, "orders": 3, "score": 4.5,
           "tags": ["tea", "coffee"], "address": {"city": "Pune", "pin": "411001"},
           "empty": "", "none": None}
SECRET = "s3cret-signing-key-0123"
SMTP = SmtpSettings(host="127.0.0.1", sender="cep@example.com", port=2525, security="none")


# --- templates ------------------------------------------------------------------------------

@pytest.mark.parametrize(("template", "expected"), [
    ("Hi {{first_name}}!", "Hi Asha!"),
    ("Hi {{ first_name }} from {{city}}", "Hi Asha from Pune"),
    ("{{ city | default: \"there\" }}", "Pune"),
    ("Hi {{ nickname | default: \"there\" }}", "Hi there"),
    ("Hi {{ nickname | default: 'friend' }}", "Hi friend"),
    ("Hi {{nickname}}.", "Hi ."),
    ("{{ empty | default: \"x\" }}{{ none | default: \"y\" }}{{ vip | default: \"no\" }}", "xyno"),
    ("{{ orders | default: 0 }} orders, {{ missing | default: 0 }} left", "3 orders, 0 left"),
    ("{{score}} {{vip}} {{tags}}", "4.5 false tea, coffee"),
    ("PIN {{ address.pin }}, {{ address.street | default: \"-\" }}", "PIN 411001, -"),
    ("{{ first_name.length }}", ""),
    ("50% off <b>{{first_name}}</b> & co", "50% off <b>Asha</b> & co"),
    ("multi\nline {{ first_name\n }}", "multi\nline Asha"),
    ("no fields at all }}", "no fields at all }}"),
    ("", ""),
])
def test_render_fills_traits(template: str, expected: str) -> None:
    assert render(template, PROFILE) == expected


def test_render_does_not_escape_or_evaluate_trait_values() -> None:
    profile = {"first_name": "<script>{{city}}</script> & {% raw %}", "city": "Pune"}
    assert render("Hi {{first_name}}", profile) == "Hi <script>{{city}}</script> & {% raw %}"


@pytest.mark.parametrize(("template", "where"), [
    ("Hi {{ first_name | upcase }}", "line 1, column 4"),
    ("{{ 1 + 1 }}", "line 1, column 1"),
    ("{{ __import__('os').system('id') }}", "line 1, column 1"),
    ("{{ }}", "line 1, column 1"),
    ("a\nb {{ first_name | default: there }}", "line 2, column 3"),
    ("{% if vip %}VIP{% endif %}", "line 1, column 1"),
    ("Hi {{ first_name", "line 1, column 4"),
    ("{{ a }} {{ b {{ c }}", "line 1, column 9"),
])
def test_templates_outside_the_syntax_are_rejected_with_a_position(template: str,
                                                                   where: str) -> None:
    with pytest.raises(TemplateError, match=where):
        check_template(template)
    with pytest.raises(TemplateError):
        render(template, PROFILE)


# --- channel config -------------------------------------------------------------------------

def settings(**overrides: Any) -> ChannelSettings:
    return ChannelSettings(**{"smtp": SMTP, **overrides})


@pytest.mark.parametrize(("config", "message"), [
    ([], "channel: must be an object"),
    ({}, "channel.type: must be one of WEBHOOK, EMAIL, LOG"),
    ({"type": "SMS"}, "channel.type: must be one of"),
    ({"type": "WEBHOOK"}, "channel.url: is required"),
    ({"type": "WEBHOOK", "url": "ftp://example.com/x", "secret": SECRET},
     "channel.url: must be http(s)"),
    ({"type": "WEBHOOK", "url": "example.com/hook", "secret": SECRET},
     "channel.url: must be http(s)"),
    ({"type": "WEBHOOK", "url": "https://user:pw@example.com/", "secret": SECRET},
     "channel.url: must not embed credentials"),
    ({"type": "WEBHOOK", "url": "https://example.com/" + "x" * 2100, "secret": SECRET},
     "channel.url: must be at most 2048"),
    ({"type": "WEBHOOK", "url": "https://example.com/"}, "channel.secret: is required"),
    ({"type": "WEBHOOK", "url": "https://example.com/", "secret": "short"},
     "channel.secret: must be a string of at least 16"),
    ({"type": "WEBHOOK", "url": "https://example.com/", "secret": SECRET, "timeout": 0},
     "channel.timeout: must be a number from"),
    ({"type": "WEBHOOK", "url": "https://example.com/", "secret": SECRET, "max_attempts": 2.5},
     "channel.max_attempts: must be an integer from 1 to 10"),
    ({"type": "WEBHOOK", "url": "https://example.com/", "secret": SECRET, "max_attempts": True},
     "channel.max_attempts: must be an integer"),
    ({"type": "WEBHOOK", "url": "https://example.com/", "secret": SECRET,
      "headers": {"X-CEP-Signature": "forged"}}, "channel.headers.X-CEP-Signature: is set by"),
    ({"type": "WEBHOOK", "url": "https://example.com/", "secret": SECRET,
      "headers": {"Authorization": "Bearer a\r\nX-Evil: 1"}},
     "channel.headers.Authorization: must be a string on one line"),
    ({"type": "WEBHOOK", "url": "https://example.com/", "secret": SECRET,
      "headers": {"Bad Name": "x"}}, "channel.headers.Bad Name: is not a valid header name"),
    ({"type": "WEBHOOK", "url": "https://example.com/", "secret": SECRET, "to": "a@b.co"},
     "channel.to: is not a field of a WEBHOOK channel"),
    ({"type": "EMAIL", "to": "not an address"}, "channel.to: must be one plain email address"),
    ({"type": "EMAIL", "to": "a@example.com, b@example.com"}, "channel.to: must be one plain"),
    ({"type": "EMAIL", "to": "a@example.com\r\nBcc: x@evil.com"}, "channel.to: must be one"),
    ({"type": "EMAIL", "to": 42}, "channel.to: must be a string"),
    ({"type": "EMAIL", "url": "https://example.com/"}, "channel.url: is not a field of a EMAIL"),
    ({"type": "LOG", "path": "/etc/passwd"}, "channel.path: is not a field of a LOG channel"),
])
def test_invalid_channel_config_names_the_field(config: Any, message: str) -> None:
    with pytest.raises(ChannelConfigError, match="^" + message.replace("(", r"\(")
                       .replace(")", r"\)").replace("+", r"\+")) as caught:
        validate_channel_config(config, settings())
    assert str(caught.value).startswith(caught.value.field + ": ")


def test_email_needs_smtp_settings() -> None:
    with pytest.raises(ChannelConfigError, match="channel.type: EMAIL needs an SMTP server"):
        validate_channel_config({"type": "EMAIL"}, ChannelSettings())


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/hook", "http://localhost/hook", "http://api.localhost/",
    "http://10.1.2.3/", "http://192.168.0.10/", "http://172.16.0.1/", "http://169.254.169.254/",
    "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://127.1/", "http://2130706433/",
    "http://0x7f000001/", "http://0.0.0.0/",
])
def test_private_urls_rejected_only_when_the_guard_is_on(url: str) -> None:
    config = {"type": "WEBHOOK", "url": url, "secret": SECRET}
    assert isinstance(validate_channel_config(config, settings()), WebhookSpec)
    with pytest.raises(ChannelConfigError, match="channel.url: must not point to a private"):
        validate_channel_config(config, settings(allow_private_urls=False))


def test_public_urls_pass_the_guard() -> None:
    for url in ("https://hooks.example.com/cep", "http://93.184.216.34/x"):
        assert url_problem(url, allow_private=False) is None


def test_valid_configs_normalize_with_defaults() -> None:
    spec = validate_channel_config({"type": "webhook", "url": "https://example.com/h",
                                    "to": None, "headers": {"Authorization": "Bearer t"}},
                                   settings(webhook_secret=SECRET, webhook_max_attempts=5))
    assert spec == WebhookSpec(url="https://example.com/h", secret=SECRET, timeout=10.0,
                               max_attempts=5, headers=(("Authorization", "Bearer t"),))
    assert SECRET not in repr(spec)
    assert "Bearer" not in repr(spec)
    assert validate_channel_config({"type": "EMAIL"}, settings()) == EmailSpec(None, 3)
    assert validate_channel_config({"type": "EMAIL", "to": "team@example.com",
                                    "max_attempts": 1}, settings()) == EmailSpec(
        "team@example.com", 1)
    assert validate_channel_config({"type": "LOG"}, settings()) == LogSpec()


async def test_factory_builds_each_channel_type() -> None:
    webhook = channel_from_config({"type": "WEBHOOK", "url": "http://127.0.0.1:9/h",
                                   "secret": SECRET}, settings())
    assert isinstance(webhook, WebhookChannel)
    assert "127.0.0.1" in repr(webhook)
    assert SECRET not in repr(webhook)
    await webhook.aclose()
    assert isinstance(channel_from_config({"type": "EMAIL"}, settings()), EmailChannel)
    assert isinstance(channel_from_config({"type": "LOG"}, settings()), LogChannel)


def test_settings_from_env() -> None:
    env = {"CEP_SMTP_HOST": "mail.example.com", "CEP_SMTP_SENDER": "cep@example.com",
           "CEP_SMTP_PASSWORD": "pw-not-shown", "CEP_SMTP_SECURITY": "tls",
           "CEP_WEBHOOK_SECRET": SECRET, "CEP_WEBHOOK_ALLOW_PRIVATE": "false"}
    loaded = ChannelSettings.from_env(env)
    assert loaded.smtp is not None
    assert loaded.smtp.effective_port == 465
    assert loaded.webhook_secret == SECRET
    assert not loaded.allow_private_urls
    assert "pw-not-shown" not in repr(loaded)
    assert SECRET not in repr(loaded)
    assert ChannelSettings.from_env({}).smtp is None
    assert ChannelSettings.from_env({}).allow_private_urls
    with pytest.raises(ValueError, match="CEP_SMTP_SENDER"):
        SmtpSettings.from_env({"CEP_SMTP_HOST": "mail.example.com"})
    with pytest.raises(ValueError, match="CEP_SMTP_SECURITY"):
        SmtpSettings.from_env({"CEP_SMTP_HOST": "h", "CEP_SMTP_SENDER": "a@example.com",
                               "CEP_SMTP_SECURITY": "ssl"})


# --- retries --------------------------------------------------------------------------------

class Script:
    """An attempt function answering from a list, and a sleep that records its waits."""

    def __init__(self, *answers: Attempt) -> None:
        self.answers = list(answers)
        self.waits: list[float] = []

    async def attempt(self, number: int) -> Attempt:
        return self.answers[number - 1]

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


BACKOFF = Backoff(initial=1.0, multiplier=2.0, max_delay=5.0, jitter=0.5)
BUSY = Attempt("transient", "HTTP 503")


async def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    script = Script(BUSY, BUSY, BUSY, BUSY, Attempt("sent", "HTTP 200", provider_id="m1"))
    result = await deliver_with_retries(script.attempt, 5, BACKOFF, script.sleep,
                                        rand=lambda: 0.0)
    assert (result.status, result.attempts, result.provider_id) == ("sent", 5, "m1")
    assert script.waits == [1.0, 2.0, 4.0, 5.0]
    script = Script(BUSY, BUSY, Attempt("sent", "ok"))
    await deliver_with_retries(script.attempt, 3, BACKOFF, script.sleep, rand=lambda: 0.999)
    assert script.waits == pytest.approx([0.5005, 1.001])


async def test_permanent_failure_is_not_retried() -> None:
    script = Script(Attempt("failed", "HTTP 400 Bad Request"))
    result = await deliver_with_retries(script.attempt, 5, BACKOFF, script.sleep)
    assert (result.status, result.detail, result.attempts) == ("failed", "HTTP 400 Bad Request", 1)
    assert script.waits == []


async def test_transient_failures_give_up_after_max_attempts() -> None:
    script = Script(BUSY, BUSY, BUSY)
    result = await deliver_with_retries(script.attempt, 3, BACKOFF, script.sleep)
    assert (result.status, result.attempts) == ("failed", 3)
    assert result.detail == "HTTP 503 (gave up after 3 attempts)"
    assert len(script.waits) == 2


async def test_retry_after_is_honoured_up_to_max_delay_then_handed_back() -> None:
    script = Script(Attempt("transient", "HTTP 429", retry_after=3.0), Attempt("sent", "ok"))
    await deliver_with_retries(script.attempt, 3, BACKOFF, script.sleep, rand=lambda: 0.0)
    assert script.waits == [3.0], "Retry-After longer than the backoff wins"
    script = Script(Attempt("transient", "HTTP 429", retry_after=3600.0))
    result = await deliver_with_retries(script.attempt, 3, BACKOFF, script.sleep)
    assert (result.status, result.attempts, result.retry_after) == ("retry", 1, 3600.0)
    assert "exceeds the 5s" in result.detail
    assert script.waits == []


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("2", now) == 2.0
    assert parse_retry_after("0.25", now) == 0.25
    assert parse_retry_after("-5", now) == 0.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now) == 30.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


# --- signatures, payload, addresses ---------------------------------------------------------

def test_signature_round_trip_and_tampering() -> None:
    body = b'{"campaign_id":"c1"}'
    header = sign(SECRET, body)
    assert header.startswith("sha256=")
    assert len(header) == 7 + 64
    assert verify_signature(SECRET, body, header)
    assert verify_signature(SECRET.encode(), body, header)
    assert not verify_signature(SECRET, body + b" ", header)
    assert not verify_signature("another-secret-0000", body, header)
    assert not verify_signature(SECRET, body, header.removeprefix("sha256="))
    assert not verify_signature(SECRET, body, None)
    assert not verify_signature(SECRET, body, "sha256=zz")


def test_webhook_payload_fields() -> None:
    import orjson

    message = Message("c1", "u1", "c1:u1:1", "Hi", "Hello Asha", "+15550001234",
                      {"event": "Add to Cart"})
    payload = orjson.loads(encode_payload(message, 1_700_000_000.5))
    assert payload == {"campaign_id": "c1", "user_id": "u1", "idempotency_key": "c1:u1:1",
                       "subject": "Hi", "message": "Hello Asha", "to": "+15550001234",
                       "data": {"event": "Add to Cart"},
                       "sent_at": "2023-11-14T22:13:20.500Z"}
    with pytest.raises(TypeError):
        encode_payload(Message("c", "u", "k", "", "", data={"x": object()}), 0)


def test_message_needs_an_idempotency_key() -> None:
    with pytest.raises(ValueError, match="idempotency_key"):
        Message("c1", "u1", "", "s", "b")


@pytest.mark.parametrize(("value", "masked"), [
    ("asha.k@example.com", "***.k@example.com"),
    ("ab@example.com", "***@example.com"),
    ("+919876543210", "***210"),
    ("abc", "***"),
    (None, None),
])
def test_mask_contact(value: str | None, masked: str | None) -> None:
    assert mask_contact(value) == masked


def test_message_id_is_a_function_of_the_idempotency_key() -> None:
    first = message_id_for("c1:u1:1700000000000", "example.com")
    assert first == message_id_for("c1:u1:1700000000000", "example.com")
    assert first != message_id_for("c1:u1:1700000003600", "example.com")
    assert first.startswith("<cep.")
    assert first.endswith("@example.com>")


@pytest.mark.parametrize(("address", "ok"), [
    ("a@example.com", True), ("first.last+tag@mail.example.co.uk", True),
    ("Asha <a@example.com>", False), ("a@localhost", False), ("@example.com", False),
    ("a@example.com\n", False), ("a@b.co;c@d.co", False),
])
def test_address_problem(address: str, ok: bool) -> None:
    assert (address_problem(address) is None) == ok
