"""Export and erasure of one user on the embedded platform, in process (``gateway.user_data``
over DuckDB, networkx, the in-process live store, campaigns, the archive and the forgotten
list): what is theirs goes everywhere, what is someone else's stays, and nothing of theirs
comes back — not from the rest of the log, not after a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from gateway.platform import Platform
from gateway.settings import Settings
from storage.ports import SessionQuery
from stream.operators.triggers import Firing

T0 = int(time.time() * 1000) - 6 * 3_600_000
MIN = 60_000
EVERYTHING = SessionQuery(start=0, end=T0 * 2)


def ev(iid: str, name: str, minute: int, user: str | None = None,
       device: str | None = None, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"event_name": name, "time": T0 + minute * MIN, "insert_id": iid}
    if user:
        record["distinct_user_id"] = user
    if device:
        record["device_id"] = device
    return record | extra


ANN = [
    ev("a1", "App Launch", 0, device="phone"),  # anonymous, then tied to ann below
    ev("a2", "Search", 1, device="phone"),
    ev("a3", "Login", 2, user="ann", device="phone"),
    ev("a4", "App Launch", 100, user="ann", device="tablet"),
    ev("a5", "Purchase", 101, user="ann", device="tablet"),
    ev("a6", "Charged", 102, user="ann"),  # a server event: no device
]
BOB = [
    ev("b1", "App Launch", 0, user="bob", device="bobs-phone"),
    ev("b2", "Search", 1, user="bob", device="bobs-phone"),
    ev("b3", "Purchase", 2, user="bob", device="bobs-phone"),
]


def raw(records: list[dict[str, Any]]) -> list[msgspec.Raw]:
    return [msgspec.Raw(orjson.dumps(r)) for r in records]


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    p = Platform.open(Settings.from_env(data_dir=tmp_path / "data", fsync=False),
                      start_runner=False)
    yield p
    p.close()


def ingest(p: Platform, project: str, events: list[dict[str, Any]],
           profiles: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
    async def go() -> None:
        if profiles:
            await p.ingestor.profiles(project, raw(list(profiles)))
        if events:
            await p.ingestor.events(project, raw(events))

    asyncio.run(go())
    p.runner.run_until_idle()


def seeded(p: Platform) -> str:
    project = p.control.create_project("lifecycle")["project"]
    ingest(p, project, ANN + BOB, [
        {"distinct_user_id": "ann", "traits": {"city": "Pune", "email": "ann@example.com"}},
        {"distinct_user_id": "bob", "traits": {"city": "Delhi"}}])
    ingest(p, project, [{"event_name": "Search", "time": "yesterday",
                         "insert_id": "bad-ann", "distinct_user_id": "ann"},
                        {"event_name": "Search", "time": "yesterday",
                         "insert_id": "bad-bob", "distinct_user_id": "bob"}])
    p.campaigns.store.apply(project, [], [Firing("c1", "ann", "f1", T0),
                                          Firing("c1", "bob", "f1", T0)])
    for row in p.campaigns.store.outbox(T0 * 2):
        p.campaigns.store.begin(row, "webhook")
    return project


def users_of(p: Platform, project: str) -> set[str]:
    return set(p.store.scan_sessions(project, EVERYTHING).column("resolved_user").to_pylist())


def test_export_holds_every_record_of_the_user_and_nobody_elses(platform: Platform) -> None:
    project = seeded(platform)
    total, records = platform.user_data.export(project, "ann")
    records = list(records)
    assert total == len(records)
    kinds: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        kinds.setdefault(r["record"], []).append(r)
        assert r["subject"] == "ann"
    assert sorted(e["insert_id"] for e in kinds["event"]) == ["a1", "a2", "a3", "a4", "a5",
                                                              "a6"]
    assert len(kinds["session"]) == 3  # phone, tablet, server
    assert sorted(i["device_id"] for i in kinds["identity"]) == ["phone", "tablet"]
    assert {t["key"]: t["value_text"] for t in kinds["trait"]} == {
        "city": "Pune", "email": "ann@example.com"}
    assert [s["steps"][0][0] for s in kinds["journey"] if s["steps"]]
    assert [(d["campaign"], d["recipient"]) for d in kinds["delivery"]] == [("c1", "ann")]
    assert [orjson.loads(d["payload"])["insert_id"] for d in kinds["dead_letter"]] == [
        "bad-ann"]
    orjson.dumps(records, default=str)  # every record serializes


def test_erasure_removes_the_user_everywhere_and_keeps_everyone_else(
        platform: Platform) -> None:
    p = platform
    project = seeded(p)
    bob_before = p.user_data.store.user_records(project, "bob").counts()
    live_before = p.live.read((project, "all", ""))
    assert {e.user_id for e in live_before} >= {"ann", "phone", "bob"}

    counts = asyncio.run(p.user_data.erase(project, "ann"))

    assert counts["events"] == 6
    assert counts["sessions"] == 3
    assert counts["identities"] == 2
    assert counts["profile_traits"] == 2
    assert counts["dead_letters"] == 1
    assert counts["campaign_records"] == 2  # her outbox row and her delivery
    assert counts["live_events"] == 6
    assert p.user_data.store.user_records(project, "ann").counts() == {
        "events": 0, "sessions": 0, "profile_traits": 0, "identities": 0, "dead_letters": 0}
    assert p.user_data.store.user_records(project, "bob").counts() == bob_before
    assert users_of(p, project) == {"bob"}
    assert p.store.scan_profiles(project, ["ann"]).num_rows == 0
    # the journey graph holds bob's one session: its two transitions, nothing of ann's
    assert sorted((t.source, t.target, t.count) for t in p.graph.transitions(project)) == [
        ("App Launch", "Search", 1), ("Search", "Purchase", 1)]
    assert {e.user_id for e in p.live.read((project, "all", ""))} == {"bob"}
    assert p.live.read((project, "user", "ann")) == []
    letters = p.store.dead_letters(project, None, 100, 0).column("payload").to_pylist()
    assert [orjson.loads(x)["insert_id"] for x in letters] == ["bad-bob"]
    assert [d.user_id for d in p.campaigns.store.deliveries(project, "c1")] == ["bob"]
    assert p.forgotten is not None
    assert [e["user_id"] for e in p.forgotten.erasures(project)] == ["ann"]


def test_what_the_user_sends_later_or_again_is_not_stored(platform: Platform) -> None:
    p = platform
    project = seeded(p)
    asyncio.run(p.user_data.erase(project, "ann"))
    # the log replayed, retries, new events of hers, her anonymous device, her profile
    ingest(p, project, [*ANN, ev("a7", "Search", 200, device="phone"),
                        ev("a8", "Search", 201, user="ann", device="new-phone"),
                        ev("b4", "Search", 202, user="bob", device="phone")],
           [{"distinct_user_id": "ann", "traits": {"city": "Mumbai"}}])
    assert p.user_data.store.user_records(project, "ann").counts()["events"] == 0
    assert users_of(p, project) == {"bob"}, "bob on her old phone is still bob's"
    assert p.store.scan_profiles(project, ["ann"]).num_rows == 0


def test_the_archive_keeps_nobody_erased_and_a_restart_changes_nothing(
        tmp_path: Path) -> None:
    settings = Settings.from_env(data_dir=tmp_path / "data", fsync=False)
    p = Platform.open(settings, start_runner=False)
    project = seeded(p)
    assert p.archive is not None
    p.archive.flush()
    archived = p.archive.archive.query("SELECT distinct_user_id AS u, count(*) AS n "
                                       "FROM events GROUP BY ALL ORDER BY ALL").to_pylist()
    assert archived == [{"u": "ann", "n": 4}, {"u": "bob", "n": 3}, {"u": None, "n": 2}]
    ingest(p, project, [ev("a9", "Search", 300, user="ann", device="tablet")])  # staged
    asyncio.run(p.user_data.erase(project, "ann"))
    assert p.archive.archive.query("SELECT insert_id FROM events ORDER BY 1").to_pylist() == [
        {"insert_id": i} for i in ("b1", "b2", "b3")]
    p.close()
    again = Platform.open(settings, start_runner=False)
    try:
        ingest(again, project, ANN)
        assert users_of(again, project) == {"bob"}
        total, _records = again.user_data.export(project, "ann")
        assert total == 0
    finally:
        again.close()
