"""The embedded archive writer with the real runner, log and store: every accepted event is
archived exactly once — across a crash between staging and commit, a failed commit the
runner redoes, a crash in the middle of a roll, and events of forgotten users."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from storage.archive import ParquetArchive
from storage.archive_stage import ArchiveStage, read_frames
from storage.duckdb_store import DuckDBStore
from storage.local_log import LocalEventLog
from storage.ports import WriteBatch
from stream.contract.event import Event
from stream.contract.records import LogRecord, encode_record
from stream.embedded import EmbeddedRunner
from stream.operators.enrich import Enricher
from stream.operators.suppress import Forgotten, Suppressions

T0 = 1_767_607_200_000  # 2026-01-05 10:00 UTC
MIN = 60_000


class FailingStore(DuckDBStore):
    """Fails the next ``fail`` commits (after the step was staged: a crash or a full disk)."""

    fail = 0

    def commit(self, batch: WriteBatch) -> None:
        if self.fail:
            self.fail -= 1
            raise OSError("disk full")
        super().commit(batch)


class Pipeline:
    """The embedded platform's archive wiring (``gateway.platform``), without the rest."""

    def __init__(self, root: Path, forgotten: Suppressions | None = None) -> None:
        self.root = root
        self.log = LocalEventLog(root / "log", fsync=False)
        self.store = FailingStore(root / "db.duckdb")
        self.archive = ParquetArchive(str(root / "archive"))
        self.stage = ArchiveStage(root / "staging", self.archive, roll_rows=1000,
                                  roll_seconds=3600, fsync=False)
        self.stage.recover(self.store.checkpoint())
        self.runner = EmbeddedRunner(
            self.log, self.store, Enricher(None, None), before_commit=self.stage.stage,
            on_commit=lambda batch, _changes: self.stage.committed(batch.next_offset),
            suppressed=(lambda: forgotten) if forgotten is not None else None)

    def send(self, *events: Event) -> None:
        record = LogRecord(events=list(events))
        self.log.append_sync(encode_record(record), record.items)

    def crash(self) -> None:
        """Gone without closing anything the archive holds (the staging file stays)."""
        self.runner.stop(drain=False)
        if self.stage._file is not None:
            self.stage._file.close()  # the OS closes a dead process's files
        self.log.close()
        self.store.close()

    def close(self) -> None:
        self.runner.stop(drain=True)
        self.stage.close()
        self.log.close()
        self.store.close()

    def archived(self) -> list[str]:
        """Every archived copy's insert id (copies included), sorted."""
        return sorted(r["insert_id"] for r in self.archive.query(
            "SELECT insert_id FROM raw_events").to_pylist())


def ev(iid: str, minute: int, user: str | None = "ann", device: str | None = "d1") -> Event:
    return Event(project="p1", insert_id=iid, event_name="Search", category="User Actions",
                 time=T0 + minute * MIN, ingest_time=T0 + minute * MIN,
                 distinct_user_id=user, device_id=device)


def test_steps_are_archived_once_committed_and_rolled(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    p.send(ev("a", 0), ev("b", 1))
    p.send(ev("a", 0), ev("c", 2))  # a retry: de-duplicated before the archive
    p.runner.run_until_idle()
    assert p.archived() == [], "staged, not rolled yet"
    assert p.stage.flush() == 3
    assert p.archived() == ["a", "b", "c"]
    p.send(ev("d", 3))
    p.close()
    assert p.archived() == ["a", "b", "c", "d"]


def test_a_crash_between_staging_and_commit_archives_each_event_once(tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    p.send(ev("a", 0))
    p.runner.run_until_idle()
    p.send(ev("b", 1), ev("c", 2))
    p.store.fail = 1
    with pytest.raises(OSError, match="disk full"):
        p.runner.run_until_idle()
    staged = next((tmp_path / "staging").iterdir())
    assert [s.next_offset for s, _end in read_frames(staged)] == [1, 2], (
        "the failed step is staged")
    p.crash()
    again = Pipeline(tmp_path)  # recover: the uncommitted frame is cut, the rest rolled
    assert again.archived() == ["a"]
    again.runner.run_until_idle()  # the step is redone from the log
    again.close()
    assert again.archived() == ["a", "b", "c"]


def test_a_failed_commit_redone_by_the_running_runner_is_not_archived_twice(
        tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    p.store.fail = 1
    p.runner.start()
    p.send(ev("a", 0), ev("b", 1))
    deadline = time.monotonic() + 30
    while p.runner.offset < 1 and time.monotonic() < deadline:  # fails, resets, redoes
        time.sleep(0.05)
    p.send(ev("c", 2))
    p.close()
    assert p.archived() == ["a", "b", "c"]


def test_a_crash_in_the_middle_of_a_roll_rolls_again_to_the_same_files(
        tmp_path: Path) -> None:
    p = Pipeline(tmp_path)
    p.send(ev("a", 0), ev("b", 24 * 60))  # two day partitions
    p.runner.run_until_idle()
    staged = next((tmp_path / "staging").iterdir())
    kept = staged.read_bytes()
    p.close()  # rolls both partitions and deletes the staging file…
    staged.write_bytes(kept)  # …but say it died before the delete
    again = Pipeline(tmp_path)
    again.close()
    assert again.archived() == ["a", "b"]
    assert len(again.archive.files()) == 2


def test_forgotten_users_events_never_reach_the_archive(tmp_path: Path) -> None:
    forgotten = Suppressions({"p1": Forgotten(frozenset({"ann"}), frozenset({"d1"}))})
    p = Pipeline(tmp_path, forgotten)
    p.send(ev("a", 0), ev("b", 1, user=None), ev("c", 2, user="bob", device="d1"),
           ev("d", 3, user="bob", device="d2"))
    p.runner.run_until_idle()
    assert p.store.count("events", "p1") == 2
    p.close()
    assert p.archived() == ["c", "d"]
