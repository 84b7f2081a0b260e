"""The distributed store: the same ports as ``DuckDBStore``, on Cassandra.

Every table is keyed for the query it serves (``storage/cassandra_schema.py``); every
statement is prepared and parameterized; nothing uses ALLOW FILTERING. Writes are upserts,
so replaying a step writes the same cells again. Cassandra has no multi-table transaction:
``commit`` writes the step's rows first and its log offset last, so a crash in between
replays the step, which is harmless. The resolved identity / profile-first join that
DuckDB does in SQL is done here in Python over the fetched rows (``_resolve_sessions``),
giving the same columns and values. Times are int milliseconds, UTC; a row's ``day`` is
the UTC date of its event time or session start time.
"""

from __future__ import annotations

import time as _time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args
from cassandra.policies import RoundRobinPolicy
from cassandra.query import BatchStatement, BatchType, PreparedStatement, tuple_factory
from cassandra.util import Date

from storage.cassandra_schema import check_keyspace, migrate, set_hot_ttl
from storage.columns import EVENT_COLUMNS as _EVENT_COLUMNS
from storage.columns import EVENT_TYPES as _EVENT_TYPES
from storage.columns import PROFILE_TRAITS, profiles_table, user_keys
from storage.columns import ROW_FIELDS as _ROW_FIELDS
from storage.columns import SESSION_COLUMNS as _SESSION_COLUMNS
from storage.columns import SESSION_TYPES as _SESSION_TYPES
from storage.columns import events_table as _events_table
from storage.columns import session_tuple as _session_tuple
from storage.ports import EVENT_SCAN_COLUMNS, EventQuery, KeyRange, SessionQuery, WriteBatch
from stream.contract.event import Event
from stream.operators.sessionize import SessionRow

DAY_MS = 86_400_000
DEAD_BUCKET = 10_000  # dead letters per (project, bucket) partition
# Ids at or above this are a stream job's (``stream_dead_id``: received_at ms << 20 | hash
# bits); their partitions are one per project and UTC day, numbered from STREAM_BUCKETS and
# listed in dead_letter_buckets (the sequence's partitions are found from dead_seq).
STREAM_DEAD_IDS = 1 << 40
STREAM_BUCKETS = 1 << 40
CONCURRENCY = 64
STREAM_CONCURRENCY = 32
# Rows per replica batch of a stream job's writes, and their rough size cap (Cassandra warns
# above batch_size_warn_threshold, 5 KiB by default, and fails above 50 KiB).
STREAM_BATCH_ROWS = 40
STREAM_BATCH_BYTES = 16 << 10
_ROW_BYTES = 640  # a row without its properties, as Cassandra measures batches
# Rows per single-partition unlogged batch: ~20 event rows stay near Cassandra's 5 KiB
# batch_size_warn_threshold.
PARTITION_BATCH_ROWS = 20
_U64 = 1 << 64
_I63 = 1 << 63

_EVENT_FIELDS = _EVENT_COLUMNS  # project, insert_id, dedupe_key, …, properties
_SESSION_FIELDS = _SESSION_COLUMNS
_RESOLVED = ["resolved_user", "r_city", "r_state", "r_country", "r_postal_code", "r_lat",
             "r_long", "r_device_type", "r_os"]
_RESOLVED_TYPES = {"r_lat": pa.float64(), "r_long": pa.float64()}
_USER_DEVICE = ["project", "user_id", "device_id", "tie_time"]
_DEAD_COLUMNS = ["id", "kind", "idx", "reason", "payload", "received_at", "source", "status"]
_DEAD_TYPES = {"id": pa.int64(), "idx": pa.int32(), "received_at": pa.int64()}
# Profile columns taken from traits: (column, trait keys, numeric?).
# The profile columns a session's r_* columns take (the first eight of PROFILE_TRAITS).
_PROFILE = PROFILE_TRAITS[:8]


def day_of(ms: int) -> Date:
    """The UTC date holding ``ms``."""
    return Date(ms // DAY_MS)


def dead_bucket(letter_id: int) -> int:
    """The ``dead_letters`` partition (within a project) of a dead letter's id."""
    if letter_id >= STREAM_DEAD_IDS:
        return STREAM_BUCKETS + (letter_id >> 20) // DAY_MS
    return letter_id // DEAD_BUCKET


def _signed(key: int) -> int:
    return key - _U64 if key >= _I63 else key


def _unsigned(key: int) -> int:
    return key + _U64 if key < 0 else key


def _arrow(rows: Sequence[Sequence[Any]], columns: list[str], types: dict[str, Any]) -> pa.Table:
    cols: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in columns]
    return pa.Table.from_arrays(
        [pa.array(list(c), type=types.get(n, pa.string())) for n, c in zip(columns, cols,
                                                                          strict=True)],
        names=columns)


class CassandraStore:
    """All distributed tables in one keyspace (default ``cep``); implements the ports.

    ``ttl_days``: set the hot tables' time to live (``cassandra_schema.set_hot_ttl``; 0:
    kept until deleted); ``None`` leaves the keyspace's setting as it is (the PyFlink job's
    sinks: the gateway owns the setting)."""

    def __init__(self, hosts: Sequence[str] = ("127.0.0.1",), port: int = 9042,
                 keyspace: str = "cep", replication_factor: int = 1,
                 ttl_days: int | None = None) -> None:
        self.keyspace = check_keyspace(keyspace)
        profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(),
                                   row_factory=tuple_factory, request_timeout=30)
        self._cluster = Cluster(list(hosts), port=port, protocol_version=5,
                                execution_profiles={EXEC_PROFILE_DEFAULT: profile})
        self._session: Session = self._cluster.connect()
        migrate(self._session, self.keyspace, replication_factor)
        if ttl_days is not None:
            set_hot_ttl(self._session, self.keyspace, ttl_days)
        self._session.set_keyspace(self.keyspace)
        self._prepared: dict[str, PreparedStatement] = {}
        self._event_stmts: set[PreparedStatement] = set()  # last parameter: properties

    def close(self) -> None:
        self._cluster.shutdown()

    # -- plumbing ------------------------------------------------------------------------

    def _stmt(self, cql: str) -> PreparedStatement:
        stmt = self._prepared.get(cql)
        if stmt is None:
            stmt = self._prepared[cql] = self._session.prepare(cql)
        return stmt

    def _run(self, cql: str, params: Iterable[Sequence[Any]]) -> list[list[tuple[Any, ...]]]:
        """Run one prepared statement once per parameter tuple, concurrently; rows of each."""
        params = list(params)
        if not params:
            return []
        results = execute_concurrent_with_args(
            self._session, self._stmt(cql), params, concurrency=CONCURRENCY,
            raise_on_first_error=True, results_generator=False)
        return [list(result) for _ok, result in results]

    def _run_grouped(self, cql: str, params: Iterable[Sequence[Any]], key_width: int) -> None:
        """Write rows in unlogged batches of one partition each (the first ``key_width``
        parameters are the partition key): far fewer round trips than one statement a row,
        and no coordinator fan-out, unlike multi-partition batches."""
        batches = self._grouped(cql, params, key_width)
        execute_concurrent(self._session, [(b, ()) for b in batches], concurrency=CONCURRENCY,
                           raise_on_first_error=True, results_generator=False)

    def _grouped(self, cql: str, params: Iterable[Sequence[Any]],
                 key_width: int) -> list[BatchStatement]:
        stmt = self._stmt(cql)
        groups: dict[tuple[Any, ...], list[Sequence[Any]]] = {}
        for row in params:
            groups.setdefault(tuple(row[:key_width]), []).append(row)
        batches = []
        for rows in groups.values():
            for i in range(0, len(rows), PARTITION_BATCH_ROWS):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for row in rows[i:i + PARTITION_BATCH_ROWS]:
                    batch.add(stmt, row)
                batches.append(batch)
        return batches

    def _one(self, cql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return list(self._session.execute(self._stmt(cql), params))

    @staticmethod
    def _insert(table: str, columns: list[str]) -> str:
        return (f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})")

    # -- processing side -----------------------------------------------------------------

    def checkpoint(self) -> int:
        rows = self._one("SELECT value FROM meta WHERE key = ?", ["log_offset"])
        return int(rows[0][0]) if rows else 0

    def dedupe_keys(self) -> np.ndarray[Any, np.dtype[np.uint64]]:
        """Every stored event's dedupe key: a full scan, done once when a runner starts."""
        keys = [_unsigned(r[0]) for r in self._one("SELECT dedupe_key FROM events_by_id", [])]
        return np.array(keys, dtype=np.uint64)

    def existing_insert_ids(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        pairs = list(dict.fromkeys(pairs))
        found = self._run("SELECT project, insert_id FROM events_by_id "
                          "WHERE project = ? AND insert_id = ?", pairs)
        return {(r[0], r[1]) for rows in found for r in rows}

    def last_sessions(self, keys: list[tuple[str, str]]) -> list[SessionRow]:
        keys = list(dict.fromkeys(keys))
        fields = ", ".join(_ROW_FIELDS)
        found = self._run(f"SELECT {fields} FROM sessions_by_key "
                          "WHERE project = ? AND session_key = ?", keys)
        rows = []
        for partition in found:
            if partition:
                end, last = _ROW_FIELDS.index("end_time"), _ROW_FIELDS.index("last_insert_id")
                rows.append(_row(max(partition, key=lambda r: (r[end], r[last]))))
        return rows

    def sessions_overlapping(self, ranges: list[KeyRange]) -> list[SessionRow]:
        """Stored sessions of each (project, key) overlapping its [lo, hi]."""
        fields = ", ".join(_ROW_FIELDS)
        found = self._run(f"SELECT {fields} FROM sessions_by_key WHERE project = ? "
                          "AND session_key = ? AND start_time <= ?",
                          [(p, k, hi) for p, k, _lo, hi in ranges])
        end = _ROW_FIELDS.index("end_time")
        return [_row(r) for (_p, _k, lo, _hi), rows in zip(ranges, found, strict=True)
                for r in rows if r[end] >= lo]

    def events_in_ranges(self, ranges: list[KeyRange]) -> list[tuple[Event, str]]:
        """Stored events of each (project, key) with time in [lo, hi], with their session."""
        params = [(p, k, Date(d), lo, hi) for p, k, lo, hi in ranges
                  for d in range(lo // DAY_MS, hi // DAY_MS + 1)]
        found = self._run(
            "SELECT project, insert_id, event_name, category, time, ingest_time, "
            "distinct_user_id, device_id, producer_session_id, source_id, url, ip, "
            "user_agent, app_version, properties, session_id FROM events_by_session_key "
            "WHERE project = ? AND session_key = ? AND day = ? AND time >= ? AND time <= ?",
            params)
        return [
            (Event(project=r[0], insert_id=r[1], event_name=r[2], category=r[3], time=r[4],
                   ingest_time=r[5], distinct_user_id=r[6], device_id=r[7], session_id=r[8],
                   source_id=r[9], url=r[10], ip=r[11], user_agent=r[12], app_version=r[13],
                   properties=r[14] or "{}"),
             r[15])
            for rows in found for r in rows
        ]

    def commit(self, batch: WriteBatch) -> None:
        """Write one processing step, then its log offset. Replaying a step is harmless.

        A negative ``next_offset`` writes no offset (a writer that tracks its position
        elsewhere, like the PyFlink job's checkpoints); dead letters then need ids, so
        such writers use ``write_stream``."""
        if batch.events:
            self._write_events(batch)
        if batch.moved_events:
            self._move_events(batch.moved_events)
        if batch.deleted_sessions or batch.sessions:
            self._write_sessions(batch)
        if batch.ties:
            self._write_ties(batch.ties)
        if batch.traits:
            self._write_traits(batch.traits)
        if batch.dead:
            self._write_dead(batch)
        if batch.settled_dead:
            self._settle_dead(batch.settled_dead)
        if batch.next_offset >= 0:
            self._one("INSERT INTO meta (key, value) VALUES (?, ?)",
                      ["log_offset", batch.next_offset])

    def _write_events(self, batch: WriteBatch) -> None:
        rows, by_key, by_name = self._event_writes(batch)
        self._run(self._insert("events_by_id", _EVENT_FIELDS), rows)
        execute_concurrent(self._session, [(b, ()) for b in [*by_key, *by_name]],
                           concurrency=CONCURRENCY, raise_on_first_error=True,
                           results_generator=False)
        self._run("INSERT INTO event_names (project, day, event_name) VALUES (?, ?, ?)",
                  _name_days(rows))

    def _event_writes(self, batch: WriteBatch) -> tuple[list[tuple[Any, ...]],
                                                        list[BatchStatement],
                                                        list[BatchStatement]]:
        """Rows of events_by_id, and batches of events_by_session_key / events_by_name."""
        table = _events_table(batch.events)
        cols = {name: table.column(name).to_pylist() for name in _EVENT_FIELDS}
        cols["dedupe_key"] = [_signed(k) for k in cols["dedupe_key"]]
        rows = list(zip(*(cols[n] for n in _EVENT_FIELDS), strict=True))
        days = [day_of(t) for t in cols["time"]]
        # Partition key first in the column list, so _grouped can group by it.
        key_cols = ["project", "session_key", "day"]
        rest = [c for c in _EVENT_FIELDS if c not in key_cols]
        idx = {c: i for i, c in enumerate(_EVENT_FIELDS)}
        by_key = self._grouped(
            self._insert("events_by_session_key", [*key_cols, *rest]),
            [(r[0], r[idx["session_key"]], d, *(r[idx[c]] for c in rest))
             for r, d in zip(rows, days, strict=True)], 3)
        name_cols = ["project", "event_name", "day"]
        rest = [c for c in _EVENT_FIELDS if c not in name_cols]
        by_name = self._grouped(
            self._insert("events_by_name", [*name_cols, *rest]),
            [(r[0], r[idx["event_name"]], d, *(r[idx[c]] for c in rest))
             for r, d in zip(rows, days, strict=True)], 3)
        return rows, by_key, by_name

    # -- a stream job's writes -------------------------------------------------------------

    def write_stream(self, write: StreamWrite) -> None:
        """Write a stream job's batch: upserts only, no reads before writing, all at once.

        Unlike ``commit`` nothing is looked up: events (moved ones included) are whole rows,
        sessions come once each with the by-start rows they leave behind, ties, traits and
        dead letters carry their own write time (``USING TIMESTAMP``: the latest tie, trait
        and letter state wins whatever order replays write them in). Only settlements read
        (a settlement must not create a letter that was never stored)."""
        batch = write.batch
        rows: list[tuple[Any, Sequence[Any]]] = []  # written in replica batches
        if batch.events:
            rows += self._event_rows(batch)
        rows += self._session_writes(write)
        work: list[tuple[Any, Sequence[Any]]] = [(b, ()) for b in self._replica_batches(rows)]
        if batch.ties:
            stmt = self._stmt(self._insert("identities", ["project", "device_id", "user_id",
                                                          "tie_time"]) + " USING TIMESTAMP ?")
            work += [(stmt, (p, d, u, t, t * 1000)) for p, d, u, t in batch.ties]
            history = self._stmt(self._insert("user_devices", _USER_DEVICE))
            work += [(history, (p, u, d, t)) for p, d, u, t in batch.ties]
        if batch.traits:
            stmt = self._stmt(self._insert("profile_traits", [
                "project", "user_id", "key", "value_text", "value_num", "set_at"])
                + " USING TIMESTAMP ?")
            # the latest set_at of each key wins (on a tie, the later one), as the write
            # timestamps will decide between batches
            latest = sorted(batch.traits, key=lambda t: t[4])
            work += [(stmt, (*row, row[-1] * 1000)) for row in _trait_rows(latest)]
        if batch.dead:
            stmt = self._stmt(self._insert("dead_letters", [
                "project", "bucket", "id", "kind", "idx", "reason", "payload", "received_at",
                "source", "status"]) + " USING TIMESTAMP ?")
            for d, letter_id in zip(batch.dead, write.dead_ids, strict=True):
                work.append((stmt, (d.project, dead_bucket(letter_id), letter_id, d.kind,
                                    d.index, d.reason, d.payload.decode("utf-8", "replace"),
                                    d.received_at, d.source, "open", d.received_at * 1000)))
            listed = self._stmt("INSERT INTO dead_letter_buckets (project, bucket) "
                                "VALUES (?, ?)")
            work += [(listed, key) for key in dict.fromkeys(
                (d.project, dead_bucket(i)) for d, i in zip(batch.dead, write.dead_ids,
                                                            strict=True))]
        if work:
            execute_concurrent(self._session, work, concurrency=STREAM_CONCURRENCY,
                               raise_on_first_error=True, results_generator=False)
        if batch.settled_dead:
            self._settle_dead(batch.settled_dead)

    def _event_rows(self, batch: WriteBatch) -> list[tuple[Any, Sequence[Any]]]:
        table = _events_table(batch.events)
        cols = {name: table.column(name).to_pylist() for name in _EVENT_FIELDS}
        cols["dedupe_key"] = [_signed(k) for k in cols["dedupe_key"]]
        rows = list(zip(*(cols[n] for n in _EVENT_FIELDS), strict=True))
        days = [day_of(t) for t in cols["time"]]
        by_id = self._event_stmt(self._insert("events_by_id", _EVENT_FIELDS))
        key_cols = ["project", "session_key", "day"]
        rest = [c for c in _EVENT_FIELDS if c not in key_cols]
        idx = [_EVENT_FIELDS.index(c) for c in rest]
        sk = _EVENT_FIELDS.index("session_key")
        by_key = self._event_stmt(self._insert("events_by_session_key", [*key_cols, *rest]))
        name_cols = ["project", "event_name", "day"]
        name_rest = [_EVENT_FIELDS.index(c) for c in _EVENT_FIELDS if c not in name_cols]
        en = _EVENT_FIELDS.index("event_name")
        by_name = self._event_stmt(self._insert("events_by_name", [
            *name_cols, *(_EVENT_FIELDS[i] for i in name_rest)]))
        names = self._stmt("INSERT INTO event_names (project, day, event_name) "
                           "VALUES (?, ?, ?)")
        out: list[tuple[Any, Sequence[Any]]] = [(by_id, r) for r in rows]
        out += [(by_key, (r[0], r[sk], d, *(r[i] for i in idx)))
                for r, d in zip(rows, days, strict=True)]
        out += [(by_name, (r[0], r[en], d, *(r[i] for i in name_rest)))
                for r, d in zip(rows, days, strict=True)]
        out += [(names, key) for key in _name_days(rows)]
        return out

    def _event_stmt(self, cql: str) -> PreparedStatement:
        """A prepared event insert, marked as one whose last parameter is ``properties``."""
        stmt = self._stmt(cql)
        self._event_stmts.add(stmt)
        return stmt

    def _replica_batches(self, rows: list[tuple[Any, Sequence[Any]]]) -> list[Any]:
        """``rows`` bound and packed into unlogged batches of rows whose partitions share
        their first replica, up to ``STREAM_BATCH_ROWS`` rows or about ``STREAM_BATCH_BYTES``:
        the coordinator (token-aware routing sends it to that replica) applies a batch
        locally, and the client sends one request for dozens of rows — the Python driver
        costs ~0.3 ms of CPU per request, more than Cassandra spends on a row. A row too
        big for a batch goes alone."""
        metadata = self._cluster.metadata
        replica_of: dict[bytes, Any] = {}
        groups: dict[Any, list[tuple[Any, int]]] = {}
        alone: list[Any] = []
        for stmt, params in rows:
            bound = stmt.bind(params)
            # the long text columns of an event row, with room for the rest
            size = _ROW_BYTES + len(params[-1] or "") if stmt in self._event_stmts else _ROW_BYTES
            if size > STREAM_BATCH_BYTES:
                alone.append(bound)
                continue
            key = bound.routing_key
            replica = replica_of.get(key)
            if replica is None:
                hosts = metadata.get_replicas(self.keyspace, key)
                replica = replica_of[key] = hosts[0] if hosts else None
            groups.setdefault(replica, []).append((bound, size))
        batches: list[Any] = list(alone)
        for members in groups.values():
            batch, rows_in, bytes_in = BatchStatement(batch_type=BatchType.UNLOGGED), 0, 0
            for bound, size in members:
                if rows_in and (rows_in >= STREAM_BATCH_ROWS
                                or bytes_in + size > STREAM_BATCH_BYTES):
                    batches.append(batch)
                    batch, rows_in, bytes_in = BatchStatement(batch_type=BatchType.UNLOGGED), 0, 0
                batch.add(bound)
                rows_in, bytes_in = rows_in + 1, bytes_in + size
            if rows_in:
                batches.append(batch)
        return batches

    def _session_writes(self, write: StreamWrite) -> list[tuple[Any, Sequence[Any]]]:
        batch = write.batch
        work: list[tuple[Any, Sequence[Any]]] = []
        by_key = self._stmt("DELETE FROM sessions_by_key WHERE project = ? AND session_key = ? "
                            "AND start_time = ? AND session_id = ?")
        by_day = self._stmt("DELETE FROM sessions_by_day WHERE project = ? AND day = ? "
                            "AND start_time = ? AND session_id = ?")
        for project, sid, key, start in write.stale_sessions:
            work.append((by_key, (project, key, start, sid)))
            work.append((by_day, (project, day_of(start), start, sid)))
        gone = self._stmt("DELETE FROM sessions_by_id WHERE project = ? AND session_id = ?")
        work += [(gone, ref) for ref in batch.deleted_sessions]
        if batch.sessions:
            rows = [_session_tuple(r, x) for r, x in batch.sessions]
            days = [day_of(r.start_time) for r, _x in batch.sessions]
            for table in ("sessions_by_id", "sessions_by_key"):
                stmt = self._stmt(self._insert(table, _SESSION_FIELDS))
                work += [(stmt, row) for row in rows]
            stmt = self._stmt(self._insert("sessions_by_day", [*_SESSION_FIELDS, "day"]))
            work += [(stmt, (*row, d)) for row, d in zip(rows, days, strict=True)]
            stmt = self._stmt("INSERT INTO session_days (project, day) VALUES (?, ?)")
            work += [(stmt, key) for key in dict.fromkeys(
                (r.project, d) for (r, _x), d in zip(batch.sessions, days, strict=True))]
        return work

    def _move_events(self, moves: list[tuple[str, str, str]]) -> None:
        # An UPDATE's cells get a TTL of their own: give them what the row has left, so a
        # moved event does not outlive the rest of its row as a row of nulls.
        found = self._run("SELECT project, insert_id, event_name, session_key, time, "
                          "TTL(event_name) FROM events_by_id WHERE project = ? "
                          "AND insert_id = ?", [(p, i) for p, i, _ in moves])
        by_id: list[tuple[Any, ...]] = []
        by_key: list[tuple[Any, ...]] = []
        by_name: list[tuple[Any, ...]] = []
        for (project, iid, sid), rows in zip(moves, found, strict=True):
            if not rows:
                continue  # DuckDB's UPDATE touches no row either
            _p, _i, name, key, t, ttl = rows[0]
            left = int(ttl or 0)  # 0: no TTL
            by_id.append((left, sid, project, iid))
            by_key.append((left, sid, project, key, day_of(t), t, iid))
            by_name.append((left, sid, project, name, day_of(t), t, iid))
        self._run("UPDATE events_by_id USING TTL ? SET session_id = ? WHERE project = ? "
                  "AND insert_id = ?", by_id)
        self._run("UPDATE events_by_session_key USING TTL ? SET session_id = ? "
                  "WHERE project = ? AND session_key = ? AND day = ? AND time = ? "
                  "AND insert_id = ?", by_key)
        self._run("UPDATE events_by_name USING TTL ? SET session_id = ? WHERE project = ? "
                  "AND event_name = ? AND day = ? AND time = ? AND insert_id = ?", by_name)

    def _write_sessions(self, batch: WriteBatch) -> None:
        new = {(r.project, r.session_id): (r, x) for r, x in batch.sessions}
        ids = list(dict.fromkeys([*batch.deleted_sessions, *new]))
        found = self._run("SELECT project, session_id, session_key, start_time FROM "
                          "sessions_by_id WHERE project = ? AND session_id = ?", ids)
        stale_key, stale_day, gone = [], [], []
        for (project, sid), rows in zip(ids, found, strict=True):
            if not rows:
                continue
            _p, _s, key, start = rows[0]
            fresh = new.get((project, sid))
            if fresh is None:
                gone.append((project, sid))
            if fresh is None or (fresh[0].session_key, fresh[0].start_time) != (key, start):
                stale_key.append((project, key, start, sid))
            if fresh is None or fresh[0].start_time != start:
                stale_day.append((project, day_of(start), start, sid))
        self._run("DELETE FROM sessions_by_key WHERE project = ? AND session_key = ? "
                  "AND start_time = ? AND session_id = ?", stale_key)
        self._run("DELETE FROM sessions_by_day WHERE project = ? AND day = ? "
                  "AND start_time = ? AND session_id = ?", stale_day)
        self._run("DELETE FROM sessions_by_id WHERE project = ? AND session_id = ?", gone)
        rows = [_session_tuple(r, x) for r, x in new.values()]
        self._run(self._insert("sessions_by_id", _SESSION_FIELDS), rows)
        self._run(self._insert("sessions_by_key", _SESSION_FIELDS), rows)
        self._run(self._insert("sessions_by_day", [*_SESSION_FIELDS, "day"]),
                  [(*row, day_of(r.start_time)) for row, (r, _x) in zip(rows, new.values(),
                                                                          strict=True)])
        self._run("INSERT INTO session_days (project, day) VALUES (?, ?)",
                  {(r.project, day_of(r.start_time)) for r, _x in new.values()})

    def _write_ties(self, ties: list[tuple[str, str, str, int]]) -> None:
        # A tie replaces the stored one only if it is not older (DuckDB: tie_time >= old).
        latest: dict[tuple[str, str], tuple[str, int]] = {}
        for project, device, user, at in ties:
            old = latest.get((project, device))
            if old is None or at >= old[1]:
                latest[(project, device)] = (user, at)
        keys = list(latest)
        found = self._run("SELECT tie_time FROM identities WHERE project = ? AND device_id = ?",
                          keys)
        writes = [(p, d, *latest[(p, d)]) for (p, d), rows in zip(keys, found, strict=True)
                  if not rows or rows[0][0] is None or latest[(p, d)][1] >= rows[0][0]]
        self._run(self._insert("identities", ["project", "device_id", "user_id", "tie_time"]),
                  writes)
        self._run(self._insert("user_devices", _USER_DEVICE),
                  [(p, u, d, t) for p, d, u, t in ties])

    def _write_traits(self, traits: list[tuple[str, str, str, Any, int]]) -> None:
        self._run(self._insert("profile_traits", ["project", "user_id", "key", "value_text",
                                                  "value_num", "set_at"]),
                  _trait_rows(traits))

    def _write_dead(self, batch: WriteBatch) -> None:
        """Dead letters get ids from one deployment-wide sequence, like DuckDB's; a replayed
        step finds the first id it was given and reuses it, so it duplicates nothing."""
        step = self._one("SELECT first_id FROM dead_letter_steps WHERE next_offset = ?",
                         [batch.next_offset])
        if step:
            first = int(step[0][0])
        else:
            seq = self._one("SELECT value FROM meta WHERE key = ?", ["dead_seq"])
            first = (int(seq[0][0]) if seq else 0) + 1
            self._one("INSERT INTO dead_letter_steps (next_offset, first_id) VALUES (?, ?)",
                      [batch.next_offset, first])
        rows = [(d.project, (first + i) // DEAD_BUCKET, first + i, d.kind, d.index, d.reason,
                 d.payload.decode("utf-8", "replace"), d.received_at, d.source, "open")
                for i, d in enumerate(batch.dead)]
        self._run(self._insert("dead_letters", ["project", "bucket", "id", "kind", "idx",
                                                "reason", "payload", "received_at", "source",
                                                "status"]), rows)
        last = first + len(batch.dead) - 1
        seq = self._one("SELECT value FROM meta WHERE key = ?", ["dead_seq"])
        if not seq or int(seq[0][0]) < last:
            self._one("INSERT INTO meta (key, value) VALUES (?, ?)", ["dead_seq", last])

    def _settle_dead(self, settled: list[tuple[str, int]]) -> None:
        keys = [(p, dead_bucket(i), i) for p, i in settled]
        found = self._run("SELECT id FROM dead_letters WHERE project = ? AND bucket = ? "
                          "AND id = ?", keys)
        now = int(_time.time() * 1000)
        self._run("UPDATE dead_letters SET status = ?, settled_at = ? WHERE project = ? "
                  "AND bucket = ? AND id = ?",
                  [("replayed", now, *k) for k, rows in zip(keys, found, strict=True) if rows])

    # -- query side ----------------------------------------------------------------------

    def scan_sessions(self, project: str, query: SessionQuery) -> pa.Table:
        if query.end <= query.start:
            return self._resolved(project, [])
        days = self._one("SELECT day FROM session_days WHERE project = ? AND day >= ? "
                         "AND day <= ?",
                         [project, day_of(query.start), day_of(query.end - 1)])
        found = self._run(
            f"SELECT {', '.join(_SESSION_FIELDS)} FROM sessions_by_day WHERE project = ? "
            "AND day = ? AND start_time >= ? AND start_time < ?",
            [(project, d[0], query.start, query.end) for d in days])
        table = self._resolved(project, [r for rows in found for r in rows])
        filters = [("r_city", query.city), ("r_state", query.state),
                   ("r_country", query.country), ("r_device_type", query.device_type),
                   ("r_os", query.os), ("app_version", query.app_version),
                   ("resolved_user", query.user_id), ("device_id", query.device_id),
                   ("converted", query.converted)]
        for column, value in filters:
            if value is not None:
                mask = pa.array([v is not None and v == value
                                 for v in table.column(column).to_pylist()], pa.bool_())
                table = table.filter(mask)
        return table.sort_by([("start_time", "ascending"), ("session_id", "ascending")])

    def session(self, project: str, session_id: str) -> pa.Table:
        rows = self._one(f"SELECT {', '.join(_SESSION_FIELDS)} FROM sessions_by_id "
                         "WHERE project = ? AND session_id = ?", [project, session_id])
        return self._resolved(project, rows)

    def session_events(self, project: str, session_id: str) -> pa.Table:
        found = self._one("SELECT session_key, start_time, end_time FROM sessions_by_id "
                          "WHERE project = ? AND session_id = ?", [project, session_id])
        rows: list[tuple[Any, ...]] = []
        if found:
            key, start, end = found[0]
            params = [(project, key, Date(d), start, end)
                      for d in range(start // DAY_MS, end // DAY_MS + 1)]
            sid = _EVENT_FIELDS.index("session_id")
            rows = [r for part in self._run(
                f"SELECT {', '.join(_EVENT_FIELDS)} FROM events_by_session_key "
                "WHERE project = ? AND session_key = ? AND day = ? AND time >= ? "
                "AND time <= ?", params) for r in part if r[sid] == session_id]
        dk = _EVENT_FIELDS.index("dedupe_key")
        rows = [(*r[:dk], _unsigned(r[dk]), *r[dk + 1:]) for r in rows]
        user, device = _EVENT_FIELDS.index("distinct_user_id"), _EVENT_FIELDS.index("device_id")
        ties = self._identities(project, {r[device] for r in rows if r[device] is not None})
        resolved = [(*r, r[user] if r[user] is not None else ties.get(r[device], r[device]))
                    for r in rows]
        resolved.sort(key=lambda r: (r[_EVENT_FIELDS.index("time")], r[1]))
        return _arrow(resolved, [*_EVENT_FIELDS, "resolved_user"], _EVENT_TYPES)

    def scan_events(self, project: str, query: EventQuery) -> pa.Table:
        unknown = set(query.columns) - set(EVENT_SCAN_COLUMNS)
        if unknown:
            raise ValueError(f"columns: not scannable: {sorted(unknown)}")
        raw = list(dict.fromkeys(["time", "insert_id", *(
            c for c in query.columns if c not in ("user_id", "user_key"))]))
        resolve = ("user_id" in query.columns or "user_key" in query.columns
                   or query.user_id is not None)
        if resolve:
            raw += [c for c in ("distinct_user_id", "device_id") if c not in raw]
        parts: list[tuple[Any, ...]] = []
        if query.end > query.start and query.names != ():
            listed = self._one("SELECT day, event_name FROM event_names WHERE project = ? "
                               "AND day >= ? AND day <= ?",
                               [project, day_of(max(query.start, 0)),
                                day_of(query.end - 1)])
            wanted = set(query.names) if query.names is not None else None
            parts = [(project, name, day, query.start, query.end) for day, name in listed
                     if wanted is None or name in wanted]
        found = self._run(f"SELECT {', '.join(raw)} FROM events_by_name WHERE project = ? "
                          "AND event_name = ? AND day = ? AND time >= ? AND time < ?", parts)
        rows = [r for part in found for r in part]
        if query.ordered:
            rows.sort(key=lambda r: (r[0], r[1]))
        at = {c: i for i, c in enumerate(raw)}
        columns: dict[str, list[Any]] = {c: [r[i] for r in rows] for c, i in at.items()}
        if resolve:
            devices = columns["device_id"]
            ties = self._identities(project, {d for d in devices if d is not None})
            columns["user_id"] = [u if u is not None else ties.get(d, d) for u, d in zip(
                columns["distinct_user_id"], devices, strict=True)]
            if query.user_id is not None:  # no table is keyed by the resolved user
                keep = [i for i, u in enumerate(columns["user_id"]) if u == query.user_id]
                columns = {c: [values[i] for i in keep] for c, values in columns.items()}
        if "dedupe_key" in columns:
            columns["dedupe_key"] = [_unsigned(k) for k in columns["dedupe_key"]]
        if "user_key" in query.columns:
            columns["user_key"] = user_keys(columns["user_id"])
        types = {"time": pa.int64(), "ingest_time": pa.int64(), "dedupe_key": pa.uint64(),
                 "user_key": pa.uint64()}
        return pa.Table.from_arrays(
            [pa.array(columns[c], types.get(c, pa.string())) for c in query.columns],
            names=list(query.columns))

    def scan_profiles(self, project: str, users: list[str]) -> pa.Table:
        keys = sorted(set(users))
        found = self._run("SELECT key, value_text, value_num FROM profile_traits "
                          "WHERE project = ? AND user_id = ?", [(project, u) for u in keys])
        return profiles_table([(u, *r) for u, rows in zip(keys, found, strict=True)
                               for r in rows])

    def dead_letters(self, project: str, status: str | None, limit: int,
                     after_id: int) -> pa.Table:
        seq = self._one("SELECT value FROM meta WHERE key = ?", ["dead_seq"])
        last = int(seq[0][0]) if seq else 0
        out: list[tuple[Any, ...]] = []
        bucket = max(after_id + 1, 0) // DEAD_BUCKET
        buckets: list[int] = []
        while bucket <= last // DEAD_BUCKET and bucket < STREAM_BUCKETS:
            buckets.append(bucket)
            bucket += 1
        lowest = dead_bucket(max(after_id + 1, STREAM_DEAD_IDS))
        stream_buckets = [int(r[0]) for r in self._one(
            "SELECT bucket FROM dead_letter_buckets WHERE project = ? AND bucket >= ?",
            [project, lowest])]
        for bucket in [*buckets, *stream_buckets]:
            if len(out) >= limit:
                break
            for r in self._one(f"SELECT {', '.join(_DEAD_COLUMNS)} FROM dead_letters "
                               "WHERE project = ? AND bucket = ? AND id > ?",
                               [project, bucket, after_id]):
                if not status or r[-1] == status:
                    out.append(r)
        return _arrow(out[:max(limit, 0)], _DEAD_COLUMNS, _DEAD_TYPES)

    def _identities(self, project: str, devices: set[str]) -> dict[str, str]:
        keys = sorted(devices)
        found = self._run("SELECT user_id FROM identities WHERE project = ? AND device_id = ?",
                          [(project, d) for d in keys])
        return {d: rows[0][0] for d, rows in zip(keys, found, strict=True)
                if rows and rows[0][0] is not None}

    def _profiles(self, project: str, users: set[str]) -> dict[str, dict[str, Any]]:
        """Each user's profile columns, as DuckDB's ``profiles`` view computes them."""
        keys = sorted(users)
        found = self._run("SELECT key, value_text, value_num FROM profile_traits "
                          "WHERE project = ? AND user_id = ?", [(project, u) for u in keys])
        profiles = {}
        for user, rows in zip(keys, found, strict=True):
            if not rows:
                continue
            traits = {k: (text, num) for k, text, num in rows}
            profile: dict[str, Any] = {}
            for column, names, numeric in _PROFILE:
                values = [traits[n][1 if numeric else 0] for n in names if n in traits]
                values = [v for v in values if v is not None]
                profile[column] = max(values) if values else None
            profiles[user] = profile
        return profiles

    def _resolved(self, project: str, rows: list[tuple[Any, ...]]) -> pa.Table:
        """Session rows plus ``resolved_user`` (own user, else the device's tie, else the
        device) and the ``r_*`` columns (profile first, else the session's own)."""
        user, device = _SESSION_FIELDS.index("user_id"), _SESSION_FIELDS.index("device_id")
        ties = self._identities(project, {r[device] for r in rows if r[device] is not None})
        resolved_users = [r[user] if r[user] is not None else ties.get(r[device], r[device])
                          for r in rows]
        profiles = self._profiles(project, {u for u in resolved_users if u is not None})
        out = []
        for r, ru in zip(rows, resolved_users, strict=True):
            profile = profiles.get(ru, {}) if ru is not None else {}
            extra = [ru]
            for column, _names, _numeric in _PROFILE:
                own = r[_SESSION_FIELDS.index(column)]
                value = profile.get(column)
                extra.append(value if value is not None else own)
            out.append((*r, *extra))
        return _arrow(out, [*_SESSION_FIELDS, *_RESOLVED],
                      {**_SESSION_TYPES, **_RESOLVED_TYPES})


@dataclass(slots=True)
class StreamWrite:
    """One batch of a stream job (``CassandraStore.write_stream``).

    ``batch``: its ``next_offset`` is ignored; ``events`` hold every event written or moved
    (whole rows, with their current session); ``sessions`` each session once, as it is now;
    ``deleted_sessions`` the sessions gone. ``stale_sessions``: ``(project, session id,
    session key, start time)`` of by-start rows to delete — a deleted session's, or one
    whose start moved. ``dead_ids[i]`` is ``batch.dead[i]``'s id (``stream_dead_id``).
    """

    batch: WriteBatch
    stale_sessions: list[tuple[str, str, str, int]] = field(default_factory=list)
    dead_ids: list[int] = field(default_factory=list)


def _name_days(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The distinct ``(project, day, event_name)`` of event rows, for ``event_names``."""
    name, t = _EVENT_FIELDS.index("event_name"), _EVENT_FIELDS.index("time")
    return list(dict.fromkeys((r[0], day_of(r[t]), r[name]) for r in rows))


def _trait_rows(traits: list[tuple[str, str, str, Any, int]]) -> list[tuple[Any, ...]]:
    """``profile_traits`` rows; later traits of the same key win, as with DuckDB's INSERT OR
    REPLACE."""
    rows = []
    for project, user, key, value, at in traits:
        num = (float(value) if isinstance(value, int | float) and not isinstance(value, bool)
               else None)
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        rows.append((project, user, key, text, num, at))
    return list({(r[0], r[1], r[2]): r for r in rows}.values())


def _row(r: Sequence[Any]) -> SessionRow:
    return SessionRow(**dict(zip(_ROW_FIELDS, r, strict=True)))
