"""From generated records to the stream a gateway receives: retries, late uploads, bad
records, arrival order, and the stats measured on the result.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from stream.generate.model import SessionTruth, Stats
from stream.generate.people import new_uuid

DUPLICATE_RATE = 0.01  # an SDK retry resends an event it already sent, byte for byte
LATE_RATE = 0.004  # an upload queued offline goes out minutes to hours later
_MINUTE = 60_000
YEAR_2100_MS = 4_102_444_800_000
INVALID_KINDS = (
    "missing_insert_id",
    "time_as_string",
    "time_in_seconds",
    "far_future",
    "missing_event_name",
    "no_identity",
    "unknown_field",
    "properties_not_object",
)


def arrange(
    rng: random.Random,
    records: list[dict[str, Any]],
    arrivals: list[int],
    invalid_rate: float,
) -> tuple[list[dict[str, Any]], list[int]]:
    """Add retried copies, delay some uploads, add invalid records; sort by arrival.

    Returns the records in arrival order and the positions of the invalid ones. Ties
    keep generation order (the sort is stable), so the result depends on the seed only.
    """
    records = list(records)
    arrivals = list(arrivals)
    count = len(records)
    on_device = [i for i in range(count) if "device_id" in records[i]]
    for index in rng.sample(on_device, round(len(on_device) * LATE_RATE)):
        arrivals[index] += rng.randint(5 * _MINUTE, 360 * _MINUTE)
    for index in sorted(rng.sample(range(count), round(count * DUPLICATE_RATE))):
        records.append(dict(records[index]))
        arrivals.append(arrivals[index] + rng.randint(1_000, 30_000))
    invalid: set[int] = set()
    if invalid_rate > 0 and count:
        wanted = max(1, round(count * invalid_rate))
        for index in sorted(rng.choices(range(count), k=wanted)):
            invalid.add(len(records))
            records.append(corrupt(rng, records[index], rng.choice(INVALID_KINDS)))
            arrivals.append(arrivals[index] + 1)
    order = sorted(range(len(records)), key=arrivals.__getitem__)
    positions = [pos for pos, index in enumerate(order) if index in invalid]
    return [records[index] for index in order], positions


def corrupt(rng: random.Random, record: dict[str, Any], kind: str) -> dict[str, Any]:
    """A copy of ``record`` broken in one way a real producer breaks records."""
    bad = dict(record)
    bad["insert_id"] = new_uuid(rng)
    if kind == "missing_insert_id":
        del bad["insert_id"]
    elif kind == "time_as_string":
        when = datetime.fromtimestamp(record["time"] / 1000, tz=UTC)
        bad["time"] = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    elif kind == "time_in_seconds":
        bad["time"] = record["time"] // 1000  # a unit mistake: lands in January 1970
    elif kind == "far_future":
        bad["time"] = YEAR_2100_MS
    elif kind == "missing_event_name":
        del bad["event_name"]
    elif kind == "no_identity":
        bad.pop("distinct_user_id", None)
        bad.pop("device_id", None)
    elif kind == "unknown_field":
        bad["userId"] = record.get("distinct_user_id") or record.get("device_id")
    elif kind == "properties_not_object":
        bad["custom_properties"] = "quantity=2&price=5.0"
    else:
        raise ValueError(f"kind: unknown invalid record kind {kind!r}")
    return bad


def measure(
    events: list[dict[str, Any]],
    invalid_indexes: list[int],
    profiles: int,
    sessions: list[SessionTruth],
) -> Stats:
    """Count what the stream actually contains. Server events are those without a device."""
    invalid = set(invalid_indexes)
    seen: set[str] = set()
    names: Counter[str] = Counter()
    newest: dict[str, int] = {}  # per device: the newest event time received so far
    tied: set[str] = set()
    first_anonymous: dict[str, int] = {}
    last_login: dict[str, int] = {}
    duplicates = late = server = 0
    times: list[int] = []
    for position, event in enumerate(events):
        if invalid and position in invalid:
            continue
        insert_id = event["insert_id"]
        if insert_id in seen:
            duplicates += 1
            continue
        seen.add(insert_id)
        name = event["event_name"]
        names[name] += 1
        when = event["time"]
        times.append(when)
        device = event.get("device_id")
        if device is None:
            server += 1
            continue
        before = newest.get(device)
        if before is None or when >= before:
            newest[device] = when
        else:
            late += 1
        if "distinct_user_id" in event:
            tied.add(device)
            if name == "Login" and when > last_login.get(device, -1):
                last_login[device] = when
        elif when < first_anonymous.get(device, when + 1):
            first_anonymous[device] = when
    switched = sum(
        1 for device, when in first_anonymous.items() if last_login.get(device, -1) > when
    )
    valid = len(events) - len(invalid)
    return Stats(
        records=len(events),
        valid_records=valid,
        unique_insert_ids=len(seen),
        duplicates=duplicates,
        late_events=late,
        invalid=len(invalid),
        users=profiles,
        devices=len(newest),
        anonymous_devices=len(newest) - len(tied),
        logged_out_then_login=switched,
        sessions=len(sessions),
        sessions_closed=sum(1 for s in sessions if s.end == "close"),
        sessions_crashed=sum(1 for s in sessions if s.end == "crash"),
        purchases=names["Purchase"],
        server_events=server,
        first_time_ms=min(times, default=0),
        last_time_ms=max(times, default=0),
        by_event=dict(sorted(names.items())),
    )
