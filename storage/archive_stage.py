"""The embedded profile's archive writer: every accepted event into the Parquet archive
exactly once, across crashes and restarts.

The runner hands each step's new events here before it commits the step (``stage``) and
says when a commit finished (``committed``). A step's events are appended to a local
staging file as one frame tagged with the step's log offset and fsynced; committed frames
are rolled into Parquet (``storage.archive``) when the file holds ``roll_rows`` events or
is ``roll_seconds`` old, on ``flush`` and on close::

    STAGING/from-<offset>-<ns>.msgpack    frames (next log offset, events) of steps since
                                          log offset <offset>, begun at <ns> (unique)
    ARCHIVE/project=…/year=…/month=…/day=…/log-<offset>-<ns>.parquet

Why nothing is lost or duplicated: steps are staged in log order, each frame tagged with
the offset after its last record. A frame beyond the store's checkpoint (the offset its
last commit covers) belongs to a step whose commit did not happen — a crash, or a failed
commit the runner redoes from the log — and is cut off: at open, and when a step is staged
that starts before the frame ends (the redo). Only frames up to the checkpoint are rolled.
A roll writes each partition's file under a name fixed by the staging file, then deletes
the staging file, so a crash mid-roll rolls again to the same names.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import IO

import msgspec

from storage.archive import ParquetArchive
from storage.ports import WriteBatch
from stream.contract.event import Event

log = logging.getLogger("cep.archive")
_LEN = 4  # frame header: big-endian payload length


class StagedStep(msgspec.Struct, array_like=True):
    next_offset: int  # the log offset after the step's last record
    events: list[Event]


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(StagedStep).decode


def read_frames(path: Path) -> list[tuple[StagedStep, int]]:
    """Each complete frame of a staging file with the byte position where it ends (a torn
    last frame, cut short by a crash, is left out)."""
    data = path.read_bytes()
    out: list[tuple[StagedStep, int]] = []
    at = 0
    while at + _LEN <= len(data):
        size = int.from_bytes(data[at:at + _LEN], "big")
        if at + _LEN + size > len(data):
            break
        out.append((_decode(data[at + _LEN:at + _LEN + size]), at + _LEN + size))
        at += _LEN + size
    return out


class ArchiveStage:
    """See the module docstring. ``stage`` and ``committed`` are called by the runner's
    commit thread; a full staging file is sealed there and rolled into Parquet by a thread
    of its own (converting and compressing a hundred thousand events takes a few tenths of
    a second the commit thread need not wait for); ``flush`` rolls everything and waits."""

    def __init__(self, staging: Path, archive: ParquetArchive, roll_rows: int = 100_000,
                 roll_seconds: float = 300.0, fsync: bool = True) -> None:
        self.archive = archive
        self._dir = staging
        self._dir.mkdir(parents=True, exist_ok=True)
        self._roll_rows = roll_rows
        self._roll_seconds = roll_seconds
        self._fsync = fsync
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._frames: list[tuple[int, int]] = []  # (next offset, end position) per frame
        self._rows = 0
        self._opened = 0.0
        self._committed = 0  # the store's checkpoint, as last told
        self._sealed = threading.Condition()
        self._queue: list[Path] = []  # sealed files waiting for the roller
        self._rolling = 0
        self._written = 0  # events rolled by the roller since the last flush
        self._closing = False
        self._roller: threading.Thread | None = None

    def recover(self, checkpoint: int) -> int:
        """At open: cut what was staged beyond the store's ``checkpoint``, roll the rest.
        Returns the events archived."""
        with self._lock:
            self._committed = checkpoint
            written = 0
            for path in sorted(self._dir.glob("from-*.msgpack")):
                frames = read_frames(path)
                keep = [step for step, _end in frames if step.next_offset <= checkpoint]
                if len(keep) < len(frames):
                    log.info("archive: %d staged steps beyond the store's checkpoint %d "
                             "dropped (they are processed again)", len(frames) - len(keep),
                             checkpoint)
                written += self._roll_file(path, keep)
            return written

    def stage(self, batch: WriteBatch) -> None:
        """Append a step's new events, durably, before the step is committed."""
        events = batch.events.events
        with self._lock:
            if batch.first_offset >= 0:  # a redo: what was staged from there on is stale
                self._cut_after(batch.first_offset)
            if not events:
                return
            if self._file is None:  # named apart from every earlier one (roll names)
                start = batch.first_offset if batch.first_offset >= 0 else self._committed
                self._path = self._dir / f"from-{start:020d}-{time.time_ns()}.msgpack"
                self._file = self._path.open("ab")
                self._frames, self._rows, self._opened = [], 0, time.monotonic()
            payload = _encode(StagedStep(batch.next_offset, list(events)))
            self._file.write(len(payload).to_bytes(_LEN, "big") + payload)
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())
            self._frames.append((batch.next_offset, self._file.tell()))
            self._rows += len(events)

    def committed(self, next_offset: int) -> None:
        """The store committed every step up to ``next_offset``; seal the staging file for
        the roller if it is due (every frame in it is committed by now: the runner tells
        after the commit of all the steps it staged)."""
        with self._lock:
            self._committed = max(self._committed, next_offset)
            if self._file is not None and (
                    self._rows >= self._roll_rows
                    or time.monotonic() - self._opened >= self._roll_seconds):
                self._seal()

    def flush(self) -> int:
        """Roll every committed frame into the archive now and wait for it (call it while
        no commit is in flight: the runner stopped or held by ``exclusive``); returns the
        events written. Raises if a roll fails (the staging file is kept)."""
        with self._lock:
            self._cut_after(self._committed)
            self._seal()
        with self._sealed:
            self._sealed.wait_for(lambda: not self._queue and not self._rolling)
            written, self._written = self._written, 0
        with self._lock:  # what the roller could not roll (and left staged), once more
            paths = sorted(p for p in self._dir.glob("from-*.msgpack") if p != self._path)
            for path in paths:
                written += self._roll_file(path, [s for s, _end in read_frames(path)])
        return written

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with self._sealed:
                self._closing = True
                self._sealed.notify_all()
            if self._roller is not None:
                self._roller.join(timeout=60)

    def _seal(self) -> None:
        if self._file is None or self._path is None:
            return
        self._file.close()
        self._file = None
        path, self._path = self._path, None
        with self._sealed:
            self._queue.append(path)
            if self._roller is None:
                self._roller = threading.Thread(target=self._roll_loop, name="cep-archive",
                                                daemon=True)
                self._roller.start()
            self._sealed.notify_all()

    def _roll_loop(self) -> None:
        while True:
            with self._sealed:
                self._sealed.wait_for(lambda: self._queue or self._closing)
                if not self._queue:
                    return
                path = self._queue.pop(0)
                self._rolling += 1
            written = 0
            try:
                written = self._roll_file(path, [s for s, _end in read_frames(path)])
            except Exception:  # the file stays staged: flush and the next open retry it
                log.exception("archive: cannot roll %s; kept for a later try", path.name)
            with self._sealed:
                self._rolling -= 1
                self._written += written
                self._sealed.notify_all()

    def _cut_after(self, offset: int) -> None:
        """Drop frames ending beyond ``offset``: steps whose commit did not happen."""
        if self._file is None or not self._frames or self._frames[-1][0] <= offset:
            return
        keep = [f for f in self._frames if f[0] <= offset]
        end = keep[-1][1] if keep else 0
        log.warning("archive: %d staged steps were never committed; cut (they are "
                    "processed again)", len(self._frames) - len(keep))
        self._file.truncate(end)
        self._file.seek(end)
        self._frames = keep

    def _roll_file(self, path: Path, steps: list[StagedStep]) -> int:
        name = "log-" + path.stem.removeprefix("from-")
        written = self.archive.write_events((e for s in steps for e in s.events), name)
        path.unlink()
        return written
