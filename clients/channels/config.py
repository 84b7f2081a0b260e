"""Building a channel from a campaign's ``channel`` input.

``validate_channel_config`` is pure and raises :class:`ChannelConfigError` naming the field
(``channel.url: must be http(s)``), for a mutation to turn into ``BAD_USER_INPUT`` when the
campaign is created; ``channel_from_config`` validates and builds. Deployment-wide parts
(SMTP server, default webhook secret, backoff, where the log channel writes) come from
:class:`ChannelSettings`, never from campaign input: an admin key must not be able to
point the log channel at a file or the email channel at another server.

Accepted (``None`` values count as absent; any other key is an error)::

    {"type": "WEBHOOK", "url": "https://...", "secret": "...", "timeout": 10,
     "max_attempts": 4, "headers": {"Authorization": "Bearer ..."}}
    {"type": "EMAIL", "to": "team@example.com", "max_attempts": 3}   # "to" optional
    {"type": "LOG"}

WhatsApp and push are WEBHOOK channels pointed at the provider (see
:mod:`clients.channels.webhook`). ``type`` is case-insensitive."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from clients.channels.log import LogChannel
from clients.channels.message import Channel
from clients.channels.retry import DEFAULT_BACKOFF, Backoff
from clients.channels.smtp import EmailChannel, SmtpSettings, address_problem
from clients.channels.urls import url_problem
from clients.channels.webhook import RESERVED_HEADERS, WebhookChannel

CHANNEL_TYPES = ("WEBHOOK", "EMAIL", "LOG")
MIN_SECRET_LENGTH = 16
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELDS: dict[str, frozenset[str]] = {
    "WEBHOOK": frozenset({"type", "url", "secret", "timeout", "max_attempts", "headers"}),
    "EMAIL": frozenset({"type", "to", "max_attempts"}),
    "LOG": frozenset({"type"}),
}


class ChannelConfigError(ValueError):
    """A channel input that cannot be used; ``field`` is its path (``channel.url``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """Deployment-wide channel settings. ``webhook_secret`` signs webhooks whose campaign
    gives none; ``allow_private_urls=False`` turns on the SSRF guard (see
    :mod:`clients.channels.urls`); ``log_target`` is where LOG channels write (a logger or
    a file path; None: the ``cep.channels.log`` logger)."""

    smtp: SmtpSettings | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    allow_private_urls: bool = True
    backoff: Backoff = DEFAULT_BACKOFF
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 4
    email_max_attempts: int = 3
    log_target: logging.Logger | Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ChannelSettings:
        """From ``CEP_SMTP_*`` (see :meth:`SmtpSettings.from_env`), ``CEP_WEBHOOK_SECRET``,
        ``CEP_WEBHOOK_ALLOW_PRIVATE`` (``0``/``false`` turns the guard on) and
        ``CEP_CHANNEL_LOG`` (a file for LOG channels)."""
        allow = (environ.get("CEP_WEBHOOK_ALLOW_PRIVATE") or "1").lower()
        log_file = environ.get("CEP_CHANNEL_LOG")
        return cls(smtp=SmtpSettings.from_env(environ),
                   webhook_secret=environ.get("CEP_WEBHOOK_SECRET") or None,
                   allow_private_urls=allow not in ("0", "false", "no", "off"),
                   log_target=Path(log_file) if log_file else None)


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    url: str
    secret: str = field(repr=False)
    timeout: float
    max_attempts: int
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class EmailSpec:
    to: str | None
    max_attempts: int


@dataclass(frozen=True, slots=True)
class LogSpec:
    pass


ChannelSpec = WebhookSpec | EmailSpec | LogSpec


def _number(config: Mapping[str, Any], key: str, default: float, low: float,
            high: float, *, integer: bool = False) -> Any:
    value = config.get(key)
    if value is None:
        return default
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        what = "an integer" if integer else "a number"
        raise ChannelConfigError(f"channel.{key}", f"must be {what} from {low:g} to {high:g}")
    return value


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise ChannelConfigError("channel.headers", "must be an object of strings")
    out = []
    for name, text in value.items():
        where = f"channel.headers.{name}"
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ChannelConfigError(where, "is not a valid header name")
        if name.lower() in RESERVED_HEADERS:
            raise ChannelConfigError(where, "is set by the channel")
        if not isinstance(text, str) or "\r" in text or "\n" in text:
            raise ChannelConfigError(where, "must be a string on one line")
        out.append((name, text))
    return tuple(out)


def _webhook(config: Mapping[str, Any], settings: ChannelSettings) -> WebhookSpec:
    url = config.get("url")
    if not isinstance(url, str) or not url:
        raise ChannelConfigError("channel.url", "is required for a WEBHOOK channel")
    problem = url_problem(url, allow_private=settings.allow_private_urls)
    if problem:
        raise ChannelConfigError("channel.url", problem)
    secret = config.get("secret")
    if secret is None:
        secret = settings.webhook_secret
        if not secret:
            raise ChannelConfigError("channel.secret", "is required (no default webhook "
                                     "secret is configured: CEP_WEBHOOK_SECRET)")
    elif not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
        raise ChannelConfigError("channel.secret", f"must be a string of at least "
                                 f"{MIN_SECRET_LENGTH} characters")
    return WebhookSpec(
        url=url, secret=secret,
        timeout=float(_number(config, "timeout", settings.webhook_timeout, 0.001, 60)),
        max_attempts=_number(config, "max_attempts", settings.webhook_max_attempts, 1, 10,
                             integer=True),
        headers=_headers(config.get("headers")))


def _email(config: Mapping[str, Any], settings: ChannelSettings) -> EmailSpec:
    if settings.smtp is None:
        raise ChannelConfigError("channel.type", "EMAIL needs an SMTP server "
                                 "(CEP_SMTP_HOST and CEP_SMTP_SENDER)")
    to = config.get("to")
    if to is not None:
        problem = address_problem(to) if isinstance(to, str) else "must be a string"
        if problem:
            raise ChannelConfigError("channel.to", problem)
    return EmailSpec(to=to, max_attempts=_number(
        config, "max_attempts", settings.email_max_attempts, 1, 10, integer=True))


def validate_channel_config(config: Mapping[str, Any],
                            settings: ChannelSettings = ChannelSettings()) -> ChannelSpec:
    """The checked, normalized channel; raises :class:`ChannelConfigError`. No I/O."""
    if not isinstance(config, Mapping):
        raise ChannelConfigError("channel", "must be an object")
    kind = config.get("type")
    if not isinstance(kind, str) or kind.upper() not in _FIELDS:
        raise ChannelConfigError("channel.type", f"must be one of {', '.join(CHANNEL_TYPES)} "
                                 "(WhatsApp and push: WEBHOOK to the provider)")
    kind = kind.upper()
    for key, value in config.items():
        if value is not None and key not in _FIELDS[kind]:
            raise ChannelConfigError(f"channel.{key}", f"is not a field of a {kind} channel")
    if kind == "WEBHOOK":
        return _webhook(config, settings)
    if kind == "EMAIL":
        return _email(config, settings)
    return LogSpec()


def channel_from_config(config: Mapping[str, Any],
                        settings: ChannelSettings = ChannelSettings(), *,
                        http_client: httpx.AsyncClient | None = None) -> Channel:
    """A ready channel for ``config`` (see the module doc); ``http_client`` is shared by
    webhook channels when given (the caller closes it). Raises
    :class:`ChannelConfigError`. Connects to nothing until the first send."""
    spec = validate_channel_config(config, settings)
    if isinstance(spec, WebhookSpec):
        return WebhookChannel(spec.url, spec.secret, timeout=spec.timeout,
                              max_attempts=spec.max_attempts, backoff=settings.backoff,
                              headers=dict(spec.headers), client=http_client,
                              block_private=not settings.allow_private_urls)
    if isinstance(spec, EmailSpec):
        assert settings.smtp is not None  # validated
        return EmailChannel(settings.smtp, to=spec.to, max_attempts=spec.max_attempts,
                            backoff=settings.backoff)
    return LogChannel(settings.log_target)
