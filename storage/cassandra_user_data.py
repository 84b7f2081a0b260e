"""One user's records in Cassandra (``storage.user_data``), without ALLOW FILTERING.

Nothing in the keyspace is keyed by user, so the user's rows are found from what is:

- their devices: ``user_devices`` (every device ever tied to them), plus the devices of
  sessions that name them, checked against ``identities`` (only those tied to them now
  count their anonymous events for them);
- their sessions: the project's session index (``session_days`` → ``sessions_by_day``, key
  columns only; an erasure is rare, a full read of a project's sessions is the price of
  finding producer-keyed sessions too), resolved as the queries resolve them;
- their events: the ``events_by_session_key`` partitions of their session keys and devices
  over the days those keys have sessions, kept when the event is in one of their sessions
  or resolves to them.

Deletes name whole primary keys. Identity rows are written ``USING TIMESTAMP`` of the tie's
event time (the latest tie wins whatever order replays write them in), which may lie
ahead of the clock: their deletes use a timestamp after it, or the tombstone would lose.
"""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa
from cassandra.util import Date

from storage.cassandra_store import (
    DAY_MS,
    CassandraStore,
    _arrow,
    _unsigned,
    day_of,
    dead_bucket,
)
from storage.columns import EVENT_COLUMNS, EVENT_TYPES, SESSION_COLUMNS, SESSION_TYPES
from storage.user_data import UserRecords

_LIGHT = "session_id, session_key, user_id, device_id, start_time, end_time"


class CassandraUserData:
    def __init__(self, store: CassandraStore) -> None:
        self._store = store

    def dead_letters(self, project: str, status: str | None, limit: int,
                     after_id: int) -> pa.Table:
        return self._store.dead_letters(project, status, limit, after_id)

    def user_records(self, project: str, user: str) -> UserRecords:
        s = self._store
        history = {r[0] for r in s._one("SELECT device_id FROM user_devices WHERE project = ? "
                                        "AND user_id = ?", [project, user])}
        days = [r[0] for r in s._one("SELECT day FROM session_days WHERE project = ?",
                                     [project])]
        light = [r for part in s._run(f"SELECT {_LIGHT} FROM sessions_by_day WHERE "
                                      "project = ? AND day = ?", [(project, d) for d in days])
                 for r in part]
        candidates = history | {r[3] for r in light if r[2] == user and r[3]} | {user}
        ties = s._identities(project, candidates)
        devices = sorted(d for d, u in ties.items() if u == user)

        def owner(user_id: str | None, device_id: str | None) -> str | None:
            if user_id is not None:
                return user_id
            return None if device_id is None else ties.get(device_id, device_id)

        mine = {r[0]: r for r in light if owner(r[2], r[3]) == user}
        sessions = [r for part in s._run(
            f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions_by_id WHERE project = ? "
            "AND session_id = ?", [(project, sid) for sid in sorted(mine)]) for r in part]
        sessions.sort(key=lambda r: (r[SESSION_COLUMNS.index("start_time")], r[1]))
        keys = ({r[1] for r in mine.values()} | {f"d:{d}" for d in candidates}
                | {f"u:{user}"})
        partitions = sorted({(project, key, d) for _sid, key, _u, _d, start, end in light
                             if key in keys
                             for d in range(start // DAY_MS, end // DAY_MS + 1)})
        at = {c: i for i, c in enumerate(EVENT_COLUMNS)}
        found = s._run(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events_by_session_key "
                       "WHERE project = ? AND session_key = ? AND day = ?",
                       [(p, k, Date(d)) for p, k, d in partitions])
        events = [(*r[:at["dedupe_key"]], _unsigned(r[at["dedupe_key"]]),
                   *r[at["dedupe_key"] + 1:])
                  for part in found for r in part
                  if r[at["session_id"]] in mine
                  or owner(r[at["distinct_user_id"]], r[at["device_id"]]) == user]
        events.sort(key=lambda r: (r[at["time"]], r[at["insert_id"]]))
        traits: list[dict[str, Any]] = [
            {"key": k, "value_text": t, "value_num": n, "set_at": a}
            for k, t, n, a in sorted(s._one(
                "SELECT key, value_text, value_num, set_at FROM profile_traits "
                "WHERE project = ? AND user_id = ?", [project, user]))]
        return UserRecords(project, user, devices,
                           _arrow(events, EVENT_COLUMNS, EVENT_TYPES),
                           _arrow(sessions, SESSION_COLUMNS, SESSION_TYPES), traits)

    def erase_user(self, records: UserRecords) -> None:
        s, p = self._store, records.project
        ev = records.events
        cols = {c: ev.column(c).to_pylist() for c in (
            "insert_id", "session_key", "event_name", "time")}
        rows = list(zip(cols["insert_id"], cols["session_key"], cols["event_name"],
                        cols["time"], strict=True))
        s._run("DELETE FROM events_by_id WHERE project = ? AND insert_id = ?",
               [(p, iid) for iid, _k, _n, _t in rows])
        s._run("DELETE FROM events_by_session_key WHERE project = ? AND session_key = ? "
               "AND day = ? AND time = ? AND insert_id = ?",
               [(p, k, day_of(t), t, iid) for iid, k, _n, t in rows])
        s._run("DELETE FROM events_by_name WHERE project = ? AND event_name = ? AND day = ? "
               "AND time = ? AND insert_id = ?",
               [(p, n, day_of(t), t, iid) for iid, _k, n, t in rows])
        ss = records.sessions
        sessions = list(zip(ss.column("session_id").to_pylist(),
                            ss.column("session_key").to_pylist(),
                            ss.column("start_time").to_pylist(), strict=True))
        s._run("DELETE FROM sessions_by_id WHERE project = ? AND session_id = ?",
               [(p, sid) for sid, _k, _t in sessions])
        s._run("DELETE FROM sessions_by_day WHERE project = ? AND day = ? AND start_time = ? "
               "AND session_id = ?", [(p, day_of(t), t, sid) for sid, _k, t in sessions])
        s._run("DELETE FROM sessions_by_key WHERE project = ? AND session_key = ? "
               "AND start_time = ? AND session_id = ?",
               [(p, k, t, sid) for sid, k, t in sessions])
        now = int(time.time() * 1000)
        tied = s._run("SELECT user_id, tie_time FROM identities WHERE project = ? "
                      "AND device_id = ?", [(p, d) for d in records.devices])
        s._run("DELETE FROM identities USING TIMESTAMP ? WHERE project = ? AND device_id = ?",
               [((max(now, int(rows[0][1] or 0)) + 1) * 1000, p, d)
                for d, rows in zip(records.devices, tied, strict=True)
                if rows and rows[0][0] == records.user])
        s._one("DELETE FROM user_devices WHERE project = ? AND user_id = ?", [p, records.user])
        s._one("DELETE FROM profile_traits WHERE project = ? AND user_id = ?",
               [p, records.user])

    def delete_dead_letters(self, project: str, ids: list[int]) -> None:
        self._store._run("DELETE FROM dead_letters WHERE project = ? AND bucket = ? AND id = ?",
                         [(project, dead_bucket(i), i) for i in ids])
