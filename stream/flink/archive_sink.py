"""The raw-event archive the PyFlink job writes: Parquet under ``project=/year=/month=/day=``.

A sink of the job (``--sink stream.flink.archive_sink:ArchiveSink``; ``cep flink run`` adds
it). Every event the job takes in for the first time (an ``EnrichedEvent`` that is not a
re-send after a late event moved it, or a ``TooLate`` one) is archived once, as received,
with its event and ingest times — the record of what was sent, independent of how it was
sessionized.

Parquet files cannot be appended to, and a sink must have written a batch durably when
``write`` returns (a checkpoint may cover it next). So each subtask appends its batches to a
staging file (msgpack frames, fsynced per batch) and rolls it into Parquet when it holds
``roll_rows`` events or is ``roll_seconds`` old, and when the sink opens or closes:

    ARCHIVE/_staging/part-<subtask>-<attempt>-<seq>.msgpack       (being written)
    ARCHIVE/project=<id>/year=YYYY/month=MM/day=DD/<staging stem>.parquet

Rolling writes each day's file under a temporary name, renames it, then deletes the staging
file, so a crash mid-roll just rolls again (same names) when the sink next opens. A torn
last frame (a batch whose ``write`` never returned) is dropped: Flink replays that batch.
Restarts from a checkpoint may archive an event twice (at-least-once, like any file sink
without two-phase commit); readers de-duplicate by ``(project, insert_id)``, which the
archive query command does.

Settings: ``CEP_ARCHIVE_DIR`` (no archive when unset), ``CEP_ARCHIVE_ROLL_ROWS`` (100000),
``CEP_ARCHIVE_ROLL_SECONDS`` (300).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import msgspec

from stream.contract.event import Event
from stream.flink.records import EnrichedEvent, TooLate

STAGING = "_staging"
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[Event]).decode
_LEN = 4  # frame header: big-endian payload length

COLUMNS = ["project", "insert_id", "event_name", "category", "time", "ingest_time",
           "distinct_user_id", "device_id", "session_id", "source_id", "url", "ip",
           "user_agent", "properties", "app_version"]


def _schema() -> Any:
    import pyarrow as pa

    s, i = pa.string(), pa.int64()
    types = {"time": i, "ingest_time": i}
    return pa.schema([(c, types.get(c, s)) for c in COLUMNS])


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


def roll(staging: Path, archive: Path) -> int:
    """Turn one staging file into Parquet files per (project, day); returns events written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    groups: dict[tuple[str, str, str, str], list[Event]] = defaultdict(list)
    for batch in frames(staging):
        for e in batch:
            day = datetime.fromtimestamp(e.time / 1000, UTC)
            groups[(e.project, f"{day.year:04d}", f"{day.month:02d}", f"{day.day:02d}")].append(e)
    schema = _schema()
    written = 0
    for (project, year, month, dd), events in sorted(groups.items()):
        folder = archive / f"project={project}" / f"year={year}" / f"month={month}" / f"day={dd}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pydict(
            {c: [getattr(e, c) for e in events] for c in COLUMNS}, schema=schema)
        final = folder / f"{staging.stem}.parquet"
        tmp = folder / f".{staging.stem}.parquet.tmp"
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, final)
        written += len(events)
    staging.unlink()
    return written


class ArchiveSink:
    """See the module docstring. Zero-argument: settings come from the environment."""

    def __init__(self, directory: str | None = None, roll_rows: int | None = None,
                 roll_seconds: float | None = None) -> None:
        self._directory = directory if directory is not None else os.environ.get(
            "CEP_ARCHIVE_DIR", "")
        self._roll_rows = roll_rows or int(os.environ.get("CEP_ARCHIVE_ROLL_ROWS", 100_000))
        self._roll_seconds = roll_seconds or float(
            os.environ.get("CEP_ARCHIVE_ROLL_SECONDS", 300))
        self._file: IO[bytes] | None = None

    def open(self, subtask: int, attempt: int) -> None:
        self._subtask, self._attempt, self._seq = subtask, attempt, 0
        if not self._directory:
            return
        self._archive = Path(self._directory)
        self._staging = self._archive / STAGING
        self._staging.mkdir(parents=True, exist_ok=True)
        # What an earlier attempt of this subtask left staged is complete up to its last
        # whole frame: archive it now.
        for left in sorted(self._staging.glob(f"part-{subtask}-*.msgpack")):
            roll(left, self._archive)

    def _path(self) -> Path:
        return self._staging / f"part-{self._subtask}-{self._attempt}-{self._seq:06d}.msgpack"

    def write(self, outputs: Sequence[Any]) -> None:
        if not self._directory:
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

    def _roll(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        roll(self._path(), self._archive)
        self._seq += 1

    def close(self) -> None:
        if self._directory:
            self._roll()
