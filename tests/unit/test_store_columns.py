"""``storage.columns`` (what the Cassandra adapter imports, without DuckDB) is DuckDB's row
shape exactly, until ``storage.duckdb_store`` imports it from there."""

from __future__ import annotations

from storage import columns, duckdb_store
from storage.ports import Enrichment, StoredEvents
from stream.contract.event import Event
from stream.operators.sessionize import SessionRow


def test_column_lists_and_types_are_duckdbs() -> None:
    assert columns.EVENT_COLUMNS == duckdb_store._EVENT_COLUMNS
    assert columns.SESSION_COLUMNS == duckdb_store._SESSION_COLUMNS
    assert columns.ROW_FIELDS == duckdb_store._ROW_FIELDS
    assert columns.EVENT_TYPES == duckdb_store._EVENT_TYPES
    assert columns.SESSION_TYPES == duckdb_store._SESSION_TYPES


def test_rows_are_duckdbs() -> None:
    event = Event(project="p", insert_id="i", event_name="View", category="User Actions",
                  time=5, ingest_time=6, device_id="d", url="/x")
    stored = StoredEvents([event], ["s"], ["d:d"], [Enrichment(city="Paris", lat=1.5)], [7])
    assert columns.events_table(stored).equals(duckdb_store._events_table(stored))
    row = SessionRow("s", "p", "d:d", False, 5, 9, "i", events=2, device_id="d")
    assert columns.session_tuple(row, Enrichment(os="iOS")) == duckdb_store._session_tuple(
        row, Enrichment(os="iOS"))
