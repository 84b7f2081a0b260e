"""Campaigns, their trigger timers, the outbox of firings and the delivery log — in SQLite
(WAL) beside the analytics store, written by the stream runner's commit thread and read by
the delivery worker and the API.

Exactly one message per user per firing: a firing enters the ``outbox`` under its key
(project, campaign, user, firing), so a replayed batch adds nothing; the worker records the
delivery under ``idempotency_key`` (unique) as ``pending`` before it sends and settles it
after, in the same transaction that clears the outbox row. A crash between sending and
settling resends with the same idempotency key — receivers (and the email Message-ID)
recognise it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from storage.control import open_sqlite
from stream.operators.triggers import Firing, Timer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    project TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL,
    status TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (project, id)
);
CREATE TABLE IF NOT EXISTS timers (
    project TEXT NOT NULL, campaign TEXT NOT NULL, user_id TEXT NOT NULL, due INTEGER NOT NULL,
    firing TEXT NOT NULL, armed INTEGER NOT NULL, event TEXT,
    PRIMARY KEY (project, campaign, user_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    project TEXT NOT NULL, campaign TEXT NOT NULL, user_id TEXT NOT NULL, firing TEXT NOT NULL,
    at INTEGER NOT NULL, event TEXT, not_before INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project, campaign, user_id, firing)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL, campaign TEXT NOT NULL,
    user_id TEXT NOT NULL, firing TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, detail TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL, created_at INTEGER NOT NULL, settled_at INTEGER
);
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_by_user ON deliveries (project, campaign, user_id);
"""



@dataclass(frozen=True, slots=True)
class CampaignRow:
    project: str
    id: str
    name: str
    spec: dict[str, Any]
    status: str  # ACTIVE | PAUSED
    created_at: int


@dataclass(frozen=True, slots=True)
class OutboxRow:
    project: str
    campaign: str
    user_id: str
    firing: str
    at: int
    event: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    project: str
    campaign: str
    user_id: str
    firing: str
    idempotency_key: str
    status: str
    attempts: int
    detail: str
    channel: str
    created_at: int
    settled_at: int | None


def idempotency_key(project: str, campaign: str, user: str, firing: str) -> str:
    return f"{project}:{campaign}:{user}:{firing}"


def _ms() -> int:
    return int(time.time() * 1000)


def _event_json(firing: Firing) -> str | None:
    e = firing.event
    if e is None:
        return None
    return orjson.dumps({"insert_id": e.insert_id, "event_name": e.name, "time": e.time,
                         "fields": dict(e.fields)}, default=str).decode()


class CampaignStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = open_sqlite(path, _SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self, statements: Iterable[tuple[str, Iterable[Any]]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self._db.execute(sql, tuple(params))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # -- campaigns -------------------------------------------------------------------------

    def create(self, project: str, campaign_id: str, name: str, spec: dict[str, Any]) -> None:
        now = _ms()
        self._tx([("INSERT INTO campaigns VALUES (?, ?, ?, ?, 'ACTIVE', ?, ?)",
                   (project, campaign_id, name, orjson.dumps(spec).decode(), now, now))])

    def set_status(self, project: str, campaign_id: str, status: str) -> bool:
        with self._lock:
            cur = self._db.execute(
                "UPDATE campaigns SET status = ?, updated_at = ? WHERE project = ? AND id = ?",
                (status, _ms(), project, campaign_id))
            return cur.rowcount > 0

    def campaigns(self, project: str | None = None,
                  campaign_id: str | None = None) -> list[CampaignRow]:
        sql = "SELECT project, id, name, spec, status, created_at FROM campaigns WHERE true"
        params: list[Any] = []
        for column, value in (("project", project), ("id", campaign_id)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        return [CampaignRow(p, i, n, orjson.loads(s), st, c)
                for p, i, n, s, st, c in self._rows(sql + " ORDER BY created_at, id", params)]

    def campaign(self, project: str, campaign_id: str) -> CampaignRow | None:
        found = self.campaigns(project, campaign_id)
        return found[0] if found else None

    # -- what the stream writes ------------------------------------------------------------

    def timers(self) -> list[tuple[str, Timer]]:
        return [(p, Timer(c, u, d, f, a)) for p, c, u, d, f, a in self._rows(
            "SELECT project, campaign, user_id, due, firing, armed FROM timers")]

    def apply(self, project: str, changes: list[tuple[tuple[str, str], Timer | None]],
              firings: list[Firing]) -> None:
        """One project's timer changes and new firings, in one transaction (idempotent)."""
        statements: list[tuple[str, Iterable[Any]]] = []
        for (campaign, user), timer in changes:
            if timer is None:
                statements.append(("DELETE FROM timers WHERE project = ? AND campaign = ? "
                                   "AND user_id = ?", (project, campaign, user)))
            else:
                statements.append(("INSERT OR REPLACE INTO timers VALUES (?, ?, ?, ?, ?, ?, "
                                   "NULL)", (project, campaign, user, timer.due, timer.firing,
                                             timer.armed)))
        statements += [("INSERT OR IGNORE INTO outbox (project, campaign, user_id, firing, at, "
                        "event) VALUES (?, ?, ?, ?, ?, ?)",
                        (project, f.campaign, f.user, f.firing, f.at, _event_json(f)))
                       for f in firings]
        if statements:
            self._tx(statements)

    def cursor(self, name: str, default: str) -> str:
        """Where a feed of firings was read up to (the distributed profile's Redis stream)."""
        rows = self._rows("SELECT value FROM cursors WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else default

    def apply_feed(self, name: str, cursor: str, firings: dict[str, list[Firing]]) -> None:
        """Firings read from a feed, per project, and the feed's new cursor: one
        transaction, so a crash re-reads them (the outbox ignores a firing it holds)."""
        statements: list[tuple[str, Iterable[Any]]] = [
            ("INSERT OR IGNORE INTO outbox (project, campaign, user_id, firing, at, event) "
             "VALUES (?, ?, ?, ?, ?, ?)",
             (project, f.campaign, f.user, f.firing, f.at, _event_json(f)))
            for project, fs in firings.items() for f in fs]
        statements.append(("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (name, cursor)))
        self._tx(statements)

    # -- what the worker reads and writes --------------------------------------------------

    def outbox(self, now_ms: int, limit: int = 500) -> list[OutboxRow]:
        return [OutboxRow(p, c, u, f, a, None if e is None else orjson.loads(e))
                for p, c, u, f, a, e in self._rows(
                    "SELECT project, campaign, user_id, firing, at, event FROM outbox "
                    "WHERE not_before <= ? ORDER BY at, campaign, user_id LIMIT ?",
                    (now_ms, limit))]

    def postpone(self, row: OutboxRow, not_before: int) -> None:
        self._tx([("UPDATE outbox SET not_before = ? WHERE project = ? AND campaign = ? AND "
                   "user_id = ? AND firing = ?",
                   (not_before, row.project, row.campaign, row.user_id, row.firing))])

    def delivery(self, key: str) -> Delivery | None:
        rows = self._rows(f"SELECT {_DELIVERY} FROM deliveries WHERE idempotency_key = ?",
                          (key,))
        return Delivery(*rows[0]) if rows else None

    def begin(self, row: OutboxRow, channel: str) -> Delivery:
        """The delivery of ``row``: recorded ``pending`` now unless it already exists."""
        key = idempotency_key(row.project, row.campaign, row.user_id, row.firing)
        self._tx([("INSERT OR IGNORE INTO deliveries (project, campaign, user_id, firing, "
                   "idempotency_key, status, channel, created_at) VALUES (?, ?, ?, ?, ?, "
                   "'pending', ?, ?)",
                   (row.project, row.campaign, row.user_id, row.firing, key, channel, _ms()))])
        found = self.delivery(key)
        assert found is not None
        return found

    def settle(self, row: OutboxRow, key: str, status: str, detail: str,
               attempts: int) -> None:
        """Record the outcome and clear the outbox row, together."""
        self._tx([
            ("UPDATE deliveries SET status = ?, detail = ?, attempts = attempts + ?, "
             "settled_at = ? WHERE idempotency_key = ?", (status, detail, attempts, _ms(), key)),
            ("DELETE FROM outbox WHERE project = ? AND campaign = ? AND user_id = ? AND "
             "firing = ?", (row.project, row.campaign, row.user_id, row.firing))])

    def sent_since(self, project: str, campaign: str, user: str, since_ms: int) -> int:
        rows = self._rows("SELECT count(*) FROM deliveries WHERE project = ? AND campaign = ? "
                          "AND user_id = ? AND status = 'sent' AND created_at >= ?",
                          (project, campaign, user, since_ms))
        return int(rows[0][0])

    def deliveries(self, project: str, campaign: str, after_id: int = 0,
                   limit: int = 100) -> list[Delivery]:
        return [Delivery(*r) for r in self._rows(
            f"SELECT {_DELIVERY} FROM deliveries WHERE project = ? AND campaign = ? AND id > ? "
            "ORDER BY id LIMIT ?", (project, campaign, after_id, limit))]

    def user_deliveries(self, project: str, users: Iterable[str]) -> list[Delivery]:
        """Every delivery to ``users`` in ``project`` (an export)."""
        ids = sorted(set(users))
        return [Delivery(*r) for r in self._rows(
            f"SELECT {_DELIVERY} FROM deliveries WHERE project = ? AND user_id IN "
            f"(SELECT value FROM json_each(?)) ORDER BY id",
            (project, orjson.dumps(ids).decode()))]

    def erase_users(self, project: str, users: Iterable[str]) -> int:
        """Delete the timers, waiting firings and deliveries of ``users``; returns the rows
        deleted."""
        ids = orjson.dumps(sorted(set(users))).decode()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                n = sum(self._db.execute(
                    f"DELETE FROM {table} WHERE project = ? AND user_id IN "
                    "(SELECT value FROM json_each(?))", (project, ids)).rowcount
                    for table in ("timers", "outbox", "deliveries"))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return n

    def count_deliveries(self, project: str, campaign: str) -> int:
        return int(self._rows("SELECT count(*) FROM deliveries WHERE project = ? AND "
                              "campaign = ?", (project, campaign))[0][0])


_DELIVERY = ("id, project, campaign, user_id, firing, idempotency_key, status, attempts, "
             "detail, channel, created_at, settled_at")
