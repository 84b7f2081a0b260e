"""Dropping the raw IP after enrichment (issue 7), in both runners: a project with
``drop_ip`` gets events and sessions placed from the IP, and stores neither with it; other
projects keep theirs."""

from __future__ import annotations

from pathlib import Path

import msgspec

from storage.duckdb_store import DuckDBStore
from storage.local_log import LocalEventLog
from stream.contract.event import Event
from stream.contract.records import LogRecord, encode_record
from stream.embedded import EmbeddedRunner
from stream.flink.keyed import Head, Held, KeySessions
from stream.flink.records import EnrichedEvent, SessionUpsert
from stream.operators.enrich import Enrichment
from stream.operators.sessionize import Sessionizer, SessionRules, session_key

T0 = 1_760_000_000_000


def enrich(ip: str | None, _agent: str | None) -> Enrichment:
    return Enrichment(country="US", city="Mountain View") if ip else Enrichment()


def events(project: str) -> list[Event]:
    return [Event(project=project, insert_id=f"{project}-{k}", event_name="Search",
                  category="c", time=T0 + k * 1_000, ingest_time=T0, device_id="d1",
                  ip="8.8.8.8") for k in range(3)]


def test_embedded_runner_enriches_then_stores_without_the_ip(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path / "log", fsync=False)
    store = DuckDBStore(tmp_path / "db.duckdb")
    enricher = type("E", (), {"enrich": staticmethod(enrich)})()
    rules = {"private": SessionRules(drop_ip=True), "open": SessionRules()}
    runner = EmbeddedRunner(log, store, enricher, rules_for=rules.__getitem__)  # type: ignore[arg-type]
    try:
        record = LogRecord(events=events("private") + events("open"))
        log.append_sync(encode_record(record), record.items)
        runner.run_until_idle()
        cur = store.cursor()
        rows = cur.execute("SELECT project, ip, country, city FROM events ORDER BY project, "
                           "insert_id").fetchall()
        assert rows == [("open", "8.8.8.8", "US", "Mountain View")] * 3 + [
            ("private", None, "US", "Mountain View")] * 3
        sessions = cur.execute("SELECT project, ip, country FROM sessions ORDER BY project"
                               ).fetchall()
        assert sessions == [("open", "8.8.8.8", "US"), ("private", None, "US")]
    finally:
        runner.stop(drain=False)
        log.close()
        store.close()


class _State:
    def __init__(self) -> None:
        self.head_: bytes | None = None
        self.older_: dict[str, bytes] = {}

    def head(self) -> Head | None:
        return None if self.head_ is None else msgspec.msgpack.decode(self.head_, type=Head)

    def set_head(self, head: Head | None) -> None:
        self.head_ = None if head is None else msgspec.msgpack.encode(head)

    def older(self, session_id: str) -> Held:
        return msgspec.msgpack.decode(self.older_[session_id], type=Held)

    def put_older(self, held: Held) -> None:
        self.older_[held.row.session_id] = msgspec.msgpack.encode(held)

    def remove_older(self, session_id: str) -> None:
        del self.older_[session_id]


class _Timers:
    def __init__(self) -> None:
        self.at: list[int] = []

    def register(self, timestamp: int) -> None:
        self.at.append(timestamp)


def test_the_jobs_sessionize_enriches_then_emits_without_the_ip() -> None:
    for drop in (True, False):
        logic = KeySessions(Sessionizer(SessionRules(drop_ip=drop)), enrich, 60_000)
        state, timers, outputs = _State(), _Timers(), []
        for e in events("p"):
            outputs += logic.on_event(state, timers, session_key(e), e,
                                      msgspec.msgpack.encode(e), lambda: T0 - 1)
        for t in sorted(set(timers.at)):
            outputs += logic.on_timer(state, timers, t)
        placed = [o for o in outputs if isinstance(o, EnrichedEvent)]
        rows = [o for o in outputs if isinstance(o, SessionUpsert)]
        assert len(placed) == 3
        assert rows
        want = None if drop else "8.8.8.8"
        assert {o.event.ip for o in placed} == {want}
        assert {o.row.ip for o in rows} == {want}
        assert {o.enrichment.city for o in placed + rows} == {"Mountain View"}  # type: ignore[operator]
