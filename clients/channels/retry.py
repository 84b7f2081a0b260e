"""The retry loop shared by the network channels: exponential backoff with jitter, capped,
honouring a receiver's ``Retry-After``.

Each channel turns one attempt into an :class:`Attempt` (sent / permanent failure /
transient failure); :func:`deliver_with_retries` decides whether and when to try again."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from clients.channels.message import DeliveryResult


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between attempts, in seconds: ``initial * multiplier ** (n - 1)`` after attempt
    ``n``, capped at ``max_delay`` and scaled by a random factor in ``[1 - jitter, 1]`` so
    many deliveries failing together do not retry in lockstep. ``max_delay`` also bounds the
    ``Retry-After`` a channel waits for in process; a longer one ends the send with status
    ``retry`` instead of holding a worker."""

    initial: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("Backoff: initial and max_delay must be >= 0, multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("Backoff.jitter must be within [0, 1]")

    def delay(self, attempt: int, rand: float) -> float:
        """The wait after failed attempt ``attempt`` (1-based); ``rand`` is uniform in [0, 1)."""
        base = min(self.max_delay, self.initial * self.multiplier ** (attempt - 1))
        return base * (1 - self.jitter * rand)


DEFAULT_BACKOFF = Backoff()


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt's outcome: ``transient`` failures are retried, ``failed`` ones are not."""

    outcome: Literal["sent", "failed", "transient"]
    detail: str
    provider_id: str | None = None
    retry_after: float | None = None  # seconds the receiver asked us to wait


AttemptFn = Callable[[int], Awaitable[Attempt]]


async def deliver_with_retries(attempt: AttemptFn, max_attempts: int, backoff: Backoff,
                               sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                               rand: Callable[[], float] = random.random) -> DeliveryResult:
    """Calls ``attempt(1)``, ``attempt(2)``, ... until one is not transient or
    ``max_attempts`` were made; a transient failure on the last attempt is ``failed``."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    number = 1
    while True:
        result = await attempt(number)
        if result.outcome != "transient":
            return DeliveryResult(result.outcome, result.detail, number, result.provider_id)
        if number >= max_attempts:
            return DeliveryResult("failed", f"{result.detail} (gave up after {number} "
                                  f"attempt{'s' if number > 1 else ''})", number)
        wait = backoff.delay(number, rand())
        if result.retry_after is not None:
            if result.retry_after > backoff.max_delay:
                return DeliveryResult("retry", f"{result.detail} (Retry-After "
                                      f"{result.retry_after:g}s exceeds the "
                                      f"{backoff.max_delay:g}s this channel waits)", number,
                                      retry_after=result.retry_after)
            wait = max(wait, result.retry_after)
        await sleep(wait)
        number += 1
