"""The forgotten-identity list and the record of erasures, in SQLite beside the control store.

Both profiles keep it in the gateway's data dir (like projects and keys: small, rarely
written, read by several processes); the distributed profile mirrors it into Redis
(``cep:suppressed``) for the PyFlink job. ``current()`` is what a runner asks before each
step: it re-reads only when another connection changed the file (SQLite's
``data_version``), so an erasure made by ``cep project delete`` in another process applies
from the runner's next step.

The erasure record keeps who was erased, when and how many records each store gave up —
never the records themselves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from storage.control import open_sqlite
from stream.operators.suppress import Forgotten, Suppressions

_SCHEMA = """
CREATE TABLE IF NOT EXISTS forgotten (
    project TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, since INTEGER NOT NULL,
    PRIMARY KEY (project, kind, id)
);
CREATE TABLE IF NOT EXISTS erasures (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL, user_id TEXT NOT NULL,
    erased_at INTEGER NOT NULL, records TEXT NOT NULL
);
"""


class SuppressionStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = open_sqlite(path, _SCHEMA)
        self._version: int | None = None
        self._current = Suppressions()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def forget(self, project: str, users: Iterable[str], devices: Iterable[str]) -> None:
        """Add users and devices to the project's forgotten identities (idempotent)."""
        now = int(time.time() * 1000)
        rows = [(project, "user", u, now) for u in users] + [
            (project, "device", d, now) for d in devices]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR IGNORE INTO forgotten VALUES (?, ?, ?, ?)",
                                     rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._version = None  # our own commits do not move data_version

    def current(self) -> Suppressions:
        """Every project's forgotten identities, re-read only when the file changed."""
        with self._lock:
            version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
            if version != self._version:
                self._current = self._read()
                self._version = version
            return self._current

    def forgotten(self, project: str) -> Forgotten:
        return self.current().of(project) or Forgotten()

    def projects(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute(
                "SELECT DISTINCT project FROM forgotten ORDER BY project")]

    def _read(self) -> Suppressions:
        users: dict[str, set[str]] = {}
        devices: dict[str, set[str]] = {}
        for project, kind, ident in self._db.execute(
                "SELECT project, kind, id FROM forgotten"):
            (users if kind == "user" else devices).setdefault(project, set()).add(ident)
        return Suppressions({p: Forgotten(frozenset(users.get(p, ())),
                                          frozenset(devices.get(p, ())))
                             for p in users.keys() | devices.keys()})

    def record(self, project: str, user: str, records: dict[str, int]) -> None:
        """Note an erasure: who, when, and how many records each store held."""
        with self._lock:
            self._db.execute(
                "INSERT INTO erasures (project, user_id, erased_at, records) "
                "VALUES (?, ?, ?, ?)",
                (project, user, int(time.time() * 1000), orjson.dumps(records).decode()))

    def erasures(self, project: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT user_id, erased_at, records FROM erasures WHERE project = ? "
                "ORDER BY seq", (project,)).fetchall()
        return [{"user_id": u, "erased_at": at, "records": orjson.loads(r)}
                for u, at, r in rows]
