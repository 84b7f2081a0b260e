"""Which checkpoint ``--restore latest`` resumes from."""

from __future__ import annotations

import os
import time
from pathlib import Path

from stream.flink.job import restore_path


def _chk(root: Path, job: str, n: int, complete: bool = True) -> Path:
    folder = root / job / f"chk-{n}"
    folder.mkdir(parents=True)
    (folder / "state").write_bytes(b"x")
    if complete:
        (folder / "_metadata").write_bytes(b"m")
    return folder


def test_latest_is_the_highest_complete_checkpoint_not_the_last_touched(tmp_path: Path) -> None:
    _chk(tmp_path, "job-a", 3)
    newest = _chk(tmp_path, "job-a", 4)
    _chk(tmp_path, "job-a", 5, complete=False)  # in progress when the job died
    later = time.time() + 10
    # Flink was discarding chk-3 (subsumed) when it died: its folder changed last.
    os.utime(tmp_path / "job-a" / "chk-3", (later, later))
    assert restore_path("latest", tmp_path.as_uri()) == newest.as_uri()


def test_a_restored_job_continues_the_count_under_its_own_id(tmp_path: Path) -> None:
    _chk(tmp_path, "job-a", 7)
    restored = _chk(tmp_path, "job-b", 9)
    assert restore_path("latest", str(tmp_path)) == restored.as_uri()


def test_nothing_to_restore_is_a_fresh_start_and_a_path_is_kept(tmp_path: Path) -> None:
    assert restore_path("latest", tmp_path.as_uri()) is None
    assert restore_path(None, tmp_path.as_uri()) is None
    assert restore_path("file:///x/chk-1", tmp_path.as_uri()) == "file:///x/chk-1"
