"""The raw-event archive the PyFlink job writes: Parquet under ``project=/year=/month=/day=``.

A sink of the job (``--sink stream.flink.archive_sink:ArchiveSink``; ``cep flink run`` adds
it). Every event the job takes in for the first time (an ``EnrichedEvent`` that is not a
re-send after a late event moved it, or a ``TooLate`` one) is archived once, as received,
with its event and ingest times — the record of what was sent, independent of how it was
sessionized. The archive is a local folder or any ``pyarrow.fs`` URI (``storage.archive``).

Parquet files cannot be appended to, and a sink must have written a batch durably when
``write`` returns (a checkpoint may cover it next). So each subtask appends its batches to a
local staging file (msgpack frames, fsynced per batch) and rolls it into Parquet when it
holds ``roll_rows`` events or is ``roll_seconds`` old, and when the sink opens or closes:

    STAGING/part-<subtask>-<attempt>-<seq>.msgpack       (being written)
    ARCHIVE/project=<id>/year=YYYY/month=MM/day=DD/<staging stem>.parquet

Rolling writes each day's file whole (``ParquetArchive.write_file``), then deletes the
staging file, so a crash mid-roll just rolls again (same names) when the sink next opens. A
torn last frame (a batch whose ``write`` never returned) is dropped: Flink replays that
batch. Restarts from a checkpoint may archive an event twice (at-least-once, like any file
sink without two-phase commit); the archive's ``events`` view de-duplicates by
``(project, insert_id)`` and ``cep archive compact`` removes the copies.

Events of forgotten users (``stream.operators.suppress``, read from Redis when
``CEP_REDIS_URL`` is set) are left out when a staging file is rolled: a user erased while
their events sat in staging stays erased.

Settings: ``CEP_ARCHIVE_URI`` (else ``CEP_ARCHIVE_DIR``; no archive when neither is set),
``CEP_ARCHIVE_STAGING`` (default ``ARCHIVE/_staging`` for a local archive; required for a
remote one), ``CEP_ARCHIVE_ROLL_ROWS`` (100000), ``CEP_ARCHIVE_ROLL_SECONDS`` (300).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import msgspec

from stream.contract.event import Event
from stream.flink.records import EnrichedEvent, TooLate

STAGING = "_staging"
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[Event]).decode
_LEN = 4  # frame header: big-endian payload length


def frames(path: Path) -> Iterator[list[Event]]:
    """The complete frames of a staging file (a torn tail is ignored)."""
    data = path.read_bytes()
    at = 0
    while at + _LEN <= len(data):
        size = int.from_bytes(data[at:at + _LEN], "big")
        if at + _LEN + size > len(data):
            return
        yield _decode(data[at + _LEN:at + _LEN + size])
        at += _LEN + size


def roll(staging: Path, archive: Any,
         keep: Callable[[Event], bool] = lambda _e: True) -> int:
    """Turn one staging file into Parquet files per (project, day) of ``archive`` (a
    ``storage.archive.ParquetArchive``), with the events ``keep`` accepts; returns events
    written."""
    written = int(archive.write_events(
        (e for batch in frames(staging) for e in batch if keep(e)), staging.stem))
    staging.unlink()
    return written


class ArchiveSink:
    """See the module docstring. Zero-argument: settings come from the environment."""

    def __init__(self, directory: str | None = None, roll_rows: int | None = None,
                 roll_seconds: float | None = None, staging: str | None = None) -> None:
        env = os.environ
        self._uri = directory if directory is not None else (
            env.get("CEP_ARCHIVE_URI") or env.get("CEP_ARCHIVE_DIR", ""))
        self._staging_dir = staging or env.get("CEP_ARCHIVE_STAGING") or ""
        self._roll_rows = roll_rows or int(env.get("CEP_ARCHIVE_ROLL_ROWS", 100_000))
        self._roll_seconds = roll_seconds or float(env.get("CEP_ARCHIVE_ROLL_SECONDS", 300))
        self._redis_url = env.get("CEP_REDIS_URL") or None
        self._file: IO[bytes] | None = None

    def open(self, subtask: int, attempt: int) -> None:
        self._subtask, self._attempt, self._seq = subtask, attempt, 0
        if not self._uri:
            return
        from storage.archive import ParquetArchive
        from stream.flink.suppress import JobSuppressions

        self._archive = ParquetArchive(self._uri)
        if self._staging_dir:
            self._staging = Path(self._staging_dir)
        elif self._archive.local:
            self._staging = Path(self._archive.root) / STAGING
        else:
            raise ValueError(f"archive {self._uri}: a remote archive needs a local staging "
                             "folder (CEP_ARCHIVE_STAGING)")
        self._staging.mkdir(parents=True, exist_ok=True)
        self._suppressions = JobSuppressions(self._redis_url)
        self._suppressions.open()
        # What an earlier attempt of this subtask left staged is complete up to its last
        # whole frame: archive it now.
        for left in sorted(self._staging.glob(f"part-{subtask}-*.msgpack")):
            self._roll_file(left)

    def _path(self) -> Path:
        return self._staging / f"part-{self._subtask}-{self._attempt}-{self._seq:06d}.msgpack"

    def write(self, outputs: Sequence[Any]) -> None:
        if not self._uri:
            return
        events = [o.event for o in outputs
                  if (isinstance(o, EnrichedEvent) and not o.moved) or isinstance(o, TooLate)]
        if not events:
            return
        if self._file is None:
            self._file = self._path().open("ab")
            self._opened, self._rows = time.monotonic(), 0
        payload = _encode(events)
        self._file.write(len(payload).to_bytes(_LEN, "big") + payload)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._rows += len(events)
        if (self._rows >= self._roll_rows
                or time.monotonic() - self._opened >= self._roll_seconds):
            self._roll()

    def _roll_file(self, path: Path) -> int:
        forgotten = self._suppressions.current()
        return roll(path, self._archive, lambda e: not forgotten.drops_event(e))

    def _roll(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        self._roll_file(self._path())
        self._seq += 1

    def close(self) -> None:
        if self._uri and hasattr(self, "_suppressions"):
            self._roll()
            self._suppressions.close()
