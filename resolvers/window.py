"""Time windows: ``{last: "5m"}`` (s, m, h, d, w; ``5mins`` too) or ``{from, to}`` ISO-8601."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from resolvers.errors import bad_input

_UNITS = {
    "s": 1_000, "sec": 1_000, "secs": 1_000, "second": 1_000, "seconds": 1_000,
    "m": 60_000, "min": 60_000, "mins": 60_000, "minute": 60_000, "minutes": 60_000,
    "h": 3_600_000, "hr": 3_600_000, "hrs": 3_600_000, "hour": 3_600_000, "hours": 3_600_000,
    "d": 86_400_000, "day": 86_400_000, "days": 86_400_000,
    "w": 604_800_000, "wk": 604_800_000, "week": 604_800_000, "weeks": 604_800_000,
}
_LAST = re.compile(r"^\s*(\d+)\s*([a-zA-Z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Window:
    """Half-open ``[start, end)`` in unix milliseconds."""

    start: int
    end: int


def parse_duration(text: str, field: str) -> int:
    match = _LAST.match(text)
    if not match:
        raise bad_input(field, f"{text!r} is not a duration like '5m', '2h' or '30d'")
    unit = _UNITS.get(match[2].lower())
    if unit is None:
        raise bad_input(field, f"unknown unit {match[2]!r} (use s, m, h, d or w)")
    amount = int(match[1])
    if amount <= 0:
        raise bad_input(field, "must be positive")
    return amount * unit


def parse_instant(text: str, field: str) -> int:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_input(field, f"{text!r} is not an ISO-8601 date or time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def resolve_window(last: str | None, start: str | None, end: str | None, now_ms: int,
                   field: str = "window") -> Window:
    if last is not None:
        if start is not None or end is not None:
            raise bad_input(field, "give either last or from/to, not both")
        return Window(now_ms - parse_duration(last, f"{field}.last"), now_ms + 1)
    lo = parse_instant(start, f"{field}.from") if start is not None else 0
    hi = parse_instant(end, f"{field}.to") if end is not None else now_ms + 1
    if end is not None and len(end.strip()) == 10:  # a bare date: the whole day is included
        hi += 86_400_000
    if hi <= lo:
        raise bad_input(field, "to must be after from")
    return Window(lo, hi)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
