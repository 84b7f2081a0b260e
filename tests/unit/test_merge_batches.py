"""``merge_batches``: committing the merge of several steps leaves a store with the same rows
as committing them one after another (the embedded runner commits every step queued during a
commit in one transaction). Checked on DuckDB with small key spaces, so steps overlap."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from storage.duckdb_store import DuckDBStore
from storage.ports import Enrichment, StoredEvents, WriteBatch, merge_batches
from stream.contract.event import Event
from stream.operators.sessionize import SessionRow

SIDS = ["s1", "s2", "s3"]


def session(sid: str, events: int) -> tuple[SessionRow, Enrichment]:
    return (SessionRow(sid, "p", "d:x", False, 1_000, 1_000 + events, f"i{events}",
                       events=events, device_id="x"), Enrichment(city=f"c{events}"))


@st.composite
def steps(draw: Any) -> list[WriteBatch]:
    out: list[WriteBatch] = []
    n_events = 0
    for k in range(draw(st.integers(1, 5))):
        b = WriteBatch(next_offset=k + 1)
        for _ in range(draw(st.integers(0, 3))):
            n_events += 1
            e = Event(project="p", insert_id=f"e{n_events}", event_name="Search", category="c",
                      time=1_000 + n_events, ingest_time=0, device_id="x")
            b.events = StoredEvents([*b.events.events, e],
                                    [*b.events.session_ids, draw(st.sampled_from(SIDS))],
                                    [*b.events.session_keys, "d:x"],
                                    [*b.events.enrichments, Enrichment()],
                                    [*b.events.dedupe_keys, n_events])
        if n_events:
            moved = draw(st.lists(st.integers(1, n_events), max_size=2, unique=True))
            b.moved_events = [("p", f"e{i}", draw(st.sampled_from(SIDS))) for i in moved]
        b.deleted_sessions = [("p", s) for s in draw(st.lists(st.sampled_from(SIDS),
                                                              max_size=1))]
        b.sessions = [session(s, draw(st.integers(1, 9)))
                      for s in draw(st.lists(st.sampled_from(SIDS), max_size=2, unique=True))]
        b.ties = [("p", d, draw(st.sampled_from(["u1", "u2"])), draw(st.integers(0, 3)))
                  for d in draw(st.lists(st.sampled_from(["d1", "d2"]), max_size=2,
                                         unique=True))]
        b.traits = [("p", "u1", key, draw(st.integers(0, 5)), k)
                    for key in draw(st.lists(st.sampled_from(["plan", "age"]), max_size=2,
                                             unique=True))]
        out.append(b)
    return out


def rows(store: DuckDBStore) -> dict[str, list[tuple[Any, ...]]]:
    cur = store.cursor()
    return {table: sorted(cur.execute(f"SELECT * FROM {table}").fetchall(),  # nosec B608
                          key=repr)
            for table in ("events", "sessions", "identities", "profile_traits", "meta")}


@settings(max_examples=60, deadline=None)
@given(steps())
def test_a_merged_commit_equals_the_steps_committed_in_turn(batches: list[WriteBatch]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        one_by_one = DuckDBStore(Path(tmp) / "a.duckdb")
        merged = DuckDBStore(Path(tmp) / "b.duckdb")
        try:
            for b in batches:
                one_by_one.commit(b)
            merged.commit(merge_batches(batches))
            assert rows(merged) == rows(one_by_one)
        finally:
            one_by_one.close()
            merged.close()
