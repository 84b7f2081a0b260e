"""The long-running CLI work of issue 10: files appear whole or not at all when interrupted,
and the offline dead-letter replay works in chunks (``gateway.cli_data``,
``stream.generate.files``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from gateway import cli_data
from gateway.cli_data import atomic_file, progress_bar, replay_dead_letters
from gateway.platform import Platform
from gateway.settings import Settings
from storage.ports import WriteBatch
from stream.contract.records import DeadLetter
from stream.generate import generate, write_ndjson


def test_atomic_file_appears_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    with atomic_file(target) as f:
        f.write(b"one\n")
        assert not target.exists()
    assert target.read_bytes() == b"one\n"

    def interrupted() -> None:
        with atomic_file(target) as f:
            f.write(b"half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert target.read_bytes() == b"one\n", "the earlier file is left as it was"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_progress_bar_counts_quietly_without_a_terminal() -> None:
    with progress_bar("work", 3) as advance:
        for _ in range(3):
            advance(1)


def test_an_interrupted_generate_leaves_no_file(tmp_path: Path) -> None:
    dataset = generate(seed=1, users=5, days=1, end_ms=1_767_607_200_000)
    out = tmp_path / "events.ndjson"

    def interrupted(_n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_ndjson(dataset, out, progress=interrupted)
    assert list(tmp_path.iterdir()) == []
    written: list[int] = []
    write_ndjson(dataset, out, progress=written.append)
    assert sum(written) == len(dataset.events) + len(dataset.profiles)
    assert len(out.read_bytes().splitlines()) == len(dataset.events)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    p = Platform.open(Settings.from_env(data_dir=tmp_path / "data", fsync=False),
                      start_runner=False)
    yield p
    p.close()


def test_the_offline_replay_goes_in_chunks(platform: Platform,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_data, "REPLAY_CHUNK", 2)
    project = platform.control.create_project("replay")["project"]
    now = int(time.time() * 1000)

    def letter(k: int, valid: bool) -> DeadLetter:
        record = {"event_name": "Search", "insert_id": f"e{k}", "device_id": "d1",
                  "time": now if valid else "never"}
        return DeadLetter(project=project, kind="event", index=k, reason="was bad",
                          payload=orjson.dumps(record), received_at=now)

    platform.store.commit(WriteBatch(next_offset=platform.store.checkpoint(), dead=[
        letter(k, valid=k % 2 == 0) for k in range(5)]))
    result = replay_dead_letters(platform, project)
    assert result.accepted == 3
    assert [i for i, _reason in result.rejected] == [1, 3]  # positions among all five
    assert platform.store.count("events", project) == 3
    statuses = platform.store.dead_letters(project, None, 10, 0).column("status").to_pylist()
    assert statuses == ["replayed", "open", "replayed", "open", "replayed"]
