"""The embedded store: events, sessions, identities, profiles and dead letters in DuckDB.

One writer (the embedded runner) commits whole processing steps in one transaction,
together with the log offset they cover, so a crash at any point resumes exactly where
the last commit left off. Readers use their own cursors (DuckDB is MVCC). Batches arrive
as Arrow tables sorted by session key and time, which keeps zone maps useful.
All statements are parameterized; Arrow tables are registered, never interpolated.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa

from storage.columns import ROW_FIELDS as _ROW_FIELDS
from storage.columns import SESSION_COLUMNS as _SESSION_COLUMNS
from storage.columns import SESSION_TYPES as _SESSION_TYPES
from storage.columns import events_table as _events_table
from storage.columns import profiles_table
from storage.columns import session_tuple as _session_tuple
from storage.ports import EVENT_SCAN_COLUMNS, EventQuery, KeyRange, SessionQuery, WriteBatch
from stream.contract.event import Event
from stream.operators.dedupe import dedupe_key
from stream.operators.sessionize import SessionRow

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT);
CREATE TABLE IF NOT EXISTS events (
    project VARCHAR, insert_id VARCHAR, dedupe_key UBIGINT, event_name VARCHAR,
    category VARCHAR, time BIGINT, ingest_time BIGINT, distinct_user_id VARCHAR,
    device_id VARCHAR, session_key VARCHAR, session_id VARCHAR, producer_session_id VARCHAR,
    source_id VARCHAR, url VARCHAR, ip VARCHAR, user_agent VARCHAR, city VARCHAR,
    state VARCHAR, country VARCHAR, postal_code VARCHAR, lat DOUBLE, long DOUBLE,
    device_type VARCHAR, os VARCHAR, os_version VARCHAR, browser VARCHAR,
    app_version VARCHAR, properties VARCHAR
);
CREATE TABLE IF NOT EXISTS sessions (
    project VARCHAR, session_id VARCHAR, session_key VARCHAR, producer BOOLEAN,
    device_id VARCHAR, user_id VARCHAR, start_time BIGINT, end_time BIGINT, events INTEGER,
    landing_url VARCHAR, exit_url VARCHAR, first_event VARCHAR, last_event VARCHAR,
    converted BOOLEAN, closed BOOLEAN, crashed BOOLEAN, last_insert_id VARCHAR,
    source_id VARCHAR, app_version VARCHAR, ip VARCHAR, user_agent VARCHAR, city VARCHAR,
    state VARCHAR, country VARCHAR, postal_code VARCHAR, lat DOUBLE, long DOUBLE,
    device_type VARCHAR, os VARCHAR, browser VARCHAR,
    PRIMARY KEY (project, session_id)
);
CREATE TABLE IF NOT EXISTS identities (
    project VARCHAR, device_id VARCHAR, user_id VARCHAR, tie_time BIGINT,
    PRIMARY KEY (project, device_id)
);
CREATE TABLE IF NOT EXISTS profile_traits (
    project VARCHAR, user_id VARCHAR, key VARCHAR, value_text VARCHAR, value_num DOUBLE,
    set_at BIGINT, PRIMARY KEY (project, user_id, key)
);
CREATE SEQUENCE IF NOT EXISTS dead_letter_ids START 1;
CREATE TABLE IF NOT EXISTS dead_letters (
    id BIGINT DEFAULT nextval('dead_letter_ids'), project VARCHAR, kind VARCHAR,
    idx INTEGER, reason VARCHAR, payload VARCHAR, received_at BIGINT, source VARCHAR,
    status VARCHAR, settled_at BIGINT
);
CREATE OR REPLACE VIEW profiles AS
SELECT project, user_id,
    max(value_text) FILTER (WHERE key = 'city') AS city,
    max(value_text) FILTER (WHERE key = 'state') AS state,
    max(value_text) FILTER (WHERE key = 'country') AS country,
    max(value_text) FILTER (WHERE key = 'postal_code') AS postal_code,
    max(value_num) FILTER (WHERE key IN ('lat', 'latitude')) AS lat,
    max(value_num) FILTER (WHERE key IN ('long', 'longitude', 'lng')) AS long,
    max(value_text) FILTER (WHERE key = 'device_type') AS device_type,
    max(value_text) FILTER (WHERE key = 'os') AS os,
    max(value_num) FILTER (WHERE key = 'age') AS age,
    max(value_text) FILTER (WHERE key = 'gender') AS gender,
    max(value_text) FILTER (WHERE key = 'email') AS email,
    max(value_text) FILTER (WHERE key = 'phone') AS phone,
    max(set_at) AS updated_at
FROM profile_traits GROUP BY project, user_id;
"""

# Without place or device columns the profiles (a GROUP BY over every trait) are not needed.
SESSIONS_LEAN = """
SELECT s.*, COALESCE(s.user_id, i.user_id, s.device_id) AS resolved_user
FROM sessions s
LEFT JOIN identities i ON i.project = s.project AND i.device_id = s.device_id
"""

_SESSION_SCAN = {*_SESSION_COLUMNS, "resolved_user", "r_city", "r_state", "r_country",
                 "r_postal_code", "r_lat", "r_long", "r_device_type", "r_os"}

SESSIONS_RESOLVED = """
SELECT s.*, COALESCE(s.user_id, i.user_id, s.device_id) AS resolved_user,
    COALESCE(p.city, s.city) AS r_city, COALESCE(p.state, s.state) AS r_state,
    COALESCE(p.country, s.country) AS r_country,
    COALESCE(p.postal_code, s.postal_code) AS r_postal_code,
    COALESCE(p.lat, s.lat) AS r_lat, COALESCE(p.long, s.long) AS r_long,
    COALESCE(p.device_type, s.device_type) AS r_device_type, COALESCE(p.os, s.os) AS r_os
FROM sessions s
LEFT JOIN identities i ON i.project = s.project AND i.device_id = s.device_id
LEFT JOIN profiles p ON p.project = s.project
    AND p.user_id = COALESCE(s.user_id, i.user_id, s.device_id)
"""


# Scan columns that are not plain event columns.
_RESOLVED = "COALESCE(e.distinct_user_id, i.user_id, e.device_id)"
_SCAN_SQL = {"user_id": _RESOLVED, "user_key": f"hash({_RESOLVED})"}


def _table(rows: Sequence[Sequence[Any]], columns: list[str], types: dict[str, Any]) -> pa.Table:
    cols: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in columns]
    arrays = [
        pa.array(list(c), type=types.get(name, pa.string()))
        for name, c in zip(columns, cols, strict=True)
    ]
    return pa.Table.from_arrays(arrays, names=columns)


class DuckDBStore:
    """All embedded tables in one DuckDB file; implements the storage ports."""

    def __init__(self, path: Path | str, memory_limit: str = "128MB") -> None:
        self._path = str(path)
        self._con = duckdb.connect(self._path)
        self._con.execute(SCHEMA)
        self._con.execute("SET checkpoint_threshold = '256MB'")
        # DuckDB's buffer pool defaults to 80% of RAM; the gateway shares the machine, so
        # cap it (queries larger than this spill to disk rather than growing the process).
        self._con.execute("SET memory_limit = ?", [memory_limit])
        self._write_lock = threading.Lock()
        self._local = threading.local()

    # -- connections ---------------------------------------------------------------------

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the calling thread (DuckDB connections are not thread-safe)."""
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cur = cur
        return cur

    def close(self) -> None:
        self._con.close()

    # -- processing side -----------------------------------------------------------------

    def checkpoint(self) -> int:
        rows = self.cursor().execute("SELECT value FROM meta WHERE key = 'log_offset'").fetchall()
        return int(rows[0][0]) if rows else 0

    def dedupe_keys(self) -> np.ndarray[Any, np.dtype[np.uint64]]:
        table = self.cursor().sql("SELECT dedupe_key FROM events").to_arrow_table()
        arr = table.column(0).to_numpy() if table.num_rows else np.empty(0, np.uint64)
        return np.asarray(arr, dtype=np.uint64)

    def existing_insert_ids(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        if not pairs:
            return set()
        probe = pa.table(
            {
                "project": [p for p, _ in pairs],
                "insert_id": [i for _, i in pairs],
                "k": pa.array([dedupe_key(p, i) for p, i in pairs], pa.uint64()),
            }
        )
        cur = self.cursor()
        cur.register("probe", probe)
        try:
            rows = cur.execute(
                "SELECT e.project, e.insert_id FROM events e JOIN probe p "
                "ON e.dedupe_key = p.k AND e.project = p.project AND e.insert_id = p.insert_id"
            ).fetchall()
        finally:
            cur.unregister("probe")
        return {(r[0], r[1]) for r in rows}

    def last_sessions(self, keys: list[tuple[str, str]]) -> list[SessionRow]:
        if not keys:
            return []
        probe = pa.table({"project": [p for p, _ in keys], "session_key": [k for _, k in keys]})
        cur = self.cursor()
        cur.register("probe", probe)
        try:
            rows = cur.execute(
                f"SELECT {', '.join('s.' + f for f in _ROW_FIELDS)} FROM sessions s "
                "JOIN probe p ON s.project = p.project AND s.session_key = p.session_key "
                "QUALIFY row_number() OVER (PARTITION BY s.project, s.session_key "
                "ORDER BY s.end_time DESC, s.last_insert_id DESC) = 1"
            ).fetchall()
        finally:
            cur.unregister("probe")
        return [_row(r) for r in rows]

    def sessions_overlapping(self, ranges: list[KeyRange]) -> list[SessionRow]:
        """Stored sessions of each (project, key) overlapping its [lo, hi], in one query."""
        if not ranges:
            return []
        rows = self._probe_query(
            ranges,
            f"SELECT {', '.join('s.' + f for f in _ROW_FIELDS)} FROM sessions s JOIN probe p "
            "ON s.project = p.project AND s.session_key = p.session_key "
            "AND s.end_time >= p.lo AND s.start_time <= p.hi",
        )
        return [_row(r) for r in rows]

    def events_in_ranges(self, ranges: list[KeyRange]) -> list[tuple[Event, str]]:
        """Stored events of each (project, key) with time in [lo, hi], with their session."""
        if not ranges:
            return []
        rows = self._probe_query(
            ranges,
            "SELECT e.project, e.insert_id, e.event_name, e.category, e.time, e.ingest_time, "
            "e.distinct_user_id, e.device_id, e.producer_session_id, e.source_id, e.url, e.ip, "
            "e.user_agent, e.app_version, e.session_id FROM events e JOIN probe p "
            "ON e.project = p.project AND e.session_key = p.session_key "
            "AND e.time BETWEEN p.lo AND p.hi",
        )
        return [
            (
                Event(
                    project=r[0], insert_id=r[1], event_name=r[2], category=r[3], time=r[4],
                    ingest_time=r[5], distinct_user_id=r[6], device_id=r[7], session_id=r[8],
                    source_id=r[9], url=r[10], ip=r[11], user_agent=r[12], app_version=r[13],
                ),
                r[14],
            )
            for r in rows
        ]

    def _probe_query(self, ranges: list[KeyRange], sql: str) -> list[tuple[Any, ...]]:
        probe = pa.table({
            "project": [r[0] for r in ranges], "session_key": [r[1] for r in ranges],
            "lo": pa.array([r[2] for r in ranges], pa.int64()),
            "hi": pa.array([r[3] for r in ranges], pa.int64()),
        })
        cur = self.cursor()
        cur.register("probe", probe)
        try:
            return cur.execute(sql).fetchall()
        finally:
            cur.unregister("probe")

    def commit(self, batch: WriteBatch) -> None:
        """Write one processing step and its log offset in a single transaction."""
        tables = _batch_tables(batch)
        with self._write_lock, self._transaction() as cur:
            for name, table in tables.items():
                cur.register(name, table)
            try:
                if batch.events:
                    cur.execute(
                        "INSERT INTO events SELECT * FROM b_events "
                        "ORDER BY project, session_key, time"
                    )
                if batch.moved_events:
                    cur.execute(
                        "UPDATE events SET session_id = m.session_id FROM b_moves m "
                        "WHERE events.project = m.project "
                        "AND events.insert_id = m.insert_id"
                    )
                if batch.deleted_sessions:
                    cur.execute(
                        "DELETE FROM sessions WHERE (project, session_id) IN "
                        "(SELECT project, session_id FROM b_deleted)"
                    )
                if batch.sessions:
                    cur.execute("INSERT OR REPLACE INTO sessions SELECT * FROM b_sessions")
                if batch.ties:
                    cur.execute(
                        "INSERT INTO identities SELECT * FROM b_ties "
                        "ON CONFLICT (project, device_id) DO UPDATE SET "
                        "user_id = excluded.user_id, tie_time = excluded.tie_time "
                        "WHERE excluded.tie_time >= identities.tie_time"
                    )
                if batch.traits:
                    cur.execute("INSERT OR REPLACE INTO profile_traits SELECT * FROM b_traits")
                if batch.dead:
                    cur.execute(
                        "INSERT INTO dead_letters (project, kind, idx, reason, payload, "
                        "received_at, source, status) SELECT project, kind, idx, reason, "
                        "payload, received_at, source, 'open' FROM b_dead"
                    )
                if batch.settled_dead:
                    cur.execute(
                        "UPDATE dead_letters SET status = 'replayed', "
                        "settled_at = epoch_ms(current_timestamp::TIMESTAMP) "
                        "FROM b_settled s WHERE dead_letters.project = s.project "
                        "AND dead_letters.id = s.id"
                    )
                cur.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('log_offset', ?)", [batch.next_offset]
                )
            finally:
                for name in tables:
                    cur.unregister(name)

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write transaction of its own, serialized with the runner's commits."""
        with self._write_lock, self._transaction() as cur:
            yield cur

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cur = self.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    # -- query side ----------------------------------------------------------------------

    def scan_sessions(self, project: str, query: SessionQuery) -> pa.Table:
        where = ["project = ?", "start_time >= ?", "start_time < ?"]
        params: list[Any] = [project, query.start, query.end]
        for column, value in (
            ("r_city", query.city),
            ("r_state", query.state),
            ("r_country", query.country),
            ("r_device_type", query.device_type),
            ("r_os", query.os),
            ("app_version", query.app_version),
            ("resolved_user", query.user_id),
            ("device_id", query.device_id),
            ("converted", query.converted),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        wanted = query.columns
        if wanted is not None and not set(wanted) <= _SESSION_SCAN:
            raise ValueError(f"columns: not scannable: {sorted(set(wanted) - _SESSION_SCAN)}")
        profiled = wanted is None or any(c.startswith("r_") for c in [*wanted, *where])
        select = "*" if wanted is None else ", ".join(dict.fromkeys(wanted))
        sql = (
            f"SELECT {select} FROM ({SESSIONS_RESOLVED if profiled else SESSIONS_LEAN}) "
            f"WHERE {' AND '.join(where)}"
        )
        if query.ordered:
            sql += " ORDER BY start_time, session_id"
        return self.cursor().sql(sql, params=params).to_arrow_table()

    def session(self, project: str, session_id: str) -> pa.Table:
        return (
            self.cursor()
            .sql(
                f"SELECT * FROM ({SESSIONS_RESOLVED}) WHERE project = ? AND session_id = ?",
                params=[project, session_id],
            )
            .to_arrow_table()
        )

    def session_events(self, project: str, session_id: str) -> pa.Table:
        return (
            self.cursor()
            .sql(
                "SELECT e.*, COALESCE(e.distinct_user_id, i.user_id, e.device_id) AS resolved_user "
                "FROM events e LEFT JOIN identities i ON i.project = e.project "
                "AND i.device_id = e.device_id WHERE e.project = ? AND e.session_id = ? "
                "ORDER BY e.time, e.insert_id",
                params=[project, session_id],
            )
            .to_arrow_table()
        )

    def scan_events(self, project: str, query: EventQuery) -> pa.Table:
        unknown = set(query.columns) - set(EVENT_SCAN_COLUMNS)
        if unknown:
            raise ValueError(f"columns: not scannable: {sorted(unknown)}")
        select = [_SCAN_SQL.get(c, f"e.{c}") + f" AS {c}" for c in query.columns]
        sql = (f"SELECT {', '.join(select)} FROM events e LEFT JOIN identities i "
               "ON i.project = e.project AND i.device_id = e.device_id "
               "WHERE e.project = ? AND e.time >= ? AND e.time < ?")
        params: list[Any] = [project, query.start, query.end]
        if query.names is not None:
            if not query.names:
                return self.cursor().sql(sql + " AND false", params=params).to_arrow_table()
            sql += " AND list_contains(?, e.event_name)"
            params.append(list(query.names))
        if query.user_id is not None:
            sql += f" AND {_RESOLVED} = ?"
            params.append(query.user_id)
        if query.ordered:
            sql += " ORDER BY e.time, e.insert_id"
        return self.cursor().sql(sql, params=params).to_arrow_table()

    def ties(self) -> list[tuple[str, str, str]]:
        """Every (project, device, user) tie."""
        rows = self.cursor().execute(
            "SELECT project, device_id, user_id FROM identities").fetchall()
        return [(p, d, u) for p, d, u in rows]

    def scan_profiles(self, project: str, users: list[str]) -> pa.Table:
        rows: list[tuple[Any, ...]] = []
        if users:
            rows = self.cursor().execute(
                "SELECT user_id, key, value_text, value_num FROM profile_traits "
                "WHERE project = ? AND list_contains(?, user_id)",
                [project, list(users)]).fetchall()
        return profiles_table(rows)

    def dead_letters(self, project: str, status: str | None, limit: int, after_id: int) -> pa.Table:
        sql = (
            "SELECT id, kind, idx, reason, payload, received_at, source, status "
            "FROM dead_letters WHERE project = ? AND id > ?"
        )
        params: list[Any] = [project, after_id]
        if status:
            sql += " AND status = ?"
            params.append(status)
        sql += " ORDER BY id LIMIT ?"
        params.append(limit)
        return self.cursor().sql(sql, params=params).to_arrow_table()

    def session_steps(self) -> Iterator[tuple[str, str, str, str | None]]:
        """Every event as (project, session id, event name, url), in step order."""
        reader = self.cursor().sql(
            "SELECT project, session_id, event_name, url FROM events "
            "ORDER BY project, session_id, time, insert_id").to_arrow_reader(100_000)
        for chunk in reader:
            yield from zip(*(chunk.column(i).to_pylist() for i in range(4)), strict=True)

    def count(self, table: str, project: str) -> int:
        if table not in {"events", "sessions", "dead_letters", "identities", "profile_traits"}:
            raise ValueError(f"table: unknown table {table!r}")
        rows = (
            self.cursor()
            .execute(f"SELECT count(*) FROM {table} WHERE project = ?", [project])
            .fetchall()
        )
        return int(rows[0][0])


def _row(r: Sequence[Any]) -> SessionRow:
    return SessionRow(**dict(zip(_ROW_FIELDS, r, strict=True)))


def _batch_tables(batch: WriteBatch) -> dict[str, pa.Table]:
    tables: dict[str, pa.Table] = {}
    if batch.events:
        tables["b_events"] = _events_table(batch.events)
    if batch.moved_events:
        tables["b_moves"] = _table(batch.moved_events, ["project", "insert_id", "session_id"], {})
    if batch.deleted_sessions:
        tables["b_deleted"] = _table(batch.deleted_sessions, ["project", "session_id"], {})
    if batch.sessions:
        tables["b_sessions"] = _table(
            [_session_tuple(r, x) for r, x in batch.sessions], _SESSION_COLUMNS, _SESSION_TYPES
        )
    if batch.ties:
        tables["b_ties"] = _table(
            batch.ties, ["project", "device_id", "user_id", "tie_time"], {"tie_time": pa.int64()}
        )
    if batch.traits:
        trait_rows = []
        for project, user, key, value, at in batch.traits:
            num = (
                float(value)
                if isinstance(value, int | float) and not isinstance(value, bool)
                else None
            )
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            trait_rows.append((project, user, key, text, num, at))
        tables["b_traits"] = _table(
            trait_rows,
            ["project", "user_id", "key", "value_text", "value_num", "set_at"],
            {"value_num": pa.float64(), "set_at": pa.int64()},
        )
    if batch.dead:
        tables["b_dead"] = _table(
            [
                (
                    d.project,
                    d.kind,
                    d.index,
                    d.reason,
                    d.payload.decode("utf-8", "replace"),
                    d.received_at,
                    d.source,
                )
                for d in batch.dead
            ],
            ["project", "kind", "idx", "reason", "payload", "received_at", "source"],
            {"idx": pa.int32(), "received_at": pa.int64()},
        )
    if batch.settled_dead:
        tables["b_settled"] = _table(batch.settled_dead, ["project", "id"], {"id": pa.int64()})
    return tables
