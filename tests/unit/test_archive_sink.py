"""The PyFlink job's raw-event archive: staged per batch, rolled into Parquet partitions."""

from __future__ import annotations

from pathlib import Path

import duckdb

from stream.contract.event import Event
from stream.flink.archive_sink import STAGING, ArchiveSink
from stream.flink.records import EnrichedEvent, SessionDeleted, TooLate
from stream.operators.enrich import Enrichment

DAY1 = 1_767_607_200_000  # 2026-01-05 10:00 UTC
DAY2 = DAY1 + 86_400_000


def _ev(iid: str, t: int, project: str = "p1") -> Event:
    return Event(project=project, insert_id=iid, event_name="Search", category="User Actions",
                 time=t, ingest_time=t + 5, device_id="d1", properties='{"q": "milk"}')


def _out(e: Event, moved: bool = False) -> EnrichedEvent:
    return EnrichedEvent(e, "s1", "d:d1", Enrichment(), moved)


def _rows(sql: str) -> list[tuple[object, ...]]:
    return duckdb.execute(sql).fetchall()


def _archived(root: Path) -> list[tuple[str, str, str, str, int]]:
    if not list(root.glob("project=*/**/*.parquet")):
        return []
    rows = _rows(
        f"SELECT project, year, month, day, count(*) FROM read_parquet('{root}/project=*/**/*"
        ".parquet', hive_partitioning = true, hive_types_autocast = false) "
        "GROUP BY ALL ORDER BY ALL")
    return [(str(p), str(y), str(m), str(d), int(str(n))) for p, y, m, d, n in rows]


def test_first_sightings_are_archived_by_project_and_day(tmp_path: Path) -> None:
    sink = ArchiveSink(str(tmp_path), roll_rows=1000, roll_seconds=3600)
    sink.open(0, 0)
    sink.write([_out(_ev("a", DAY1)), _out(_ev("b", DAY2)), _out(_ev("a", DAY1), moved=True),
                SessionDeleted("p1", "s0", "d:d1"), TooLate(_ev("c", DAY1, "p2"), "late")])
    assert _archived(tmp_path) == [], "nothing is Parquet before the roll"
    sink.close()
    assert _archived(tmp_path) == [("p1", "2026", "01", "05", 1), ("p1", "2026", "01", "06", 1),
                                   ("p2", "2026", "01", "05", 1)]
    assert not list((tmp_path / STAGING).iterdir())
    props = _rows(f"SELECT properties, ingest_time FROM read_parquet('{tmp_path}/"
                  "project=p2/**/*.parquet')")
    assert props == [('{"q": "milk"}', DAY1 + 5)]


def test_rolls_at_the_row_bound(tmp_path: Path) -> None:
    sink = ArchiveSink(str(tmp_path), roll_rows=2, roll_seconds=3600)
    sink.open(1, 0)
    sink.write([_out(_ev("a", DAY1))])
    assert _archived(tmp_path) == []
    sink.write([_out(_ev("b", DAY1))])
    assert _archived(tmp_path) == [("p1", "2026", "01", "05", 2)]


def test_a_crashed_attempt_is_archived_on_reopen_without_its_torn_tail(tmp_path: Path) -> None:
    crashed = ArchiveSink(str(tmp_path), roll_rows=1000, roll_seconds=3600)
    crashed.open(0, 0)
    crashed.write([_out(_ev("a", DAY1)), _out(_ev("b", DAY1))])
    staged = next((tmp_path / STAGING).iterdir())
    with staged.open("ab") as f:  # a batch whose write never returned: half a frame
        f.write((500).to_bytes(4, "big") + b"\x92partial")
    crashed._file.close()  # type: ignore[union-attr]  # the process died: no close()
    again = ArchiveSink(str(tmp_path), roll_rows=1000, roll_seconds=3600)
    again.open(0, 1)
    assert _archived(tmp_path) == [("p1", "2026", "01", "05", 2)]
    again.write([_out(_ev("c", DAY1))])
    again.close()
    assert _archived(tmp_path) == [("p1", "2026", "01", "05", 3)]


def test_no_directory_means_no_archive(tmp_path: Path) -> None:
    sink = ArchiveSink("")
    sink.open(0, 0)
    sink.write([_out(_ev("a", DAY1))])
    sink.close()
    assert not any(tmp_path.iterdir())
