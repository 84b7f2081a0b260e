"""``generate``: the whole synthetic stream for one seed."""

from __future__ import annotations

import gc
import random
from typing import Any

from stream.generate.arrival import Arrangement, arrange
from stream.generate.journeys import SESSION_GAP_MS, Journeys
from stream.generate.model import DAY_MS, Dataset, Stats
from stream.generate.people import VISITOR_SHARE, Population
from stream.generate.schedule import session_starts

DEFAULT_USERS = 200
DEFAULT_DAYS = 14


def generate(seed: int, users: int, days: int, end_ms: int, invalid_rate: float = 0.0) -> Dataset:
    """A grocery app's event stream: ``users`` people over the ``days`` before ``end_ms``.

    The same arguments give byte-identical output (one ``random.Random(seed)`` drives
    everything; Faker is seeded from it). Event times lie in
    ``[end_ms - days * 86_400_000, end_ms]``; events are in arrival order, which differs
    from time order for retried copies (~1 %) and late uploads. ``invalid_rate`` is the
    share of extra, deliberately broken records (their positions are in
    ``invalid_indexes``). Besides the ``users`` profiles, about 5 % more anonymous
    devices browse without ever signing in.
    """
    if users < 0:
        raise ValueError("users: must be zero or more")
    if days < 1:
        raise ValueError("days: must be at least 1")
    if not 0.0 <= invalid_rate < 1.0:
        raise ValueError("invalid_rate: must be in [0, 1)")
    # Millions of small acyclic dicts: the cyclic GC would rescan them over and over
    # (about a third of the run time) and never find garbage.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(seed, users, days, end_ms, invalid_rate)
    finally:
        if enabled:
            gc.enable()


def _generate(seed: int, users: int, days: int, end_ms: int, invalid_rate: float) -> Dataset:
    rng = random.Random(seed)
    start_ms = end_ms - days * DAY_MS
    population = Population(rng, days)
    people = [population.user() for _ in range(users)]
    people += [population.visitor() for _ in range(round(users * VISITOR_SHARE))]
    journeys = Journeys(rng, start_ms, end_ms)
    for person in people:
        owned = person.devices
        for start in session_starts(rng, person, start_ms, end_ms):
            # Most sessions happen on the main device.
            state = owned[0] if len(owned) == 1 or rng.random() < 0.75 else rng.choice(owned)
            if start < state.free_at:
                start = state.free_at + rng.randrange(20 * 60_000)
            if start >= end_ms:
                continue
            last = journeys.session(person, state, start)
            state.free_at = last + SESSION_GAP_MS
    arranged = arrange(
        rng, journeys.records, journeys.arrivals, journeys.devices, journeys.times, invalid_rate
    )
    profiles = [
        {"distinct_user_id": person.user_id, "traits": person.traits}
        for person in people
        if person.user_id is not None
    ]
    devices: list[dict[str, Any]] = [
        {
            "device_id": state.device.device_id,
            "distinct_user_id": person.user_id,
            "device_type": state.device.device_type,
            "os": state.device.os,
            "os_version": state.device.os_version,
            "model": state.device.model,
            "source_id": state.device.source_id,
            "app_version": state.device.app_version,
            "browser": state.device.browser,
            "user_agent": state.device.user_agent,
            "home_ip": state.home_ip,
            "city": person.city.name,
            "country": person.city.country,
        }
        for person in people
        for state in person.devices
        if state.device.device_id in journeys.seen_devices
    ]
    stats = _stats(journeys, arranged, len(profiles))
    return Dataset(
        seed=seed,
        start_ms=start_ms,
        end_ms=end_ms,
        events=arranged.events,
        profiles=profiles,
        devices=devices,
        sessions=journeys.sessions,
        invalid_indexes=arranged.invalid_positions,
        stats=stats,
    )


def _stats(journeys: Journeys, arranged: Arrangement, profiles: int) -> Stats:
    counts = journeys.counts
    sessions = journeys.sessions
    invalid = len(arranged.invalid_positions)
    valid = len(arranged.events) - invalid
    return Stats(
        records=len(arranged.events),
        valid_records=valid,
        unique_insert_ids=valid - arranged.copies,
        duplicates=arranged.copies,
        late_events=arranged.late,
        invalid=invalid,
        users=profiles,
        devices=len(journeys.seen_devices),
        anonymous_devices=len(journeys.seen_devices - journeys.tied_devices),
        logged_out_then_login=journeys.logins_after_anonymous,
        sessions=len(sessions),
        sessions_closed=sum(1 for s in sessions if s.end == "close"),
        sessions_crashed=sum(1 for s in sessions if s.end == "crash"),
        purchases=counts.get("Purchase", 0),
        server_events=sum(1 for device in journeys.devices if device is None),
        first_time_ms=min(journeys.times, default=0),
        last_time_ms=max(journeys.times, default=0),
        by_event=dict(sorted(counts.items())),
    )
