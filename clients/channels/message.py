"""What a channel is given (a rendered :class:`Message`), what it answers
(:class:`DeliveryResult`), and the one interface every channel has (:class:`Channel`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

DeliveryStatus = Literal["sent", "failed", "retry"]


@dataclass(frozen=True, slots=True)
class Message:
    """One message for one user, already rendered.

    ``idempotency_key`` identifies the delivery (campaign + user + trigger firing) and is
    computed by the caller; channels pass it on (webhook ``Idempotency-Key`` header, email
    ``Message-ID``) so a receiver can drop a duplicate sent after a retry or a replay.
    ``to`` is the user's address for the channel (email address, phone number, push token)
    or None when the channel has its own (a webhook URL, a fixed email recipient).
    ``data`` holds extra JSON-serializable fields (trigger event, firing time, ...)."""

    campaign_id: str
    user_id: str
    idempotency_key: str
    subject: str
    body: str
    to: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.idempotency_key:
            raise ValueError("Message.idempotency_key must not be empty")


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one :meth:`Channel.send` ended.

    - ``sent``: the receiver accepted the message (HTTP 2xx, SMTP 250, a log line written).
    - ``failed``: it will not be accepted as it is (HTTP 4xx other than 429, SMTP 5xx, a bad
      address), or transient errors lasted through every attempt; ``detail`` says which.
    - ``retry``: the receiver asked us to come back later than the channel waits in process
      (``Retry-After`` beyond the backoff's ``max_delay``); ``retry_after`` is in seconds and
      the caller should re-queue the delivery with the same idempotency key.

    ``attempts`` counts requests actually made (0 when the message was refused before any
    was, e.g. no recipient); ``provider_id`` is the receiver's id for the message when it
    gave one (the email's Message-ID, a webhook's ``id`` in its JSON answer)."""

    status: DeliveryStatus
    detail: str
    attempts: int
    provider_id: str | None = None
    retry_after: float | None = None


class Channel(Protocol):
    """A way to reach users. ``send`` reports every delivery problem in its result and
    raises only on programming errors (or cancellation); ``aclose`` releases connections
    the channel owns and is safe to call twice."""

    async def send(self, message: Message) -> DeliveryResult: ...

    async def aclose(self) -> None: ...
