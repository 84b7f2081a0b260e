"""Posting a dataset to a running gateway: profiles to ``/v1/identify``, then events to
``/v1/events``, as JSON arrays of ``batch_size`` records with ``concurrency`` requests in
flight.

Connection errors, timeouts, 429 and 5xx are retried with exponential backoff (and
``Retry-After`` when given). A resent batch carries the same insert_ids, so the
gateway's de-duplication makes retries safe. A 413 splits the batch in two. Any other
4xx (a wrong key, a malformed body) stops the run with ``SendError``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.progress import Progress

from stream.generate.model import Dataset

EVENTS_PATH = "/v1/events"
IDENTIFY_PATH = "/v1/identify"
_MAX_BACKOFF_S = 10.0


class SendError(RuntimeError):
    """The gateway refused a batch for good, or never answered after every attempt."""


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int  # position in dataset.events (or dataset.profiles)
    reason: str


@dataclass
class SendResult:
    """Totals of one ``send``; ``as_dict()`` is the JSON summary (rejections counted)."""

    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    profiles_accepted: int = 0
    profiles_rejected: list[Rejection] = field(default_factory=list)
    requests: int = 0
    retries: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": len(self.rejected),
            "profiles_accepted": self.profiles_accepted,
            "profiles_rejected": len(self.profiles_rejected),
            "requests": self.requests,
            "retries": self.retries,
        }


@dataclass(slots=True)
class _Target:
    path: str
    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)


async def send(
    dataset: Dataset,
    base_url: str,
    write_key: str,
    batch_size: int = 500,
    concurrency: int = 4,
    *,
    progress: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    max_attempts: int = 6,
    backoff_s: float = 0.25,
    timeout_s: float = 30.0,
) -> SendResult:
    """Send profiles, then events; returns what the gateway accepted and rejected.

    Rejection indexes are positions in ``dataset.profiles`` / ``dataset.events``, sorted.
    ``transport`` replaces the network (tests pass ``httpx.MockTransport`` or an
    ``httpx.ASGITransport``); ``progress`` draws a rich progress bar on stderr.
    """
    if batch_size < 1:
        raise ValueError("batch_size: must be at least 1")
    if concurrency < 1:
        raise ValueError("concurrency: must be at least 1")
    result = SendResult()
    headers = {"Authorization": f"Bearer {write_key}", "Content-Type": "application/json"}
    client = httpx.AsyncClient(
        base_url=base_url.rstrip("/"), headers=headers, transport=transport, timeout=timeout_s
    )
    bar = Progress(console=Console(stderr=True), transient=True, disable=not progress)
    poster = _Poster(client, result, max_attempts, backoff_s)
    async with client:
        with bar:
            profiles = await _post_all(
                poster, bar, IDENTIFY_PATH, dataset.profiles, batch_size, concurrency
            )
            events = await _post_all(
                poster, bar, EVENTS_PATH, dataset.events, batch_size, concurrency
            )
    result.profiles_accepted, result.profiles_rejected = profiles.accepted, profiles.rejected
    result.accepted, result.rejected = events.accepted, events.rejected
    return result


async def _post_all(
    poster: _Poster,
    bar: Progress,
    path: str,
    records: list[dict[str, Any]],
    batch_size: int,
    concurrency: int,
) -> _Target:
    target = _Target(path)
    task = bar.add_task(path, total=len(records))
    batches = _batches(records, batch_size)

    async def worker() -> None:
        # Workers share one iterator: each takes the next batch when it is free.
        for offset, batch in batches:
            await poster.post(target, offset, batch)
            bar.advance(task, len(batch))

    try:
        # A task group stops the other workers as soon as one fails for good.
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
    except ExceptionGroup as failed:
        first = failed.exceptions[0]
        if isinstance(first, SendError):
            raise first from None
        raise
    target.rejected.sort(key=lambda rejection: rejection.index)
    return target


def _batches(
    records: list[dict[str, Any]], size: int
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    for offset in range(0, len(records), size):
        yield offset, records[offset : offset + size]


class _Poster:
    def __init__(
        self, client: httpx.AsyncClient, result: SendResult, attempts: int, backoff_s: float
    ) -> None:
        self._client = client
        self._result = result
        self._attempts = max(1, attempts)
        self._backoff = backoff_s

    async def post(self, target: _Target, offset: int, batch: list[dict[str, Any]]) -> None:
        body = orjson.dumps(batch)
        for attempt in range(self._attempts):
            self._result.requests += 1
            if attempt:
                self._result.retries += 1
            try:
                response = await self._client.post(target.path, content=body)
            except httpx.TransportError as exc:
                if attempt + 1 == self._attempts:
                    raise SendError(f"{target.path}: {type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(self._delay(attempt, None))
                continue
            status = response.status_code
            if status == 413 and len(batch) > 1:
                half = len(batch) // 2
                await self.post(target, offset, batch[:half])
                await self.post(target, offset + half, batch[half:])
                return
            if status == 413:
                target.rejected.append(Rejection(offset, "record too large (HTTP 413)"))
                return
            if status == 429 or status >= 500:
                if attempt + 1 == self._attempts:
                    raise SendError(f"{target.path}: HTTP {status} after {self._attempts} attempts")
                await asyncio.sleep(self._delay(attempt, response.headers.get("retry-after")))
                continue
            if status >= 400:
                raise SendError(f"{target.path}: HTTP {status}: {response.text[:300]}")
            self._count(target, offset, response)
            return

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(float(retry_after), _MAX_BACKOFF_S)
            except ValueError:
                pass
        base: float = min(self._backoff * 2**attempt, _MAX_BACKOFF_S)
        return base * (0.5 + random.random() / 2)  # jitter spreads retries of parallel batches

    @staticmethod
    def _count(target: _Target, offset: int, response: httpx.Response) -> None:
        try:
            answer = orjson.loads(response.content)
            accepted = int(answer["accepted"])
            rejected = answer.get("rejected", [])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SendError(f"{target.path}: unexpected answer {response.text[:200]!r}") from exc
        target.accepted += accepted
        for item in rejected:
            target.rejected.append(Rejection(offset + int(item["index"]), str(item["reason"])))
