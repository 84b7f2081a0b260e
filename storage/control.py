"""The control plane: projects, their keys, settings and registered event schemas.

Kept in SQLite (WAL) beside the DuckDB file because several processes touch it at once:
``cep project create`` runs while ``cep serve`` holds the analytics store. Keys are stored
as SHA-256 hashes only; the plain key is shown once, at creation or rotation.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

KINDS = ("write", "read", "admin")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at INTEGER NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS keys (
    hash TEXT PRIMARY KEY, project TEXT NOT NULL REFERENCES projects(id), kind TEXT NOT NULL,
    prefix TEXT NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS schema_records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    project: str
    kind: str


def open_sqlite(path: Path, schema: str) -> sqlite3.Connection:
    """A WAL-mode SQLite connection shared by threads (callers serialize with a lock),
    transactions explicit, with ``schema`` applied."""
    db = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=30000")
    db.executescript(schema)
    return db


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(kind: str) -> str:
    return f"cep_{kind[0]}_{secrets.token_urlsafe(24)}"


class ControlStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()
        self._db = open_sqlite(path, _SCHEMA)

    def close(self) -> None:
        self._db.close()

    def create_project(self, name: str) -> dict[str, str]:
        """Create a project with one key of each kind; returns the plain keys (shown once)."""
        if not name or len(name) > 100:
            raise ValueError("name: must be 1 to 100 characters")
        project = "p_" + secrets.token_hex(6)
        now = int(time.time() * 1000)
        out = {"project": project, "name": name}
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)",
                                 (project, name, now))
                for kind in KINDS:
                    key = new_key(kind)
                    self._db.execute(
                        "INSERT INTO keys (hash, project, kind, prefix, created_at) "
                        "VALUES (?, ?, ?, ?, ?)", (hash_key(key), project, kind, key[:10], now))
                    out[f"{kind}_key"] = key
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return out

    def rotate_key(self, project: str, kind: str) -> str:
        """Issue a new key of ``kind`` and revoke the old ones of that kind."""
        if kind not in KINDS:
            raise ValueError(f"kind: must be one of {', '.join(KINDS)}")
        key = new_key(kind)
        now = int(time.time() * 1000)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE keys SET revoked_at = ? WHERE project = ? AND kind = ? "
                             "AND revoked_at IS NULL", (now, project, kind))
            self._db.execute("INSERT INTO keys (hash, project, kind, prefix, created_at) "
                             "VALUES (?, ?, ?, ?, ?)", (hash_key(key), project, kind, key[:10],
                                                        now))
            self._db.execute("COMMIT")
        return key

    def authenticate(self, key: str) -> KeyInfo | None:
        with self._lock:
            row = self._db.execute(
                "SELECT project, kind FROM keys WHERE hash = ? AND revoked_at IS NULL",
                (hash_key(key),)).fetchone()
        return KeyInfo(row[0], row[1]) if row else None

    def projects(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, created_at, settings FROM projects ORDER BY created_at"
            ).fetchall()
        return [{"project": r[0], "name": r[1], "created_at": r[2],
                 "settings": orjson.loads(r[3])} for r in rows]

    def project_exists(self, project: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM projects WHERE id = ?",
                                    (project,)).fetchone() is not None

    def settings(self, project: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute("SELECT settings FROM projects WHERE id = ?",
                                   (project,)).fetchone()
        return dict(orjson.loads(row[0])) if row else {}

    def update_settings(self, project: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT settings FROM projects WHERE id = ?",
                                   (project,)).fetchone()
            if row is None:
                self._db.execute("ROLLBACK")
                raise KeyError(project)
            merged = {**orjson.loads(row[0]), **changes}
            self._db.execute("UPDATE projects SET settings = ? WHERE id = ?",
                             (orjson.dumps(merged).decode(), project))
            self._db.execute("COMMIT")
        return merged

    def append_schema_record(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT INTO schema_records (record) VALUES (?)",
                             (orjson.dumps(record).decode(),))

    def schema_records(self, after: int = 0) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, record FROM schema_records WHERE seq > ? ORDER BY seq", (after,)
            ).fetchall()
        return [(r[0], orjson.loads(r[1])) for r in rows]
