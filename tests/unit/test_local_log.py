"""The embedded event log: durability before the answer, torn tails, group commit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from storage.local_log import LocalEventLog


def test_append_read_and_offsets(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path)
    assert [log.append_sync(f"r{i}".encode(), 1) for i in range(3)] == [0, 1, 2]
    assert log.read(1) == [(1, b"r1"), (2, b"r2")]
    assert log.pending_items == 3
    log.ack(1)
    assert log.pending_items == 1
    log.close()
    again = LocalEventLog(tmp_path)
    assert again.committed == 3
    assert again.append_sync(b"r3", 1) == 3
    again.close()


def test_concurrent_appends_share_fsyncs_and_keep_every_record(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path)

    async def many() -> list[int]:
        return await asyncio.gather(*(log.append(f"x{i}".encode(), 1) for i in range(500)))

    offsets = asyncio.run(many())
    assert sorted(offsets) == list(range(500))
    assert {p for _, p in log.read(0)} == {f"x{i}".encode() for i in range(500)}
    log.close()


def test_torn_tail_is_cut_and_appends_continue(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path)
    for i in range(3):
        log.append_sync(f"r{i}".encode(), 1)
    log.close()
    segment = next(tmp_path.glob("*.log"))
    with open(segment, "ab") as fh:
        fh.write(b"\x10\x00\x00\x00garbage")  # a crash in the middle of a header+payload
    log = LocalEventLog(tmp_path)
    assert log.committed == 3
    assert log.append_sync(b"r3", 1) == 3
    assert [p for _, p in log.read(0)] == [b"r0", b"r1", b"r2", b"r3"]
    log.close()


def test_segments_roll_and_acked_ones_are_removed(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path, segment_bytes=100)
    for i in range(20):
        log.append_sync(b"x" * 40 + str(i).encode(), 1)
    assert len(list(tmp_path.glob("*.log"))) > 5
    assert len(log.read(0)) == 20
    log.ack(15)
    assert min(int(p.stem) for p in tmp_path.glob("*.log")) <= 16
    assert [o for o, _ in log.read(16)] == [16, 17, 18, 19]
    log.close()


def test_kill_9_after_acknowledged_appends_loses_nothing(tmp_path: Path) -> None:
    """A child appends and prints each acknowledged offset; we SIGKILL it mid-stream."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        from storage.local_log import LocalEventLog
        log = LocalEventLog(Path({str(tmp_path)!r}))
        async def main():
            i = 0
            while True:
                offs = await asyncio.gather(*(log.append(b"p%d" % (i + k), 1) for k in range(8)))
                i += 8
                print(max(offs), flush=True)
        asyncio.run(main())
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             cwd=Path(__file__).resolve().parents[2], text=True)
    acked = -1
    assert child.stdout is not None
    for line in child.stdout:
        acked = int(line)
        if acked > 2000:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    log = LocalEventLog(tmp_path)
    assert log.committed > acked
    records = log.read(0, max_bytes=1 << 30)
    assert [o for o, _ in records] == list(range(log.committed))
    log.close()
