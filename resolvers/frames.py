"""What query runners compute on: the columns stores hand back, and small shared helpers.

``EventStore.scan_events`` hands back one row per stored event in ``[start, end)``,
ordered by ``(time, insert_id)``, with these columns (a query asks for a subset):

- ``insert_id`` (string), ``event_name`` (string), ``category`` (string),
  ``time`` (int64, unix ms, UTC), ``session_id`` (string), ``dedupe_key`` (uint64: a hash
  of project and insert id — a numeric tie-breaker for events at the same millisecond)
- ``user_id`` (string, never null): the resolved identity — the event's own user, else the
  user its device is tied to, else the device id (DESIGN.md "Identity")
- ``user_key`` (uint64): a 64-bit hash of ``user_id``, for runners that only group by user.
  Moving ten million ids as strings and hashing them again in Python costs three times
  what the keys do; two ids share a key with odds of about n²/2⁶⁵ (10⁻⁶ at ten million
  users) — documented in docs/decisions.md
- ``device_id``, ``url``, ``source_id``, ``browser`` (strings, nullable), ``ingest_time``
  (int64, unix ms: when CEP accepted the event)
- ``properties`` (string: the custom properties as a JSON object, nullable)
- ``city state country device_type os app_version`` (strings, nullable): what enrichment
  found for the event itself; profile traits win over these where a runner needs a user's
  place or device (``profile_first``).

``ProfileStore.scan_profiles`` hands back one row per user with any trait: ``user_id``,
``city state country postal_code device_type os gender email phone`` (strings),
``app_version``, ``lat long age`` (float64), and ``traits`` (string: every trait as a JSON
object).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from resolvers.errors import bad_input
from storage.ports import EVENT_SCAN_COLUMNS as EVENT_SCAN_COLUMNS

# Columns a property filter or breakdown may name directly; anything else is a custom
# property read from ``properties``.
EVENT_ATTRIBUTES = ("event_name", "category", "url", "city", "state", "country",
                    "device_type", "os", "app_version", "device_id", "session_id")
PERIODS = ("day", "week", "month")
Int64s = np.ndarray[Any, np.dtype[np.int64]]
DAY_MS = 86_400_000


def property_values(events: pa.Table, key: str) -> list[Any]:
    """The value of ``key`` on each event: a column if ``key`` names one, else the custom
    property (``None`` where absent or not a JSON scalar)."""
    if key in EVENT_ATTRIBUTES and key in events.column_names:
        values: list[Any] = events.column(key).to_pylist()
        return values
    out: list[Any] = []
    for raw in events.column("properties").to_pylist():
        if raw is None:
            out.append(None)
            continue
        value = orjson.loads(raw).get(key)
        out.append(value if isinstance(value, str | int | float | bool) else None)
    return out


def zone(name: str | None, field: str = "timezone") -> ZoneInfo | None:
    """A time zone by IANA name; ``None`` (UTC) when not given."""
    if name is None or name.upper() == "UTC":
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        raise bad_input(field, f"{name!r} is not an IANA time zone like 'Europe/Berlin'"
                        ) from None


def period_index(times_ms: np.ndarray[Any, Any], period: str,
                 tz: ZoneInfo | None = None) -> np.ndarray[Any, np.dtype[np.int64]]:
    """A monotone integer per period holding each time: days since the epoch (``day``),
    weeks of Monday-started days (``week``), or months since 1970-01 (``month``), in the
    local calendar of ``tz`` (UTC when ``None``). Consecutive periods differ by 1."""
    times: np.ndarray[Any, np.dtype[np.int64]] = np.asarray(times_ms, dtype=np.int64)
    if tz is not None and len(times):
        times = times + _offsets_ms(times, tz)
    days: np.ndarray[Any, np.dtype[np.int64]] = np.floor_divide(times, DAY_MS)
    if period == "day":
        return days
    if period == "week":  # 1970-01-01 was a Thursday: day 0 is in the week of Mon 12-29
        weeks: np.ndarray[Any, np.dtype[np.int64]] = np.floor_divide(days + 3, 7)
        return weeks
    if period == "month":
        months = days.astype("datetime64[D]").astype("datetime64[M]")
        result: np.ndarray[Any, np.dtype[np.int64]] = months.astype(np.int64)
        return result
    raise ValueError(f"unknown period {period!r}")


def period_label(index: int, period: str) -> str:
    """The first day (ISO date) of the period ``period_index`` returned ``index`` for."""
    if period == "day":
        return str(np.datetime64(index, "D"))
    if period == "week":
        return str(np.datetime64(index * 7 - 3, "D"))
    return str(np.datetime64(index, "M").astype("datetime64[D]"))


def _offsets_ms(times: np.ndarray[Any, Any], tz: ZoneInfo) -> np.ndarray[Any, Any]:
    """The UTC offset of ``tz`` at each time, in ms (DST-aware; computed per hour)."""
    from datetime import UTC, datetime

    hours = np.floor_divide(times, 3_600_000)
    unique, inverse = np.unique(hours, return_inverse=True)
    offsets = np.array([
        int(datetime.fromtimestamp(int(h) * 3600, tz=UTC).astimezone(tz)
            .utcoffset().total_seconds() * 1000)  # type: ignore[union-attr]
        for h in unique], dtype=np.int64)
    return offsets[inverse]


def encode(column: pa.ChunkedArray | pa.Array, nulls: bool = False
           ) -> tuple[Int64s, pa.Array]:
    """``(indices, dictionary)`` of one hash pass over the column, chunk by chunk (the
    chunks share one dictionary, so nothing is copied into one array first). Null rows get
    -1, or a code of their own with ``nulls``."""
    chunked = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
    if pa.types.is_dictionary(chunked.type) or pa.types.is_null(chunked.type):
        chunked = chunked.cast(pa.string())
    encoded = pc.dictionary_encode(chunked, null_encoding="encode" if nulls else "mask")
    if not encoded.num_chunks:
        return np.zeros(0, np.int64), pa.array([], chunked.type)
    dictionary = encoded.chunks[-1].dictionary
    if any(len(c.dictionary) != len(dictionary) for c in encoded.chunks):
        # not one shared dictionary (another pyarrow's kernel): encode one array instead
        return encode(chunked.combine_chunks(), nulls)
    parts = [c.indices.fill_null(-1).to_numpy(zero_copy_only=False) for c in encoded.chunks]
    return np.concatenate(parts).astype(np.int64), dictionary


def sorted_codes(column: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, np.ndarray[Any, Any]]:
    """``(values, codes)``: the distinct non-null values sorted, and each row's index into
    them (-1 for null) — np.unique's ``return_inverse`` without copying strings to numpy."""
    raw, dictionary = encode(column)
    order = pc.sort_indices(dictionary).to_numpy()
    rank = np.empty(len(order) + 1, dtype=np.int64)
    rank[order] = np.arange(len(order))
    rank[-1] = -1  # raw -1 (null) picks the last slot
    return dictionary.take(pa.array(order, pa.int64())), rank[raw]


def codes(column: pa.ChunkedArray | pa.Array) -> tuple[Int64s, pa.Array]:
    """Dense integer codes (nulls get a code of their own) and the values they stand for."""
    return encode(column, nulls=True)


def distinct(values: Int64s) -> Int64s:
    """The sorted distinct values (``np.unique`` is many times slower on 1M int64 here)."""
    ordered = np.sort(values)
    if len(ordered) == 0:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
