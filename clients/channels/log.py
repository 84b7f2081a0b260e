"""Log channel: one JSON line per message, for dry runs and for seeing what a campaign
would send. Recipients are masked (``***ce@example.com``, ``***123``); the channel holds
no secret to leak."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from clients.channels.message import DeliveryResult, Message

DEFAULT_LOGGER = "cep.channels.log"


def mask_contact(value: str | None) -> str | None:
    """An address with all but its tail hidden: an email keeps the last 2 characters of
    its local part and its domain, anything else (a phone, a push token) its last 3."""
    if value is None:
        return None
    local, at, domain = value.rpartition("@")
    if at and local:
        return f"***{local[-2:] if len(local) > 2 else ''}@{domain}"
    return f"***{value[-3:]}" if len(value) > 3 else "***"


class LogChannel:
    """Writes each message as a JSON line to ``target``: a logger (INFO) or a file path
    (appended, one ``write`` per line so concurrent writers do not interleave). Default:
    the ``cep.channels.log`` logger."""

    def __init__(self, target: logging.Logger | str | os.PathLike[str] | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._logger: logging.Logger | None = None
        self._path: Path | None = None
        if isinstance(target, logging.Logger):
            self._logger = target
        elif target is None:
            self._logger = logging.getLogger(DEFAULT_LOGGER)
        else:
            self._path = Path(target)
        self._lock = threading.Lock()
        self._clock = clock

    def line(self, message: Message) -> bytes:
        """The JSON line logged for ``message`` (without the newline)."""
        logged_at = datetime.fromtimestamp(self._clock(), UTC)
        return orjson.dumps({
            "logged_at": logged_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "campaign_id": message.campaign_id,
            "user_id": message.user_id,
            "idempotency_key": message.idempotency_key,
            "to": mask_contact(message.to),
            "subject": message.subject,
            "message": message.body,
            "data": dict(message.data),
        }, default=str)

    def _append(self, line: bytes) -> None:
        assert self._path is not None
        with self._lock, self._path.open("ab") as out:
            out.write(line + b"\n")

    async def send(self, message: Message) -> DeliveryResult:
        line = self.line(message)
        if self._logger is not None:
            self._logger.info("%s", line.decode())
            return DeliveryResult("sent", f"logged to {self._logger.name}", 1)
        try:
            await asyncio.to_thread(self._append, line)
        except OSError as exc:
            return DeliveryResult("failed", f"could not write {self._path}: {exc}", 1)
        return DeliveryResult("sent", f"appended to {self._path}", 1)

    async def aclose(self) -> None:
        """Nothing to release: the file is opened per line."""
