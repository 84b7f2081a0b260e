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


PREFIX_CHARS = 10  # stored and listed beside the hash: e.g. cep_r_Ab3x


def _prefix(key: str) -> str:
    return key[:PREFIX_CHARS]


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
                        "VALUES (?, ?, ?, ?, ?)", (hash_key(key), project, kind, _prefix(key), now))
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
                             "VALUES (?, ?, ?, ?, ?)", (hash_key(key), project, kind, _prefix(key),
                                                        now))
            self._db.execute("COMMIT")
        return key

    def keys(self, project: str) -> list[dict[str, Any]]:
        """The project's keys, newest first: kind, prefix (what identifies a key without
        revealing it), created and revoked times (ms). Never the key or its hash."""
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, prefix, created_at, revoked_at FROM keys WHERE project = ? "
                "ORDER BY created_at DESC, prefix", (project,)).fetchall()
        return [{"kind": k, "prefix": p, "created_at": c, "revoked_at": r}
                for k, p, c, r in rows]

    def create_key(self, project: str, kind: str) -> str:
        """One more key of ``kind`` (the others stay valid: rotate without downtime by
        creating, deploying, then revoking the old one). Returns the plain key, shown once."""
        if kind not in KINDS:
            raise ValueError(f"kind: must be one of {', '.join(KINDS)}")
        key = new_key(kind)
        with self._lock:
            self._db.execute("INSERT INTO keys (hash, project, kind, prefix, created_at) "
                             "VALUES (?, ?, ?, ?, ?)", (hash_key(key), project, kind,
                                                        _prefix(key), int(time.time() * 1000)))
        return key

    def revoke_key(self, project: str, prefix: str) -> int:
        """Revoke the project's active keys with this prefix (as ``keys`` lists it) or this
        whole key; returns how many. The last active admin key cannot be revoked."""
        if len(prefix) < PREFIX_CHARS:
            raise ValueError(f"prefix: give the {PREFIX_CHARS} characters `keys` lists, or "
                             "the whole key")
        now = int(time.time() * 1000)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT hash, kind, prefix FROM keys WHERE project = ? AND revoked_at IS "
                    "NULL", (project,)).fetchall()
                whole = hash_key(prefix)
                hit = [(h, k) for h, k, p in rows if p == prefix or h == whole]
                admins = sum(1 for _, k, _ in rows if k == "admin")
                if admins and admins == sum(1 for _, k in hit if k == "admin"):
                    raise ValueError("prefix: that would revoke the project's last active "
                                     "admin key; create another admin key first")
                self._db.executemany("UPDATE keys SET revoked_at = ? WHERE hash = ?",
                                     [(now, h) for h, _ in hit])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(hit)

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
