"""The raw-event archive: Parquet files partitioned ``project=/year=/month=/day=`` (UTC day of
the event time) under a local folder or any ``pyarrow.fs`` URI (``s3://bucket/prefix``…).

Writers (the embedded runner's ``storage.archive_stage``, the PyFlink job's
``stream.flink.archive_sink``) add small files; ``compact`` merges each partition's files
into one, de-duplicated by ``insert_id`` (the first ingested wins); ``query`` runs DuckDB SQL
over the view ``events``; ``erase`` rewrites the files holding a forgotten user's rows.

A file appears whole or not at all: on a local disk it is written under a dot-prefixed
temporary name and renamed; on an object store a ``PUT`` is already atomic. Readers skip
names starting with ``.`` or ``_`` (temporary files, ``_staging``), so an interrupted write
or compaction leaves nothing half-written in view: at worst an input and its merged copy
side by side, which the ``events`` view de-duplicates and the next compaction merges.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from msgspec.structs import astuple

from stream.contract.event import Event

DAY_MS = 86_400_000
COLUMNS = ["project", "insert_id", "event_name", "category", "time", "ingest_time",
           "distinct_user_id", "device_id", "session_id", "source_id", "url", "ip",
           "user_agent", "properties", "app_version"]
SCHEMA = pa.schema([(c, pa.int64() if c in ("time", "ingest_time") else pa.string())
                    for c in COLUMNS])
PARTITIONING = ds.partitioning(pa.schema([("project", pa.string()), ("year", pa.int16()),
                                          ("month", pa.int8()), ("day", pa.int8())]),
                               flavor="hive")
PARTITION_COLUMNS = ("year", "month", "day")
# The archive as stored (``raw_events``) and de-duplicated (``events``): copies of an event
# always share a day partition, so the window stays within one and partition filters
# reach the scan.
EVENTS_VIEW = ("CREATE VIEW events AS SELECT * FROM raw_events QUALIFY row_number() OVER ("
               "PARTITION BY project, year, month, day, insert_id ORDER BY ingest_time) = 1")


def day_parts(ms: int) -> tuple[str, str, str]:
    """``("YYYY", "MM", "DD")`` of the UTC day holding ``ms``."""
    day = datetime.fromtimestamp(ms / 1000, UTC)
    return f"{day.year:04d}", f"{day.month:02d}", f"{day.day:02d}"


def events_table(events: Sequence[Event]) -> pa.Table:
    return _rows_table([astuple(e) for e in events])


def _rows_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """Event tuples (fields in ``Event`` order, which is COLUMNS) as an archive table."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(COLUMNS)
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(
        columns, SCHEMA, strict=True)], schema=SCHEMA)


@dataclass(frozen=True, slots=True)
class Compaction:
    partitions: int  # partitions merged
    files_in: int
    files_out: int
    rows: int  # rows kept
    duplicates: int  # rows dropped as copies of an event already kept


class ParquetArchive:
    """The archive at ``uri``: a folder, ``file://…``, or any URI ``pyarrow.fs`` opens."""

    def __init__(self, uri: str, filesystem: pafs.FileSystem | None = None) -> None:
        if filesystem is not None:
            self.fs, self.root = filesystem, uri.rstrip("/")
        elif "://" in uri:
            self.fs, root = pafs.FileSystem.from_uri(uri)
            self.root = root.rstrip("/")
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(uri)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.uri = uri

    # -- writing ---------------------------------------------------------------------------

    def folder(self, project: str, year: str, month: str, day: str) -> str:
        return f"{self.root}/project={project}/year={year}/month={month}/day={day}"

    def write_events(self, events: Iterable[Event], name: str) -> int:
        """``events`` as ``<name>.parquet`` in each (project, day) partition they fall in;
        writing the same events under the same name again replaces those files."""
        groups: dict[tuple[str, int], list[tuple[Any, ...]]] = defaultdict(list)
        for e in events:
            groups[(e.project, e.time // DAY_MS)].append(astuple(e))
        for (project, day), rows in sorted(groups.items()):
            folder = self.folder(project, *day_parts(day * DAY_MS))
            self.write_file(f"{folder}/{name}.parquet", _rows_table(rows))
        return sum(len(g) for g in groups.values())

    def write_file(self, path: str, table: pa.Table) -> None:
        """Write ``table`` at ``path`` so that it appears whole or not at all."""
        folder, _, base = path.rpartition("/")
        self.fs.create_dir(folder, recursive=True)
        if not self.local:
            pq.write_table(table, path, filesystem=self.fs, compression="zstd")
            return
        tmp = f"{folder}/.{base}.tmp"
        try:
            pq.write_table(table, tmp, filesystem=self.fs, compression="zstd")
            self.fs.move(tmp, path)
        except BaseException:  # Ctrl-C included: leave no temporary file behind
            if _exists(self.fs, tmp):
                self.fs.delete_file(tmp)
            raise

    # -- reading ---------------------------------------------------------------------------

    def files(self, project: str | None = None) -> list[str]:
        """The archive's Parquet files (of one project), sorted; temporary ones excluded."""
        base = self.root if project is None else f"{self.root}/project={project}"
        if not _exists(self.fs, base):
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
        rel = len(self.root) + 1
        return sorted(i.path for i in infos if i.type == pafs.FileType.File
                      and i.path.endswith(".parquet") and not any(
                          part.startswith((".", "_")) for part in i.path[rel:].split("/")))

    def dataset(self) -> ds.Dataset:
        """Every file as one dataset with its partition columns (``project``, ``year``,
        ``month``, ``day``)."""
        files = self.files()
        if not files:
            return ds.dataset(SCHEMA.empty_table().append_column(
                "year", pa.array([], pa.int16())).append_column(
                "month", pa.array([], pa.int8())).append_column("day", pa.array([], pa.int8())))
        return ds.dataset(files, filesystem=self.fs, format="parquet",
                          partitioning=PARTITIONING, partition_base_dir=self.root)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """DuckDB ``sql`` over the views ``events`` (de-duplicated) and ``raw_events`` (every
        copy as stored). Opens an in-memory DuckDB: the archive is read, never written."""
        import duckdb

        con = duckdb.connect(":memory:")
        try:
            con.register("raw_events", self.dataset())
            con.execute(EVENTS_VIEW)
            relation = con.sql(sql, params=list(params) if params else None)
            return relation.to_arrow_table() if relation is not None else pa.table({})
        finally:
            con.close()

    # -- compaction ------------------------------------------------------------------------

    def partitions(self) -> dict[str, list[str]]:
        """Each partition folder and its files."""
        out: dict[str, list[str]] = defaultdict(list)
        for path in self.files():
            out[path.rpartition("/")[0]].append(path)
        return dict(out)

    def compact(self, progress: Callable[[int, int], None] = lambda _d, _t: None,
                min_files: int = 2) -> Compaction:
        """Merge each partition holding at least ``min_files`` files into one file
        (de-duplicated by ``insert_id``, first ingested wins; ordered by time). The merged
        file is written before its inputs are deleted; ``progress(done, total)`` after each
        partition. Safe to interrupt and to run while writers add files: only the files it
        read are deleted."""
        todo = sorted((folder, files) for folder, files in self.partitions().items()
                      if len(files) >= min_files)
        merged = files_in = rows = duplicates = 0
        progress(0, len(todo))
        for done, (folder, files) in enumerate(todo, start=1):
            table = pa.concat_tables([self._read(f) for f in files])
            kept = dedupe(table)
            digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]
            self.write_file(f"{folder}/compacted-{digest}.parquet", kept)
            for f in files:
                self.fs.delete_file(f)
            merged, files_in = merged + 1, files_in + len(files)
            rows, duplicates = rows + kept.num_rows, duplicates + table.num_rows - kept.num_rows
            progress(done, len(todo))
        return Compaction(merged, files_in, merged, rows, duplicates)

    def _read(self, path: str) -> pa.Table:
        return pq.read_table(path, filesystem=self.fs, schema=SCHEMA)

    # -- one user's rows -------------------------------------------------------------------

    def _owned(self, table: pa.Table, user: str, devices: Iterable[str],
               insert_ids: Iterable[str]) -> pa.Array:
        """Rows that belong to ``user``: theirs by ``distinct_user_id``, device-only rows of
        their ``devices``, and the ``insert_ids`` the stores attribute to them."""
        users = table.column("distinct_user_id")
        anonymous = pc.is_null(users)
        mask = pc.or_(
            pc.fill_null(pc.equal(users, user), False),
            pc.and_(anonymous, pc.is_in(table.column("device_id"),
                                        pa.array(sorted(devices), pa.string()))))
        return pc.or_(mask, pc.is_in(table.column("insert_id"),
                                     pa.array(sorted(insert_ids), pa.string())))

    def user_rows(self, project: str, user: str, devices: Iterable[str],
                  insert_ids: Iterable[str]) -> pa.Table:
        """Every archived row of ``user`` in ``project`` (see ``_owned``)."""
        devices, insert_ids = list(devices), list(insert_ids)
        parts = [t.filter(self._owned(t, user, devices, insert_ids))
                 for t in (self._read(f) for f in self.files(project))]
        return pa.concat_tables(parts) if parts else SCHEMA.empty_table()

    def erase(self, project: str, user: str, devices: Iterable[str],
              insert_ids: Iterable[str]) -> int:
        """Rewrite every file of ``project`` holding rows of ``user`` without them (a file
        left empty is deleted); returns the rows removed."""
        devices, insert_ids = list(devices), list(insert_ids)
        removed = 0
        for path in self.files(project):
            table = self._read(path)
            owned = self._owned(table, user, devices, insert_ids)
            hits = pc.sum(owned).as_py() or 0
            if not hits:
                continue
            rest = table.filter(pc.invert(owned))
            if rest.num_rows:
                self.write_file(path, rest)
            else:
                self.fs.delete_file(path)
            removed += hits
        return removed


def dedupe(table: pa.Table) -> pa.Table:
    """One row per ``(project, insert_id)``: the first ingested (then the first stored);
    ordered by ``(time, insert_id)``."""
    if table.num_rows == 0:
        return table
    ordered = table.append_column("_row", pa.array(range(table.num_rows), pa.int64())).sort_by(
        [("project", "ascending"), ("insert_id", "ascending"), ("ingest_time", "ascending"),
         ("_row", "ascending")])
    project, iid = ordered.column("project"), ordered.column("insert_id")
    first = pc.or_(_changed(project), _changed(iid))
    kept = ordered.filter(first).drop_columns(["_row"])
    return kept.sort_by([("time", "ascending"), ("insert_id", "ascending")])


def _changed(column: pa.ChunkedArray) -> pa.Array:
    """True where a value differs from the one before it (the first row: True)."""
    values = column.combine_chunks()
    if len(values) == 0:
        return pa.array([], pa.bool_())
    previous = pa.concat_arrays([pa.nulls(1, values.type), values.slice(0, len(values) - 1)])
    return pc.fill_null(pc.not_equal(values, previous), True)


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return bool(fs.get_file_info(path).type != pafs.FileType.NotFound)
