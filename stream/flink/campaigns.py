"""Campaign triggers in the PyFlink job: the same rules as the embedded runner
(``stream.operators.triggers``), with the timers as Flink keyed state and Flink timers.

Keyed by ``(project, user)`` — the event's user id, else its device id. Nothing here imports
PyFlink: :class:`UserTriggers` works over a small state port that the PyFlink function
(``stream.flink.functions.CampaignTriggers``) backs with a ``ValueState`` and its timer
service, and a test can back with dicts.

- **Order.** Triggers need a user's events in event-time order; the job's upstream shuffles
  (de-duplication keyed by insert id) can swap events that arrive close together. Events wait
  in state (``pending``) until the watermark passes them, or for ``margin_ms`` of processing
  time if it does not (a quiet stream), then are observed sorted by ``(time, insert id)``.
  ``margin_ms`` is the job's out-of-orderness bound.
- **Timers** fire on the event-time watermark (a Flink event-time timer at the timer's due
  time: the user's events up to it have arrived) — that is how a replay or a backlog fires
  them, in event time, exactly as the embedded runner does while catching up. A *live* timer
  (due in the future when armed) also gets a processing-time timer at due + ``margin_ms`` on
  the wall clock, since a quiet stream does not move the watermark: the embedded runner's
  wall clock once caught up. Whichever comes first fires it; the other finds nothing.
- **Campaigns** are read from Redis (``cep:campaigns``, written by the gateway; cached and
  re-read every few seconds, like the session rules). A paused or deleted campaign's timers
  are dropped when its user's key next wakes up.

Firings leave as :class:`~stream.flink.records.CampaignFiring` outputs; the ``stores`` sink
appends them to the Redis stream the gateway's delivery worker reads. A replay from a
checkpoint may emit a firing again: the gateway's outbox and delivery log are keyed by the
firing (campaign + user + firing id), so it is delivered once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import msgspec

from stream.flink.records import CampaignFiring
from stream.flink.rules import RedisHash
from stream.operators.triggers import Timer, Trigger, TriggerEvent, Triggers, trigger_of

CAMPAIGNS_KEY = "cep:campaigns"  # hash: project -> JSON {campaign id: campaign spec}


class Pending(msgspec.Struct, array_like=True):
    insert_id: str
    name: str
    time: int
    fields: dict[str, Any]


class UserState(msgspec.Struct, array_like=True):
    """One user's armed timers (``(campaign, due, firing, armed, live)``: ``live`` when it
    has a processing-time timer too) and the events waiting to be observed."""

    timers: list[tuple[str, int, str, int, bool]] = msgspec.field(default_factory=list)
    pending: list[Pending] = msgspec.field(default_factory=list)


class StatePort(Protocol):
    def get(self) -> UserState | None: ...
    def set(self, state: UserState | None) -> None: ...


class TimerPort(Protocol):
    def event_time(self, timestamp: int) -> None: ...
    def processing_time(self, timestamp: int) -> None: ...


def _parse_campaigns(value: bytes) -> dict[str, Trigger]:
    specs = json.loads(value)
    triggers = {cid: trigger_of(spec) for cid, spec in specs.items()}
    return {cid: t for cid, t in triggers.items() if t is not None}


class CampaignRules:
    """Each project's active campaign triggers, read from Redis (``RedisHash``: refreshed
    every ``refresh_s``, the last ones read kept when Redis cannot be reached). Picklable:
    connects in ``open`` (on the task manager)."""

    def __init__(self, redis_url: str | None, refresh_s: float = 2.0) -> None:
        self._campaigns = RedisHash(redis_url, CAMPAIGNS_KEY, _parse_campaigns, refresh_s)

    def open(self) -> None:
        self._campaigns.open()

    def close(self) -> None:
        self._campaigns.close()

    def triggers(self, project: str) -> dict[str, Trigger]:
        return self._campaigns.values().get(project, {})


class UserTriggers:
    """One ``(project, user)`` key's triggers over :class:`StatePort` and :class:`TimerPort`."""

    def __init__(self, campaigns: Callable[[str], Mapping[str, Trigger]], margin_ms: int,
                 now_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._campaigns = campaigns
        self._margin = margin_ms
        self._now = now_ms

    def on_event(self, state: StatePort, timers: TimerPort, event: TriggerEvent) -> None:
        held = state.get() or UserState()
        timers.event_time(event.time)  # in order once the watermark passes it
        if not held.pending:  # or after the margin, when the watermark stalls
            timers.processing_time(self._now() + self._margin)
        held.pending.append(Pending(event.insert_id, event.name, event.time,
                                    dict(event.fields)))
        state.set(held)

    def on_timer(self, state: StatePort, timers: TimerPort, project: str, user: str,
                 timestamp: int, event_time: bool) -> list[CampaignFiring]:
        held = state.get()
        if held is None:
            return []
        campaigns = self._campaigns(project)
        t = Triggers(campaigns, [Timer(c, user, due, firing, armed)
                                 for c, due, firing, armed, _ in held.timers])
        live = {c for c, *_, is_live in held.timers if is_live}
        now = self._now()
        if event_time:  # the watermark passed timestamp: events up to it are all here
            ready = [p for p in held.pending if p.time <= timestamp]
            held.pending = [p for p in held.pending if p.time > timestamp]
        else:
            ready, held.pending = held.pending, []
        fired = t.observe([TriggerEvent(user, p.insert_id, p.name, p.time, p.fields)
                           for p in ready])
        if event_time:
            fired += t.due(timestamp + 1)
        else:
            fired += t.due(now - self._margin + 1, lambda x: x.campaign in live)
        if held.pending:
            timers.processing_time(now + self._margin)
        for (campaign, _), timer in t.changes():
            if timer is None:
                live.discard(campaign)
                continue
            timers.event_time(timer.due)
            if timer.due + self._margin > now:
                live.add(campaign)
                timers.processing_time(timer.due + self._margin)
            else:
                live.discard(campaign)
        held.timers = [(x.campaign, x.due, x.firing, x.armed, x.campaign in live)
                       for x in t.timers]
        state.set(held if held.timers or held.pending else None)
        return [CampaignFiring(project, f.campaign, f.user, f.firing, f.at,
                               f.event.name if f.event is not None
                               else campaigns[f.campaign].event)  # a timer's arming event
                for f in fired]
