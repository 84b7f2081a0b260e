"""The embedded event log: append-only segment files, fsynced before an append is answered.

Each record is ``<length:u32><offset:u64><crc32:u32><payload>``. Appends from many requests
are group-committed by one writer thread: whatever arrived while the previous fsync ran is
written and fsynced together, so a 200 always means "on disk" and single-event POSTs still
share fsyncs. On open, a torn tail (a crash mid-write) is cut at the first bad frame.
Offsets are dense record numbers starting at 0.
"""

from __future__ import annotations

import asyncio
import os
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

_HEADER = struct.Struct("<IQI")
SEGMENT_BYTES = 64 << 20


class LogClosed(RuntimeError):
    """The log was closed; nothing more is accepted."""


@dataclass(slots=True)
class _Pending:
    payload: bytes
    items: int
    done: asyncio.Future[int]
    loop: asyncio.AbstractEventLoop


class LocalEventLog:
    """Durable append-only log in ``directory``.

    ``append`` is a coroutine answered once the record is fsynced. ``read`` returns
    committed records only. ``pending_items`` counts items (events, profiles…) in
    records appended but not yet acknowledged by the consumer through ``ack``.
    """

    def __init__(self, directory: Path, *, segment_bytes: int = SEGMENT_BYTES,
                 fsync: bool = True) -> None:
        self._dir = directory
        self._dir.mkdir(parents=True, exist_ok=True)
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._lock = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._closed = False
        self._segments = self._recover()
        self._next = self._next_offset_on_disk()
        self._committed = self._next
        self._file = open(self._segment_path(self._segments[-1]), "ab")  # noqa: SIM115
        self._unacked: dict[int, int] = {}
        self._pending_items = 0
        self._acked = -1
        self._cursor: tuple[int, int, int] | None = None  # (segment, next offset, position)
        self._wake: tuple[int, threading.Event] | None = None  # the consumer waiting
        self._writer = threading.Thread(target=self._write_loop, name="cep-log-writer",
                                        daemon=True)
        self._writer.start()

    # -- writing ---------------------------------------------------------------------------

    async def append(self, payload: bytes, items: int) -> int:
        """Append one record holding ``items`` items; returns its offset once durable."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        with self._lock:
            if self._closed:
                raise LogClosed("event log is closed")
            self._queue.append(_Pending(payload, items, done, loop))
            self._lock.notify_all()
        return await done

    def append_sync(self, payload: bytes, items: int) -> int:
        """Blocking append for command-line tools (no event loop)."""

        async def one() -> int:
            return await self.append(payload, items)

        return asyncio.run(one())

    def _write_loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if not self._queue and self._closed:
                    return
                batch = list(self._queue)
                self._queue.clear()
            offsets = []
            error: BaseException | None = None
            try:
                for pending in batch:
                    offsets.append(self._write(pending.payload))
                self._file.flush()
                if self._fsync:
                    os.fsync(self._file.fileno())
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
                error = exc
            with self._lock:
                if error is None:
                    for pending, offset in zip(batch, offsets, strict=True):
                        self._unacked[offset] = pending.items
                        self._pending_items += pending.items
                    self._committed = self._next
                    if self._wake is not None and self._committed > self._wake[0]:
                        self._wake[1].set()
            if error is None:
                for pending, offset in zip(batch, offsets, strict=True):
                    pending.loop.call_soon_threadsafe(_resolve, pending.done, offset)
            else:
                for pending in batch:
                    pending.loop.call_soon_threadsafe(_fail, pending.done, error)

    def _write(self, payload: bytes) -> int:
        if self._file.tell() >= self._segment_bytes:
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())
            self._file.close()
            self._segments.append(self._next)
            self._file = open(self._segment_path(self._next), "ab")  # noqa: SIM115
        offset = self._next
        self._file.write(_HEADER.pack(len(payload), offset, zlib.crc32(payload)))
        self._file.write(payload)
        self._next += 1
        return offset

    # -- reading ---------------------------------------------------------------------------

    @property
    def committed(self) -> int:
        """The next offset to be written: records ``< committed`` are durable."""
        with self._lock:
            return self._committed

    def wait_for(self, offset: int, timeout: float) -> bool:
        """Block until a record at ``offset`` is committed (or timeout, or close).

        The consumer is woken only when its offset is reached, not on every append: a
        thread woken thousands of times a second fights the event loop for the GIL.
        """
        with self._lock:
            if self._committed > offset or self._closed:
                return self._committed > offset
            wake = threading.Event()
            self._wake = (offset, wake)
        wake.wait(timeout)
        with self._lock:
            self._wake = None
            return self._committed > offset

    def read(self, start: int, max_bytes: int = 16 << 20) -> list[tuple[int, bytes]]:
        """Committed records from ``start`` on, up to about ``max_bytes`` of payload."""
        end = self.committed
        out: list[tuple[int, bytes]] = []
        if start >= end:
            return out
        size = 0
        for offset, payload in self._scan(start):
            if offset >= end:
                break
            out.append((offset, payload))
            size += len(payload)
            if size >= max_bytes:
                break
        return out

    def _scan(self, start: int) -> Iterator[tuple[int, bytes]]:
        # Sequential consumers resume where the previous read ended instead of walking every
        # header of the segment again (small records make segments long).
        cached = self._cursor
        first = max((s for s in self._segments if s <= start), default=self._segments[0])
        for base in [s for s in self._segments if s >= first]:
            with open(self._segment_path(base), "rb") as fh:
                if cached is not None and cached[0] == base and cached[1] <= start:
                    fh.seek(cached[2])
                while header := fh.read(_HEADER.size):
                    if len(header) < _HEADER.size:
                        return
                    length, offset, _crc = _HEADER.unpack(header)
                    if offset < start:
                        fh.seek(length, os.SEEK_CUR)
                        continue
                    payload = fh.read(length)
                    if len(payload) < length:
                        return
                    # Records below ``committed`` were fsynced by this process or checked by
                    # ``_recover`` at open: the checksum guards torn tails, checked there.
                    self._cursor = (base, offset + 1, fh.tell())
                    yield offset, payload

    # -- consumer bookkeeping -----------------------------------------------------------------

    def resume(self, start: int, count_items: Callable[[bytes], int]) -> None:
        """Count items in records from ``start`` on: they were accepted before a restart and
        are not processed yet."""
        with self._lock:
            self._unacked.clear()
            self._pending_items = 0
            self._acked = start - 1
        for offset, payload in self._scan(start):
            if offset >= self.committed:
                break
            items = count_items(payload)
            with self._lock:
                self._unacked[offset] = items
                self._pending_items += items

    def ack(self, upto: int) -> None:
        """The consumer processed every record ``<= upto``; drop segments no longer needed."""
        with self._lock:
            for offset in range(self._acked + 1, upto + 1):
                self._pending_items -= self._unacked.pop(offset, 0)
            self._acked = max(self._acked, upto)
            removable = [s for s, nxt in zip(self._segments, self._segments[1:], strict=False)
                         if nxt <= upto + 1]
        for base in removable:
            self._segment_path(base).unlink(missing_ok=True)
            with self._lock:
                self._segments.remove(base)

    @property
    def pending_items(self) -> int:
        with self._lock:
            return self._pending_items

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
            if self._wake is not None:
                self._wake[1].set()
        self._writer.join(timeout=30)
        self._file.close()

    def _segment_path(self, base: int) -> Path:
        return self._dir / f"{base:020d}.log"

    def _recover(self) -> list[int]:
        segments = sorted(int(p.stem) for p in self._dir.glob("*.log") if p.stem.isdigit())
        if not segments:
            self._segment_path(0).touch()
            return [0]
        last = self._segment_path(segments[-1])
        good = 0
        with open(last, "rb") as fh:
            while header := fh.read(_HEADER.size):
                if len(header) < _HEADER.size:
                    break
                length, _offset, crc = _HEADER.unpack(header)
                payload = fh.read(length)
                if len(payload) < length or zlib.crc32(payload) != crc:
                    break
                good = fh.tell()
        if good < last.stat().st_size:
            with open(last, "r+b") as fh:
                fh.truncate(good)
                os.fsync(fh.fileno())
        return segments

    def _next_offset_on_disk(self) -> int:
        last = self._segments[-1]
        nxt = last
        with open(self._segment_path(last), "rb") as fh:
            while header := fh.read(_HEADER.size):
                length, offset, _crc = _HEADER.unpack(header)
                fh.seek(length, os.SEEK_CUR)
                nxt = offset + 1
        return nxt


def _resolve(fut: asyncio.Future[int], offset: int) -> None:
    if not fut.done():
        fut.set_result(offset)


def _fail(fut: asyncio.Future[int], error: BaseException) -> None:
    if not fut.done():
        fut.set_exception(error)
