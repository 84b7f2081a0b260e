"""Email channel: plain-text mail over SMTP (aiosmtplib), one connection per message.

The ``Message-ID`` is derived from the delivery's idempotency key
(:func:`message_id_for`), so a message sent twice after a retry or a replay carries the
same id and mail systems and recipients can tell it is a duplicate. Retries: connection
errors, timeouts and 4xx replies (greylisting, mailbox busy); a 5xx reply (unknown user,
rejected content, bad credentials) is final. Bulk volumes belong on a local relay (an
MTA that queues) or on a provider's HTTP API through the webhook channel."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Literal

import aiosmtplib

from clients.channels.message import DeliveryResult, Message
from clients.channels.retry import DEFAULT_BACKOFF, Attempt, Backoff, deliver_with_retries

SmtpSecurity = Literal["none", "starttls", "tls"]
_DEFAULT_PORTS: dict[str, int] = {"none": 25, "starttls": 587, "tls": 465}
_SECURITIES: dict[str, SmtpSecurity] = {"none": "none", "starttls": "starttls", "tls": "tls"}


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and as whom to send mail. ``security``: ``tls`` connects over TLS (port 465),
    ``starttls`` upgrades a plain connection and fails when the server cannot, ``none``
    sends in the clear (a relay on localhost). ``timeout`` (seconds) bounds each SMTP
    command. The password stays out of ``repr``."""

    host: str
    sender: str
    port: int | None = None  # None: the usual port for `security`
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security: SmtpSecurity = "starttls"
    timeout: float = 30.0

    @property
    def effective_port(self) -> int:
        return self.port or _DEFAULT_PORTS[self.security]

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SmtpSettings | None:
        """From ``CEP_SMTP_HOST``, ``CEP_SMTP_SENDER``, ``CEP_SMTP_PORT``,
        ``CEP_SMTP_USERNAME``, ``CEP_SMTP_PASSWORD``, ``CEP_SMTP_SECURITY`` (none |
        starttls | tls) and ``CEP_SMTP_TIMEOUT``; None when no host is set. Raises
        ValueError naming the variable that is wrong."""
        host = environ.get("CEP_SMTP_HOST")
        if not host:
            return None
        sender = environ.get("CEP_SMTP_SENDER")
        if not sender or address_problem(sender):
            raise ValueError("CEP_SMTP_SENDER: must be an email address when CEP_SMTP_HOST "
                             "is set")
        security = _SECURITIES.get(environ.get("CEP_SMTP_SECURITY") or "starttls")
        if security is None:
            raise ValueError("CEP_SMTP_SECURITY: must be one of none, starttls, tls")
        try:
            port = int(environ["CEP_SMTP_PORT"]) if environ.get("CEP_SMTP_PORT") else None
            timeout = float(environ.get("CEP_SMTP_TIMEOUT") or 30.0)
        except ValueError:
            raise ValueError("CEP_SMTP_PORT / CEP_SMTP_TIMEOUT: must be numbers") from None
        return cls(host=host, sender=sender, port=port,
                   username=environ.get("CEP_SMTP_USERNAME") or None,
                   password=environ.get("CEP_SMTP_PASSWORD") or None,
                   security=security,
                   timeout=timeout)


def address_problem(address: str) -> str | None:
    """Why ``address`` is not one plain email address, or None."""
    if len(address) > 254 or any(c in address for c in "\r\n,;<>"):
        return "must be one plain email address"
    name, parsed = parseaddr(address)
    local, _, domain = parsed.partition("@")
    if name or parsed != address.strip() or not local or "." not in domain:
        return "must be one plain email address"
    return None


def message_id_for(idempotency_key: str, domain: str) -> str:
    """The ``Message-ID`` of the delivery with this key: the same key, the same id."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    return f"<cep.{digest}@{domain}>"


def _one_line(text: str) -> str:
    return " ".join(text.split())  # a trait with a newline must not break the header


class EmailChannel:
    """Sends each message as a plain-text email from ``smtp.sender`` to ``to`` when given
    (a fixed recipient, e.g. a team inbox) or else the message's own ``to``.
    ``max_attempts`` counts the first attempt. Nothing is kept open between sends."""

    def __init__(self, smtp: SmtpSettings, *, to: str | None = None, max_attempts: int = 3,
                 backoff: Backoff = DEFAULT_BACKOFF) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts: must be >= 1")
        self._smtp = smtp
        self._to = to
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._domain = smtp.sender.rpartition("@")[2] or "cep.invalid"

    def __repr__(self) -> str:
        return f"EmailChannel(host={self._smtp.host!r}, port={self._smtp.effective_port})"

    def compose(self, message: Message, recipient: str) -> EmailMessage:
        """The email for ``message`` (exposed for previews and tests)."""
        mail = EmailMessage()
        mail["From"] = self._smtp.sender
        mail["To"] = recipient
        mail["Subject"] = _one_line(message.subject)
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = message_id_for(message.idempotency_key, self._domain)
        mail["X-CEP-Campaign-Id"] = _one_line(message.campaign_id)
        mail.set_content(message.body)
        return mail

    async def send(self, message: Message) -> DeliveryResult:
        recipient = self._to or message.to
        if not recipient:
            return DeliveryResult("failed", "no recipient: the message has no 'to' address "
                                  "and the channel no fixed one", 0)
        problem = address_problem(recipient)
        if problem:
            return DeliveryResult("failed", f"recipient {problem}", 0)
        mail = self.compose(message, recipient)
        message_id = str(mail["Message-ID"])

        async def attempt(_: int) -> Attempt:
            return await self._deliver(mail, recipient, message_id)

        return await deliver_with_retries(attempt, self._max_attempts, self._backoff)

    async def _deliver(self, mail: EmailMessage, recipient: str, message_id: str) -> Attempt:
        smtp = self._smtp
        try:
            _, answer = await aiosmtplib.send(
                mail, sender=smtp.sender, recipients=[recipient], hostname=smtp.host,
                port=smtp.effective_port, username=smtp.username, password=smtp.password,
                use_tls=smtp.security == "tls", start_tls=smtp.security == "starttls",
                timeout=smtp.timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"recipient refused: {r.code} {r.message}"
                               for r in exc.recipients)
            return Attempt("transient" if any(400 <= c < 500 for c in codes) else "failed",
                           detail)
        except aiosmtplib.SMTPResponseException as exc:
            transient = 400 <= exc.code < 500
            return Attempt("transient" if transient else "failed",
                           f"SMTP {exc.code} {exc.message}")
        except (aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPConnectError,
                aiosmtplib.SMTPServerDisconnected) as exc:
            return Attempt("transient", f"SMTP {smtp.host}:{smtp.effective_port}: "
                           f"{type(exc).__name__}: {exc.message}")
        except aiosmtplib.SMTPException as exc:  # e.g. STARTTLS or AUTH not offered
            return Attempt("failed", f"SMTP {type(exc).__name__}: {exc.message}")
        except ssl.SSLError as exc:  # a certificate problem does not fix itself
            return Attempt("failed", f"TLS with {smtp.host}: {exc}")
        except OSError as exc:
            return Attempt("transient", f"SMTP {smtp.host}:{smtp.effective_port}: {exc}")
        return Attempt("sent", f"accepted: {answer}", provider_id=message_id)

    async def aclose(self) -> None:
        """Nothing to release: each send opens and closes its own connection."""
