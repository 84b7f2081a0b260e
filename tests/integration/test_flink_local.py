"""The PyFlink job in a local mini cluster gives the sessions ``Sessionizer.fold`` defines.

Runs ``python -m stream.flink.job`` with the Flink virtualenv's Python (parallelism 2,
small bundles, thread mode) over a fixed event set with duplicates, late events that merge
and split sessions, ties, server and producer sessions, and compares what the job emitted
(JSON lines) with the pure operators applied to the same events.

The Flink venv comes from ``scripts/flink/setup.sh`` (run here when missing); when it cannot
be set up the test is skipped, or fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import random
import re
import shutil
import subprocess  # nosec B404 - runs our own job and setup script with fixed arguments
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from stream.contract.event import Event
from stream.flink.keyed import Head, Held, KeySessions
from stream.flink.records import (
    DeviceTie,
    EnrichedEvent,
    Output,
    SessionDeleted,
    SessionUpsert,
    TooLate,
    output_from_json,
)
from stream.flink.store_sink import place_too_late
from stream.operators.enrich import Enricher
from stream.operators.identify import ties
from stream.operators.sessionize import Sessionizer, SessionRow, session_key

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("CEP_FLINK_VENV", ROOT / ".cache" / "flink-venv"))
PROJECT = "flink-it"
T0 = 1_767_607_200_000  # 2026-01-05 10:00 UTC
MIN = 60_000
HOUR = 60 * MIN
OUT_OF_ORDERNESS_MS = 1_000
LATENESS_MS = 6 * HOUR
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1")


def _unusable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def flink_python() -> Path:
    python = VENV / "bin" / "python"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        _unusable("no java: PyFlink needs a JDK 11/17/21")
    setup = subprocess.run(  # nosec B603 - our own script; idempotent (stamp file)
        ["bash", str(ROOT / "scripts" / "flink" / "setup.sh"), str(VENV)],
        capture_output=True, text=True, timeout=1200, check=False)
    if setup.returncode != 0 or not python.exists():
        _unusable(f"scripts/flink/setup.sh failed:\n{setup.stdout}\n{setup.stderr}")
    return python


def _event(insert_id: str, name: str, t: int, *, device: str | None = None,
           user: str | None = None, session: str | None = None, url: str | None = None,
           ua: str | None = None) -> Event:
    return Event(project=PROJECT, insert_id=insert_id, event_name=name,
                 category="User Actions", time=t, ingest_time=t + 500, distinct_user_id=user,
                 device_id=device, session_id=session, url=url, user_agent=ua,
                 ip="136.24.0.114" if device else None)


def arrivals() -> list[Event]:
    """Events in arrival order: the file the job reads, top to bottom."""
    a = [
        _event("a1", "App Launch", T0, device="devA", user="u1", url="/home", ua=IPHONE),
        _event("a2", "View", T0 + 1 * MIN, device="devA", url="/p/1", ua=IPHONE),
        _event("a3", "Add to Cart", T0 + 2 * MIN, device="devA", url="/cart", ua=IPHONE),
        _event("a4", "Purchase", T0 + 3 * MIN, device="devA", user="u1", ua=IPHONE),
        _event("a5", "App Close", T0 + 4 * MIN, device="devA", ua=IPHONE),
        _event("a6", "View", T0 + 50 * MIN, device="devA", url="/p/2", ua=IPHONE),
        _event("a7", "View", T0 + 55 * MIN, device="devA", url="/p/3", ua=IPHONE),
        _event("a8", "View", T0 + 2 * HOUR, device="devA", url="/p/4", ua=IPHONE),
    ]
    b = [
        _event("b1", "View", T0 + 10 * MIN, device="devB", url="/b"),
        _event("b2", "View", T0 + 12 * MIN, device="devB"),
        _event("b3", "Sign In", T0 + 14 * MIN, device="devB", user="u2"),
        _event("b4", "Search", T0 + 20 * MIN, device="devB", user="u2"),
    ]
    server = [
        _event("s1", "Purchase", T0 + 30 * MIN, user="u3"),
        _event("s2", "Charged", T0 + 31 * MIN, user="u3"),
    ]
    producer = [
        _event("p1", "View", T0 + 1 * HOUR, device="devC", session="psess-1"),
        _event("p2", "View", T0 + 3 * HOUR, device="devC", session="psess-1"),
    ]
    late = [
        # lands after a5 (App Close): starts a session that a6/a7 then join -> old one deleted
        _event("l1", "View", T0 + 25 * MIN, device="devA", url="/late"),
        # a start event between a6 and a7: splits that session, a7 moves
        _event("l2", "App Launch", T0 + 52 * MIN, device="devA"),
        # 45 min after a7 and 20 min before a8: a8 joins its new session
        _event("l3", "View", T0 + 100 * MIN, device="devA"),
        # before devB's first event, and a retry of b2
        _event("b0", "Open", T0 + 5 * MIN, device="devB"),
        _event("b2", "View", T0 + 12 * MIN, device="devB"),
        # a retry of b3 carrying another device: the first one wins, no devX session
        _event("b3", "Sign In", T0 + 14 * MIN, device="devX", user="u2"),
    ]
    day2 = [
        _event("a9", "App Launch", T0 + 24 * HOUR, device="devA", user="u1", ua=IPHONE),
        _event("a10", "View", T0 + 24 * HOUR + MIN, device="devA", ua=IPHONE),
        _event("a3", "Add to Cart", T0 + 2 * MIN, device="devA", url="/cart", ua=IPHONE),
        # far behind the watermark by now: too late if the watermark has moved on
        _event("d1", "View", T0 + 3 * HOUR, device="devD"),
    ]
    return a + b + server + producer + late + _random_devices() + day2


def _random_devices() -> list[Event]:
    """Five more devices over a few hours, locally shuffled, with some retries."""
    rng = random.Random(7)  # noqa: S311 - test data, not security
    names = ["View", "Search", "Add to Cart", "Purchase", "App Launch", "App Close", "Share"]
    out: list[Event] = []
    for d in range(5):
        t = T0 + rng.randrange(0, 60) * MIN
        for i in range(30):
            t += rng.choice([5_000, 40_000, 3 * MIN, 10 * MIN, 35 * MIN])
            user = f"ru{d}" if i > 10 and rng.random() < 0.3 else None
            out.append(_event(f"r{d}-{i}", rng.choice(names), t, device=f"rdev{d}", user=user,
                              url=f"/r/{rng.randrange(5)}"))
    out.sort(key=lambda e: e.time)
    for i in range(0, len(out) - 6, 4):  # swap neighbours within a few minutes' reach
        j = i + rng.randrange(1, 6)
        out[i], out[j] = out[j], out[i]
    out += [out[k] for k in rng.sample(range(len(out)), 12)]  # retries, arriving later
    return out


def _first_occurrences(events: list[Event]) -> list[Event]:
    seen: set[str] = set()
    out = []
    for e in events:
        if e.insert_id not in seen:
            seen.add(e.insert_id)
            out.append(e)
    return out


def _read_outputs(directory: Path) -> list[Output]:
    def order(p: Path) -> tuple[int, int]:
        _, subtask, attempt = p.stem.split("-")
        return int(attempt), int(subtask)

    out: list[Output] = []
    for path in sorted(directory.glob("part-*.jsonl"), key=order):
        out.extend(output_from_json(line) for line in path.read_bytes().splitlines() if line)
    return out


@pytest.mark.slow
def test_job_sessions_equal_fold(flink_python: Path, tmp_path: Path) -> None:
    events = arrivals()
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in events))
    out_dir = tmp_path / "out"
    run = _run_job(flink_python, ["--events", str(source), "--sink", f"jsonl:{out_dir}"],
                   tmp_path / "checkpoints")
    assert run.returncode == 0, f"job failed:\n{run.stdout}\n{run.stderr}"
    outputs = _read_outputs(out_dir)
    stats = _check(events, outputs, LATENESS_MS)
    # b3's retry from devX arrives after b3 (one file reader, one dedupe subtask): it is
    # the duplicate, so no devX session.
    assert not any(isinstance(o, SessionUpsert) and o.row.session_key == "d:devX"
                   for o in outputs)
    assert stats["moved"] > 0
    assert stats["deleted"] > 0


@pytest.fixture(scope="module")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``CEP_KAFKA_BOOTSTRAP`` when given, else a Kafka of our own from the dev stack."""
    given = os.environ.get("CEP_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    from clients.devstack import Ports
    from tests.integration.services import free_ports, running

    port, controller = free_ports(2)
    with running(tmp_path_factory.mktemp("kafka"), Ports(kafka=port, kafka_controller=controller),
                 ("kafka",)):
        yield f"127.0.0.1:{port}"


@pytest.mark.slow
def test_job_from_kafka(flink_python: Path, tmp_path: Path, kafka_bootstrap: str) -> None:
    """The Kafka path: msgpack events on two ``raw.*`` topics, read to their end."""
    bootstrap = kafka_bootstrap
    # Keyed by identity, every retry follows its first copy in one partition.
    events = arrivals()
    prefix = f"raw.flinkit{os.getpid()}x{int(time.time())}"
    asyncio.run(_produce(bootstrap, prefix, events))
    out_dir = tmp_path / "out"
    run = _run_job(flink_python, ["--kafka", bootstrap, "--topics", re.escape(prefix) + r"\..*",
                                  "--from", "earliest", "--bounded", "--group-id", prefix,
                                  "--profiles-topic", "", "--dead-topic", "",
                                  "--sink", f"jsonl:{out_dir}"], tmp_path / "checkpoints")
    assert run.returncode == 0, f"job failed:\n{run.stdout}\n{run.stderr}"
    stats = _check(events, _read_outputs(out_dir), LATENESS_MS, in_order=False)
    assert stats["moved"] > 0


async def _produce(bootstrap: str, prefix: str, events: list[Event]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        for e in events:
            topic = f"{prefix}.{'app' if e.device_id else 'server'}"
            key = (e.distinct_user_id or e.device_id or "").encode()
            await producer.send(topic, msgspec.msgpack.encode(e), key=key)
        await producer.flush()
    finally:
        await producer.stop()


def _run_job(python: Path, extra: list[str], checkpoints: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JVM_ARGS": "-Xmx768m"}
    java17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")
    if "JAVA_HOME" not in env and java17.is_dir():
        env["JAVA_HOME"] = str(java17)
    started = time.monotonic()
    run = subprocess.run(  # nosec B603 - our own job module, fixed arguments
        [str(python), "-m", "stream.flink.job", "--parallelism", "2", "--bundle-size", "5",
         "--bundle-time-ms", "100", "--out-of-orderness-ms", str(OUT_OF_ORDERNESS_MS),
         "--allowed-lateness-ms", str(LATENESS_MS), "--checkpoint-interval-ms", "2000",
         "--checkpoint-dir", checkpoints.as_uri(), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    print(f"flink job: {time.monotonic() - started:.1f} s", file=sys.stderr)
    return run


def _check(events: list[Event], outputs: list[Output], lateness_ms: int,
           enriched: bool = True, in_order: bool = True) -> dict[str, int]:
    """What the job emitted for ``events`` against the pure operators. ``in_order``: the
    job received ``events`` in this order (one reader), so retries are known duplicates."""
    too_late = {o.event.insert_id: o for o in outputs if isinstance(o, TooLate)}
    unique = _first_occurrences(events)
    # The bound: only events at least the allowed lateness behind what had arrived before
    # them (minus the watermark's own lag) may be reported too late — or, once a key had
    # one, its events that the store's sessions may reach.
    if in_order:
        highest, checked, handed = -(2**63), set(), set()
        for e in events:
            if e.insert_id in too_late and e.insert_id not in checked:  # its first arrival
                checked.add(e.insert_id)
                if session_key(e) not in handed:
                    assert e.time + lateness_ms <= highest - OUT_OF_ORDERNESS_MS, e.insert_id
                handed.add(session_key(e))
            highest = max(highest, e.time)
    placed = [e for e in unique if e.insert_id not in too_late]

    sessions, finals = _final_sessions(outputs)
    by_key: dict[str, list[Event]] = defaultdict(list)
    for e in placed:
        by_key[session_key(e)].append(e)
    sessionizer = Sessionizer()
    expected: dict[str, SessionRow] = {}
    assigned: dict[str, str] = {}
    for key, evs in by_key.items():
        rows, ids = sessionizer.assign(key, evs)
        expected.update((r.session_id, r) for r in rows)
        assigned.update(ids)
    assert sorted(sessions) == sorted(expected)
    for sid, row in expected.items():
        assert sessions[sid] == row, sid
    assert finals >= set(expected), "end of input fires every session's inactivity timer"

    # Events: each placed once, and its latest record names the session fold gives it.
    latest: dict[str, EnrichedEvent] = {}
    for o in outputs:
        if isinstance(o, EnrichedEvent):
            assert o.moved or o.event.insert_id not in latest, "sent twice without moving"
            latest[o.event.insert_id] = o
    assert {i: o.session_id for i, o in latest.items()} == assigned
    if enriched:
        iphone = latest["a1"].enrichment
        assert (iphone.device_type, iphone.os, iphone.browser) == (
            "mobile", "iOS", "Mobile Safari")

    # Ties: the latest user per device is the one identify.ties picks.
    assert _latest_ties(outputs) == {d: u for _p, d, u, _t in ties(unique)}
    return {
        "too_late": len(too_late),
        "moved": sum(1 for o in outputs if isinstance(o, EnrichedEvent) and o.moved),
        "deleted": sum(1 for o in outputs if isinstance(o, SessionDeleted)),
    }


def _final_sessions(outputs: list[Output]) -> tuple[dict[str, SessionRow], set[str]]:
    """The last upsert of each session id not deleted after it; the ids sent as final."""
    sessions: dict[str, SessionRow] = {}
    finals: set[str] = set()
    for o in outputs:
        if isinstance(o, SessionUpsert):
            sessions[o.row.session_id] = o.row
            if o.final:
                finals.add(o.row.session_id)
        elif isinstance(o, SessionDeleted):
            sessions.pop(o.session_id, None)
    return sessions, finals


def _latest_ties(outputs: list[Output]) -> dict[str, str]:
    tied: dict[str, DeviceTie] = {}
    for o in outputs:
        if isinstance(o, DeviceTie):
            held = tied.get(o.device_id)
            if held is None or o.time >= held.time:
                tied[o.device_id] = o
    return {d: t.user_id for d, t in tied.items()}


class _DictState:
    """``KeyState`` over dicts, keeping msgpack bytes as Flink keeps values (never the object
    that was put)."""

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
    """Event-time timers of every key, fired in time order like Flink's timer service."""

    def __init__(self) -> None:
        self.queue: list[tuple[int, str]] = []
        self.set: set[tuple[int, str]] = set()

    def of(self, key: str) -> _KeyTimers:
        return _KeyTimers(self, key)

    def due(self, watermark: int) -> tuple[int, str] | None:
        if self.queue and self.queue[0][0] <= watermark:
            timer = heapq.heappop(self.queue)
            self.set.discard(timer)
            return timer
        return None


class _KeyTimers:
    def __init__(self, timers: _Timers, key: str) -> None:
        self._timers, self._key = timers, key

    def register(self, timestamp: int) -> None:
        timer = (timestamp, self._key)
        if timer not in self._timers.set:
            self._timers.set.add(timer)
            heapq.heappush(self._timers.queue, timer)


def _simulate(events: list[Event], lateness_ms: int,
              sink: Callable[[list[Output]], None] | None = None,
              ) -> tuple[list[Output], dict[str, _DictState]]:
    """Flink's contract for one subtask: dedupe, then per key state and event-time timers,
    with the watermark moving after every event (the most adversarial for the bound).
    ``sink`` (optional) gets the outputs of every call as they come."""
    logic = KeySessions(Sessionizer(), Enricher(None, None).enrich, lateness_ms)
    states: dict[str, _DictState] = defaultdict(_DictState)
    timers = _Timers()
    outputs: list[Output] = []
    watermark = -(2**63)

    def emit(outs: Iterable[Output]) -> None:
        outs = list(outs)
        outputs.extend(outs)
        if sink is not None:
            sink(outs)

    def advance(to: int) -> None:
        while (timer := timers.due(to)) is not None:
            ts, key = timer
            emit(logic.on_timer(states[key], timers.of(key), ts))

    seen: set[str] = set()
    highest = watermark
    for e in events:
        if e.insert_id in seen:
            continue
        seen.add(e.insert_id)
        key = session_key(e)

        def now(w: int = watermark) -> int:
            return w

        emit(logic.on_event(states[key], timers.of(key), key, e, msgspec.msgpack.encode(e),
                            now))
        highest = max(highest, e.time)
        if highest - OUT_OF_ORDERNESS_MS - 1 > watermark:
            watermark = highest - OUT_OF_ORDERNESS_MS - 1
            advance(watermark)
    advance(2**63 - 1)
    return outputs, states


@pytest.mark.parametrize("seed", range(12))
def test_keyed_logic_equals_fold_with_a_moving_watermark(seed: int) -> None:
    """The per-key logic the job runs, without Flink: exact within the bound, too-late
    events reported (never dropped), and every key's state empty once the input ends."""
    events = arrivals()
    reach = (0, 8, 40)[seed % 3]  # how far an event may be displaced from its place
    lateness = (2 * HOUR, 6 * HOUR)[seed % 2]
    rng = random.Random(seed)  # noqa: S311 - test data
    for i in range(len(events) - 1):  # local disorder, as several producers give
        j = min(len(events) - 1, i + rng.randrange(0, reach + 1))
        events[i], events[j] = events[j], events[i]
    outputs, states = _simulate(events, lateness)
    stats = _check(events, outputs, lateness, enriched=False)
    assert stats["too_late"] >= 1  # d1 arrives a day behind
    assert stats["moved"] > 0
    assert all(s.head_ is None and not s.older_ for s in states.values())


class _MemoryStore:
    """What the ``stores`` sink keeps, in dicts: each session's latest row, each event's
    session. Read by ``stream.refold`` as Cassandra is."""

    def __init__(self) -> None:
        self.sessions: dict[str, SessionRow] = {}
        self.events: dict[str, tuple[Event, str]] = {}

    def write(self, outputs: list[Output]) -> None:
        """As ``StoresSink.write``: the batch without its too-late events, then those placed
        against what is stored."""
        self._apply([o for o in outputs if not isinstance(o, TooLate)])
        late = [o for o in outputs if isinstance(o, TooLate)]
        if late:
            self._apply(place_too_late(self, late, lambda _p: Sessionizer(),
                                       Enricher(None, None).enrich))

    def _apply(self, outputs: list[Any]) -> None:
        for o in outputs:
            if isinstance(o, EnrichedEvent):
                self.events[o.event.insert_id] = (o.event, o.session_id)
            elif isinstance(o, SessionUpsert):
                self.sessions[o.row.session_id] = o.row
            elif isinstance(o, SessionDeleted):
                self.sessions.pop(o.session_id, None)

    def sessions_overlapping(self, ranges: list[tuple[str, str, int, int]]) -> list[SessionRow]:
        return [r for p, k, lo, hi in ranges for r in self.sessions.values()
                if (r.project, r.session_key) == (p, k) and r.start_time <= hi
                and r.end_time >= lo]

    def events_in_ranges(self, ranges: list[tuple[str, str, int, int]]
                         ) -> list[tuple[Event, str]]:
        return [(e, sid) for p, k, lo, hi in ranges for e, sid in self.events.values()
                if (e.project, session_key(e)) == (p, k) and lo <= e.time <= hi]


@pytest.mark.parametrize("seed", range(12))
def test_state_and_store_placement_together_equal_fold(seed: int) -> None:
    """Too-late events placed against the stored sessions (the ``stores`` sink's way) and
    the rest placed by keyed state give, together, ``Sessionizer.fold`` over every event:
    each session's row and each event's session — whatever was too late for the state."""
    events = arrivals()
    reach = (0, 8, 40)[seed % 3]
    lateness = (10 * MIN, 30 * MIN, 2 * HOUR)[seed % 3 if seed < 9 else 0]
    rng = random.Random(seed)  # noqa: S311 - test data
    for i in range(len(events) - 1):
        j = min(len(events) - 1, i + rng.randrange(0, reach + 1))
        events[i], events[j] = events[j], events[i]
    store = _MemoryStore()
    outputs, states = _simulate(events, lateness, store.write)
    assert sum(isinstance(o, TooLate) for o in outputs) >= 3

    unique = _first_occurrences(events)
    by_key: dict[str, list[Event]] = defaultdict(list)
    for e in unique:
        by_key[session_key(e)].append(e)
    expected: dict[str, SessionRow] = {}
    assigned: dict[str, str] = {}
    for key, evs in by_key.items():
        rows, ids = Sessionizer().assign(key, evs)
        expected.update((r.session_id, r) for r in rows)
        assigned.update(ids)
    assert sorted(store.sessions) == sorted(expected)
    for sid, row in expected.items():
        assert store.sessions[sid] == row, sid
    assert {i: sid for i, (_e, sid) in store.events.items()} == assigned
    assert all(s.head_ is None and not s.older_ for s in states.values())
