"""One user's records in the embedded DuckDB store (``storage.user_data``): found with the
same resolved-identity expressions the queries use, deleted in one transaction."""

from __future__ import annotations

import logging
from typing import Any

import duckdb
import pyarrow as pa

from storage.duckdb_store import DuckDBStore
from storage.user_data import UserRecords

log = logging.getLogger("cep.user_data")

_SESSIONS = """
SELECT s.* FROM sessions s
LEFT JOIN identities i ON i.project = s.project AND i.device_id = s.device_id
WHERE s.project = ? AND COALESCE(s.user_id, i.user_id, s.device_id) = ?
ORDER BY s.start_time, s.session_id
"""

_EVENTS = """
SELECT e.* FROM events e
LEFT JOIN identities i ON i.project = e.project AND i.device_id = e.device_id
WHERE e.project = ? AND (COALESCE(e.distinct_user_id, i.user_id, e.device_id) = ?
                         OR list_contains(?, e.session_id))
ORDER BY e.time, e.insert_id
"""


class DuckDBUserData:
    def __init__(self, store: DuckDBStore) -> None:
        self._store = store

    def dead_letters(self, project: str, status: str | None, limit: int,
                     after_id: int) -> pa.Table:
        return self._store.dead_letters(project, status, limit, after_id)

    def user_records(self, project: str, user: str) -> UserRecords:
        cur = self._store.cursor()
        devices = [r[0] for r in cur.execute(
            "SELECT device_id FROM identities WHERE project = ? AND user_id = ? "
            "ORDER BY device_id", [project, user]).fetchall()]
        sessions = cur.sql(_SESSIONS, params=[project, user]).to_arrow_table()
        ids = sessions.column("session_id").to_pylist()
        events = cur.sql(_EVENTS, params=[project, user, ids]).to_arrow_table()
        traits: list[dict[str, Any]] = [
            {"key": k, "value_text": t, "value_num": n, "set_at": at}
            for k, t, n, at in cur.execute(
                "SELECT key, value_text, value_num, set_at FROM profile_traits "
                "WHERE project = ? AND user_id = ? ORDER BY key", [project, user]).fetchall()]
        return UserRecords(project, user, devices, events, sessions, traits)

    def erase_user(self, records: UserRecords) -> None:
        p = records.project
        probe = pa.table({"insert_id": pa.array(records.insert_ids, pa.string())})
        sessions = pa.table({"session_id": pa.array(records.session_ids, pa.string())})
        with self._store.writing() as cur:
            cur.register("erased_events", probe)
            cur.register("erased_sessions", sessions)
            try:
                cur.execute("DELETE FROM events WHERE project = ? AND insert_id IN "
                            "(SELECT insert_id FROM erased_events)", [p])
                cur.execute("DELETE FROM sessions WHERE project = ? AND session_id IN "
                            "(SELECT session_id FROM erased_sessions)", [p])
                cur.execute("DELETE FROM identities WHERE project = ? AND user_id = ?",
                            [p, records.user])
                cur.execute("DELETE FROM profile_traits WHERE project = ? AND user_id = ?",
                            [p, records.user])
            finally:
                cur.unregister("erased_events")
                cur.unregister("erased_sessions")
        # Deleted rows leave the file's blocks at the next checkpoint; ask for it now (it
        # waits for none: with readers in a transaction it happens at a later commit).
        try:
            self._store.cursor().execute("CHECKPOINT")
        except duckdb.Error as exc:
            log.info("checkpoint after an erasure deferred: %s", exc)

    def delete_dead_letters(self, project: str, ids: list[int]) -> None:
        if not ids:
            return
        with self._store.writing() as cur:
            cur.execute("DELETE FROM dead_letters WHERE project = ? AND list_contains(?, id)",
                        [project, ids])
