"""The Parquet archive (``storage.archive``): partitions, the query views, compaction and
erasure, on a local folder and through a filesystem that is not local."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from storage.archive import ParquetArchive
from stream.contract.event import Event

DAY1 = 1_767_607_200_000  # 2026-01-05 10:00 UTC
DAY2 = DAY1 + 86_400_000


def ev(iid: str, t: int = DAY1, user: str | None = "ann", device: str | None = "d1",
       project: str = "p1", ingest: int | None = None) -> Event:
    return Event(project=project, insert_id=iid, event_name="Search", category="User Actions",
                 time=t, ingest_time=ingest if ingest is not None else t + 5,
                 distinct_user_id=user, device_id=device, properties='{"q": "milk"}')


def rows(archive: ParquetArchive, sql: str) -> list[tuple[object, ...]]:
    return [tuple(r.values()) for r in archive.query(sql).to_pylist()]


def test_events_land_in_their_project_and_utc_day(tmp_path: Path) -> None:
    archive = ParquetArchive(str(tmp_path))
    assert archive.write_events([ev("a"), ev("b", DAY2), ev("c", project="p2")], "part-0") == 3
    assert sorted(str(Path(f).relative_to(tmp_path)) for f in archive.files()) == [
        "project=p1/year=2026/month=01/day=05/part-0.parquet",
        "project=p1/year=2026/month=01/day=06/part-0.parquet",
        "project=p2/year=2026/month=01/day=05/part-0.parquet"]
    assert rows(archive, "SELECT project, year, month, day, count(*) FROM events "
                "GROUP BY ALL ORDER BY ALL") == [("p1", 2026, 1, 5, 1), ("p1", 2026, 1, 6, 1),
                                                 ("p2", 2026, 1, 5, 1)]
    assert rows(archive, "SELECT properties, ingest_time FROM events "
                "WHERE insert_id = 'a'") == [('{"q": "milk"}', DAY1 + 5)]


def test_an_empty_archive_answers_with_no_rows(tmp_path: Path) -> None:
    archive = ParquetArchive(str(tmp_path / "nothing-yet"))
    assert rows(archive, "SELECT count(*) FROM events") == [(0,)]
    assert archive.compact().partitions == 0


def test_queries_take_parameters_and_see_one_row_per_event(tmp_path: Path) -> None:
    archive = ParquetArchive(str(tmp_path))
    archive.write_events([ev("a", ingest=DAY1 + 9), ev("b")], "part-0")
    archive.write_events([ev("a", ingest=DAY1 + 7)], "part-1")  # a replay's copy
    assert archive.query("SELECT count(*) AS n FROM raw_events").to_pylist() == [{"n": 3}]
    assert archive.query("SELECT insert_id, ingest_time FROM events WHERE project = ? "
                         "ORDER BY insert_id", ["p1"]).to_pylist() == [
        {"insert_id": "a", "ingest_time": DAY1 + 7}, {"insert_id": "b", "ingest_time": DAY1 + 5}]


def test_compaction_merges_a_partitions_files_without_copies(tmp_path: Path) -> None:
    archive = ParquetArchive(str(tmp_path))
    archive.write_events([ev("b", DAY1 + 2), ev("a", DAY1 + 1)], "part-0")
    archive.write_events([ev("a", DAY1 + 1), ev("c", DAY1 + 3)], "part-1")
    archive.write_events([ev("z", DAY2)], "part-0")  # alone in its day: left as it is
    seen: list[tuple[int, int]] = []
    result = archive.compact(lambda done, total: seen.append((done, total)))
    assert (result.partitions, result.files_in, result.rows, result.duplicates) == (1, 2, 3, 1)
    assert seen == [(0, 1), (1, 1)]
    day1 = [f for f in archive.files() if "day=05" in f]
    assert len(day1) == 1
    assert Path(day1[0]).name.startswith("compacted-")
    assert pq.read_table(day1[0]).column("insert_id").to_pylist() == ["a", "b", "c"]
    assert archive.compact().partitions == 0  # nothing left to merge
    assert rows(archive, "SELECT count(*) FROM raw_events") == [(4,)]


def test_an_interrupted_compaction_leaves_copies_the_view_hides_and_the_next_merges(
        tmp_path: Path) -> None:
    archive = ParquetArchive(str(tmp_path))
    archive.write_events([ev("a"), ev("b")], "part-0")
    archive.write_events([ev("b"), ev("c")], "part-1")
    folder = archive.files()[0].rpartition("/")[0]
    merged = archive._read(archive.files()[0])
    archive.write_file(f"{folder}/compacted-earlier.parquet", merged)  # died before deletes
    assert rows(archive, "SELECT count(*) FROM events") == [(3,)]
    assert archive.compact().rows == 3
    assert rows(archive, "SELECT count(*) FROM raw_events") == [(3,)]


def test_an_interrupted_write_leaves_no_file_behind(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    archive = ParquetArchive(str(tmp_path))
    write = pq.write_table

    def interrupted(*args: Any, **kw: Any) -> None:
        write(*args, **kw)  # the temporary file is there…
        raise KeyboardInterrupt  # …when Ctrl-C comes

    monkeypatch.setattr("storage.archive.pq.write_table", interrupted)
    with pytest.raises(KeyboardInterrupt):
        archive.write_events([ev("a")], "part-0")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_erase_rewrites_only_the_files_holding_the_users_rows(tmp_path: Path) -> None:
    archive = ParquetArchive(str(tmp_path))
    archive.write_events([ev("a1"), ev("b1", user="bob", device="d9")], "part-0")
    archive.write_events([ev("a2", DAY2, user=None, device="d1")], "part-0")  # her device
    archive.write_events([ev("b2", DAY2, user="bob", device="d1"),  # bob on her device
                          ev("x", DAY2, user=None, device="d7")], "part-1")
    untouched = {f: Path(f).stat().st_mtime_ns for f in archive.files() if "part-1" in f}
    assert sorted(archive.user_rows("p1", "ann", ["d1"], ["x"]).column(
        "insert_id").to_pylist()) == ["a1", "a2", "x"]
    assert archive.erase("p1", "ann", ["d1"], []) == 2
    assert rows(archive, "SELECT insert_id FROM events ORDER BY 1") == [("b1",), ("b2",), ("x",)]
    assert not [f for f in archive.files() if "day=06" in f and "part-0" in f], (
        "a file left empty is deleted")
    assert {f: Path(f).stat().st_mtime_ns for f in archive.files() if "part-1" in f} == (
        untouched)
    assert archive.erase("p1", "ann", ["d1"], []) == 0


def test_a_filesystem_that_is_not_local_is_written_directly(tmp_path: Path) -> None:
    remote = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    archive = ParquetArchive("bucket/cep", filesystem=remote)
    assert not archive.local
    archive.write_events([ev("a"), ev("b", DAY2)], "part-0")
    archive.write_events([ev("a")], "part-1")
    assert rows(archive, "SELECT count(*) FROM events") == [(2,)]
    assert archive.compact().duplicates == 1
    assert archive.erase("p1", "ann", [], []) == 2
    assert rows(archive, "SELECT count(*) FROM raw_events") == [(0,)]
    assert (tmp_path / "bucket" / "cep").is_dir()


def test_a_file_uri_opens_the_local_filesystem(tmp_path: Path) -> None:
    archive = ParquetArchive(tmp_path.as_uri())
    assert archive.local
    archive.write_events([ev("a")], "part-0")
    assert rows(ParquetArchive(str(tmp_path)), "SELECT insert_id FROM events") == [("a",)]
