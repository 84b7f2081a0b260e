"""From generated records to the stream a gateway receives: retries, late uploads, bad
records, and arrival order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


@dataclass(frozen=True, slots=True)
class Arrangement:
    events: list[dict[str, Any]]  # arrival order
    invalid_positions: list[int]
    copies: int  # retried copies; each is sent 1-30 s after its original
    late: int  # originals sent after a newer original of the same device


def arrange(
    rng: random.Random,
    records: list[dict[str, Any]],
    arrivals: list[int],
    devices: list[str | None],
    times: list[int],
    invalid_rate: float,
) -> Arrangement:
    """Add retried copies, delay some uploads, add invalid records; sort by arrival.

    ``devices`` and ``times`` run parallel to ``records`` (device id or ``None``, event
    time). Ties keep generation order (the sort is stable), so the result depends on
    the seed only.
    """
    count = len(records)
    arrivals = list(arrivals)
    on_device = [i for i, device in enumerate(devices) if device is not None]
    delayed = rng.sample(on_device, round(len(on_device) * LATE_RATE))
    for index in delayed:
        arrivals[index] += rng.randint(5 * _MINUTE, 360 * _MINUTE)
    late = _count_late(delayed, devices, times, arrivals)
    records = list(records)
    copies = sorted(rng.sample(range(count), round(count * DUPLICATE_RATE)))
    for index in copies:
        records.append(dict(records[index]))
        arrivals.append(arrivals[index] + rng.randint(1_000, 30_000))
    valid_end = len(records)
    if invalid_rate > 0 and count:
        wanted = max(1, round(count * invalid_rate))
        for index in sorted(rng.choices(range(count), k=wanted)):
            records.append(corrupt(rng, records[index], rng.choice(INVALID_KINDS)))
            arrivals.append(arrivals[index] + 1)
    order = sorted(range(len(records)), key=arrivals.__getitem__)
    invalid: list[int] = []
    if len(records) > valid_end:
        invalid = [position for position, index in enumerate(order) if index >= valid_end]
    return Arrangement([records[index] for index in order], invalid, len(copies), late)


def _count_late(
    delayed: list[int], devices: list[str | None], times: list[int], arrivals: list[int]
) -> int:
    """Delayed uploads that a newer event of their device overtook.

    Only delayed records can be overtaken: a device's other records leave in time order
    (one upload delay per session, sessions over 30 min apart).
    """
    if not delayed:
        return 0
    targets = {devices[index] for index in delayed}
    rows: dict[str | None, list[int]] = {device: [] for device in targets}
    for index, device in enumerate(devices):
        if device in targets:
            rows[device].append(index)
    late = 0
    for index in delayed:
        when, sent = times[index], arrivals[index]
        if any(times[j] > when and arrivals[j] < sent for j in rows[devices[index]]):
            late += 1
    return late


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
