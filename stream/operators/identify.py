"""Identity: which user a device belongs to.

An event carrying both ``distinct_user_id`` and ``device_id`` ties the device to the user;
the device's latest tie (by event time) wins, and it resolves the device's anonymous
events before and after it. Resolution happens where answers are computed (the stores
join the ties), so a tie that arrives late still re-attributes earlier sessions.
"""

from __future__ import annotations

from collections.abc import Iterable

from stream.contract.event import Event

Tie = tuple[str, str, str, int]  # (project, device_id, user_id, event time ms)


def ties(events: Iterable[Event]) -> list[Tie]:
    """The latest tie per (project, device) among ``events``; later ties win, and on equal
    times the later-arriving one."""
    latest: dict[tuple[str, str], tuple[str, int]] = {}
    for e in events:
        if e.device_id and e.distinct_user_id:
            key = (e.project, e.device_id)
            prev = latest.get(key)
            if prev is None or e.time >= prev[1]:
                latest[key] = (e.distinct_user_id, e.time)
    return [(p, d, u, t) for (p, d), (u, t) in latest.items()]


def resolve(user_id: str | None, device_id: str | None, tied: dict[str, str]) -> str:
    """The identity an event counts for: its own user, else its device's tie, else the
    device itself."""
    if user_id:
        return user_id
    if device_id:
        return tied.get(device_id, device_id)
    return ""
