"""When people open the app: session start times with daily and weekly rhythms.

Rates are per local day. Evenings carry most sessions, lunchtime a second peak, nights
almost none; weekends are busier. Weekly shoppers come back on their own weekday.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random

from stream.generate import geo
from stream.generate.model import DAY_MS
from stream.generate.people import Person

HOUR_MS = 3_600_000
# Relative sessions per local hour, 00:00 to 23:00.
_HOURLY = (
    0.30, 0.15, 0.08, 0.05, 0.05, 0.10, 0.35, 0.80, 1.20, 1.30, 1.30, 1.50,
    1.70, 1.50, 1.20, 1.10, 1.30, 1.70, 2.30, 2.80, 2.90, 2.40, 1.50, 0.80,
)  # fmt: skip
_HOUR_CUM = tuple(itertools.accumulate(_HOURLY))
WEEKEND_FACTOR = 1.35


def poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method; fine for the small rates used here."""
    limit = math.exp(-lam)
    count = 0
    product = rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def session_starts(rng: random.Random, person: Person, start_ms: int, end_ms: int) -> list[int]:
    """Session start times (UTC ms, sorted) within ``[start_ms, end_ms)``.

    Day ``i`` is the ``i``-th local day of the person's city that overlaps the window.
    A new user's first day always has a session: the one in which they install the app.
    """
    city = person.city
    offset = geo.utc_offset_ms(city, start_ms)
    first_midnight = (start_ms + offset) // DAY_MS * DAY_MS
    starts: list[int] = []
    new_user = person.first_day > 0
    for day in range(person.first_day, person.last_day + 1):
        local_midnight = first_midnight + day * DAY_MS
        offset = geo.utc_offset_ms(city, local_midnight - offset + 12 * HOUR_MS)
        weekday = (local_midnight // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday
        factor = WEEKEND_FACTOR if weekday >= 5 else 1.0
        if person.archetype == "weekly":
            count = poisson(rng, person.rate * factor)
            if weekday == person.shop_weekday and rng.random() < 0.85:
                count += 1
        else:
            count = poisson(rng, person.rate * factor)
        if new_user and day == person.first_day:
            count = max(count, 1)
        for _ in range(count):
            hour = bisect.bisect(_HOUR_CUM, rng.random() * _HOUR_CUM[-1])
            local = local_midnight + hour * HOUR_MS + int(rng.random() * HOUR_MS)
            utc = local - offset
            if start_ms <= utc < end_ms:
                starts.append(utc)
    starts.sort()
    return starts
