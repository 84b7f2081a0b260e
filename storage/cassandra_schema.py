"""The Cassandra keyspace: versioned, idempotent migrations applied at start.

Tables are keyed for the queries they serve (see shared/DESIGN.md, "Stores"):
events by (project, event_name, day) and by (project, session_key, day), clustered by
(time, insert_id), with the names each day has; events by id for de-duplication;
sessions by (project, day), by
(project, session_key) and by id; identities by device; traits by user; dead letters by
(project, bucket); and a per-deployment ``meta`` table (log offset, dead-letter sequence,
schema version). Days are UTC dates (``date``) of the event or session start time.
"""

from __future__ import annotations

import re
from typing import Any

_EVENT_COLUMNS_CQL = """
    insert_id text, dedupe_key bigint, event_name text, category text, time bigint,
    ingest_time bigint, distinct_user_id text, device_id text, session_key text,
    session_id text, producer_session_id text, source_id text, url text, ip text,
    user_agent text, city text, state text, country text, postal_code text, lat double,
    long double, device_type text, os text, os_version text, browser text,
    app_version text, properties text"""

_SESSION_COLUMNS_CQL = """
    session_id text, session_key text, producer boolean, device_id text, user_id text,
    start_time bigint, end_time bigint, events int, landing_url text, exit_url text,
    first_event text, last_event text, converted boolean, closed boolean, crashed boolean,
    last_insert_id text, source_id text, app_version text, ip text, user_agent text,
    city text, state text, country text, postal_code text, lat double, long double,
    device_type text, os text, browser text"""

# Each migration is a list of statements; all are IF NOT EXISTS, so re-running is harmless.
MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE IF NOT EXISTS {ks}.meta (key text PRIMARY KEY, value bigint)",
        "CREATE TABLE IF NOT EXISTS {ks}.events_by_id (project text,"
        + _EVENT_COLUMNS_CQL + ", PRIMARY KEY ((project, insert_id)))",
        "CREATE TABLE IF NOT EXISTS {ks}.events_by_user (project text, user text, day date,"
        + _EVENT_COLUMNS_CQL
        + ", PRIMARY KEY ((project, user, day), time, insert_id))",
        "CREATE TABLE IF NOT EXISTS {ks}.events_by_session_key (project text, day date,"
        + _EVENT_COLUMNS_CQL
        + ", PRIMARY KEY ((project, session_key, day), time, insert_id))",
        "CREATE TABLE IF NOT EXISTS {ks}.sessions_by_id (project text,"
        + _SESSION_COLUMNS_CQL + ", PRIMARY KEY ((project, session_id)))",
        "CREATE TABLE IF NOT EXISTS {ks}.sessions_by_day (project text, day date,"
        + _SESSION_COLUMNS_CQL
        + ", PRIMARY KEY ((project, day), start_time, session_id))",
        "CREATE TABLE IF NOT EXISTS {ks}.sessions_by_key (project text,"
        + _SESSION_COLUMNS_CQL
        + ", PRIMARY KEY ((project, session_key), start_time, session_id))",
        "CREATE TABLE IF NOT EXISTS {ks}.identities (project text, device_id text, "
        "user_id text, tie_time bigint, PRIMARY KEY ((project, device_id)))",
        "CREATE TABLE IF NOT EXISTS {ks}.profile_traits (project text, user_id text, "
        "key text, value_text text, value_num double, set_at bigint, "
        "PRIMARY KEY ((project, user_id), key))",
        "CREATE TABLE IF NOT EXISTS {ks}.dead_letters (project text, bucket bigint, "
        "id bigint, kind text, idx int, reason text, payload text, received_at bigint, "
        "source text, status text, settled_at bigint, "
        "PRIMARY KEY ((project, bucket), id))",
        # The days a project has sessions on, so a wide scan only visits those partitions.
        "CREATE TABLE IF NOT EXISTS {ks}.session_days (project text, day date, "
        "PRIMARY KEY ((project), day))",
        # Which dead-letter ids a committed step got, so a replayed step reuses them.
        "CREATE TABLE IF NOT EXISTS {ks}.dead_letter_steps (next_offset bigint PRIMARY KEY, "
        "first_id bigint)",
    ],
    [
        # The dead-letter partitions a stream job wrote (ids from time and hash, one
        # partition per project and day), so paging finds them without a scan.
        "CREATE TABLE IF NOT EXISTS {ks}.dead_letter_buckets (project text, bucket bigint, "
        "PRIMARY KEY ((project), bucket))",
    ],
    [
        # Analytics read events by name and day (a funnel reads only its steps' events);
        # event_names lists the names a project has on each day, so a scan of every event
        # visits only partitions that exist. (events_by_user, never read, is no longer
        # written.)
        "CREATE TABLE IF NOT EXISTS {ks}.events_by_name (project text, day date,"
        + _EVENT_COLUMNS_CQL
        + ", PRIMARY KEY ((project, event_name, day), time, insert_id))",
        "CREATE TABLE IF NOT EXISTS {ks}.event_names (project text, day date, "
        "event_name text, PRIMARY KEY ((project), day, event_name))",
    ],
    [
        # Every device ever tied to a user (identities keeps only each device's latest
        # tie): an erasure finds the user's sessions and events from these.
        "CREATE TABLE IF NOT EXISTS {ks}.user_devices (project text, user_id text, "
        "device_id text, tie_time bigint, PRIMARY KEY ((project, user_id), device_id))",
    ],
]
# Hot data: what analytics read and what grows with traffic. A time to live set on these
# (``set_hot_ttl``) makes Cassandra drop rows that long after they were last written;
# identities, user_devices, profile traits, dead letters and meta are kept until deleted
# (they are small, and identities and traits decide whom older data belongs to).
HOT_TABLES = ("events_by_id", "events_by_user", "events_by_session_key", "events_by_name",
              "event_names", "sessions_by_id", "sessions_by_day", "sessions_by_key",
              "session_days")
MAX_TTL_DAYS = 7_300  # Cassandra's TTL limit is 20 years
SCHEMA_VERSION = len(MIGRATIONS)
_KEYSPACE_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")


def check_keyspace(name: str) -> str:
    """Keyspace names are interpolated into DDL, so accept only plain identifiers."""
    if not _KEYSPACE_NAME.fullmatch(name):
        raise ValueError(f"keyspace: {name!r} is not a lower-case CQL identifier")
    return name


def migrate(session: Any, keyspace: str, replication_factor: int = 1) -> int:
    """Create the keyspace and apply the migrations not yet recorded; returns the version.

    Idempotent: every statement is IF NOT EXISTS and the version row only moves forward.
    """
    ks = check_keyspace(keyspace)
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {int(replication_factor)}}}"
    )
    session.execute(f"CREATE TABLE IF NOT EXISTS {ks}.meta (key text PRIMARY KEY, value bigint)")
    row = session.execute(f"SELECT value FROM {ks}.meta WHERE key = %s",
                          ["schema_version"]).one()
    current = int(row[0]) if row else 0
    for version in range(current, SCHEMA_VERSION):
        for statement in MIGRATIONS[version]:
            session.execute(statement.format(ks=ks))
        session.execute(f"INSERT INTO {ks}.meta (key, value) VALUES (%s, %s)",
                        ["schema_version", version + 1])
    return SCHEMA_VERSION


def set_hot_ttl(session: Any, keyspace: str, days: int) -> list[str]:
    """Set ``default_time_to_live`` of the HOT_TABLES to ``days`` (0: kept until deleted)
    where it differs; returns the tables changed. Every writer (the gateway's, the PyFlink
    job's) then writes with it, and changing it applies to rows written afterwards.

    DDL takes no bind markers: the value is an int checked here, the keyspace a checked
    identifier."""
    ks = check_keyspace(keyspace)
    if not 0 <= int(days) <= MAX_TTL_DAYS:
        raise ValueError(f"cassandra_ttl_days: {days} is not between 0 and {MAX_TTL_DAYS}")
    seconds = int(days) * 86_400
    current = {r[0]: r[1] for r in session.execute(
        "SELECT table_name, default_time_to_live FROM system_schema.tables "
        "WHERE keyspace_name = %s", [ks])}
    changed = [t for t in HOT_TABLES if t in current and current[t] != seconds]
    for table in changed:
        session.execute(f"ALTER TABLE {ks}.{table} WITH default_time_to_live = {seconds}")
    return changed
