"""Campaign triggers: which users a campaign fires for, event by event, with timers as keyed
state (issue 6). Pure: the embedded runner and the PyFlink job both drive it; they keep the
timers (``Timer``) durably and feed ``observe`` and ``due``.

A trigger is keyed by (campaign, user) — ``user`` is whatever identity the caller resolves
events to. Events of one user must be observed in event-time order (``observe`` sorts a
batch by ``(time, insert_id)`` itself; batches must not go back in time for a user).

- ``ON_EVENT``: every event named ``event`` whose ``where`` conditions hold fires at once;
  the firing id is the event's insert id.
- ``NOT_FOLLOWED_BY`` (abandoned cart): an ``event`` matching ``where`` arms a timer due at
  its time + ``within`` unless one is armed already (the first unanswered add to cart
  counts, so re-adding does not push the message back). An event named ``followed_by`` at
  or after the arming time and at or before the due time disarms it. The firing id is the
  arming event's insert id.
- ``INACTIVITY``: an event matching ``event`` (any name when ``None``) and ``where`` arms —
  or re-arms — a timer due at its time + ``within``; any other later event of the user
  disarms it. The firing id is the last arming event's insert id.
- ``exit_on``: an event with that name disarms the user's timer (exit on conversion).

A timer fires when its user's next event comes after its due time (``observe``), or when
``due(clock)`` is called with a clock past it. A caller passes the event time it has
processed up to (its watermark) while catching up, and the wall clock once it has: a
disarming event stamped exactly at the due time is then always seen first. Either way the
firings do not depend on how events are cut into batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream.operators.match import OPS, value_matches

TYPES = ("ON_EVENT", "NOT_FOLLOWED_BY", "INACTIVITY")
# what a trigger's ``where`` can test besides custom properties: the event's attributes and
# what enrichment found (these win over a property of the same name)
ATTRIBUTES = ("category", "url", "source_id", "app_version")
PLACE = ("city", "state", "country", "postal_code", "device_type", "os")


@dataclass(frozen=True, slots=True)
class Condition:
    key: str
    op: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class Trigger:
    type: str
    event: str | None = None
    where: tuple[Condition, ...] = ()
    followed_by: str | None = None
    within_ms: int | None = None
    exit_on: str | None = None

    def check(self, field: str = "trigger") -> None:
        """Raise ``ValueError`` naming the field of the first thing wrong."""
        if self.type not in TYPES:
            raise ValueError(f"{field}.type: unknown trigger type {self.type!r} "
                             f"(use {', '.join(TYPES)})")
        if self.type != "INACTIVITY" and not self.event:
            raise ValueError(f"{field}.event: required for {self.type}")
        if self.type == "NOT_FOLLOWED_BY" and not self.followed_by:
            raise ValueError(f"{field}.followedBy: required for NOT_FOLLOWED_BY")
        if self.type != "ON_EVENT" and (self.within_ms is None or self.within_ms <= 0):
            raise ValueError(f"{field}.within: a positive duration is required for "
                             f"{self.type}")
        for i, c in enumerate(self.where):
            if c.op not in OPS:
                raise ValueError(f"{field}.where[{i}].op: unknown operator {c.op!r}")


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    """What triggers read of an event: ``fields`` holds its attributes (``event_name``,
    ``category``, ``url``, ``city``, ``country``, ``device_type``, ``os``, …) and its custom
    properties; an attribute wins over a property of the same name."""

    user: str
    insert_id: str
    name: str
    time: int
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Timer:
    campaign: str
    user: str
    due: int  # unix ms
    firing: str  # the insert id of the arming event
    armed: int  # the arming event's time


@dataclass(frozen=True, slots=True)
class Firing:
    campaign: str
    user: str
    firing: str  # with campaign and user: the idempotency key of the message
    at: int  # event time of the firing event, or the timer's due time
    event: TriggerEvent | None = None  # the event that fired it (ON_EVENT) or armed it


Key = tuple[str, str]  # (campaign, user)


def trigger_of(spec: Mapping[str, Any]) -> Trigger | None:
    """A stored campaign spec's trigger (``None`` for a one-off send); ``exitOnConversion``
    makes the goal event an exit."""
    t = spec.get("trigger")
    if t is None:
        return None
    goal = spec.get("goal") or {}
    return Trigger(t["type"], t.get("event"),
                   tuple(Condition(c["key"], c["op"], c.get("value")) for c in t.get("where", ())),
                   t.get("followedBy"), t.get("withinMs"),
                   goal.get("event") if spec.get("exitOnConversion") else None)


def trigger_event(event: Any, enrichment: Any, user: str) -> TriggerEvent:
    """What triggers read of a stored event (``stream.contract.event.Event``) and its
    enrichment: its custom properties, then its attributes and place over them."""
    try:
        props = orjson.loads(event.properties or "{}")
    except orjson.JSONDecodeError:
        props = None
    fields: dict[str, Any] = dict(props) if isinstance(props, dict) else {}
    fields["event_name"] = event.event_name
    for name in ATTRIBUTES:
        if getattr(event, name) is not None:
            fields[name] = getattr(event, name)
    for name in PLACE:
        if getattr(enrichment, name):
            fields[name] = getattr(enrichment, name)
    return TriggerEvent(user, event.insert_id, event.event_name, event.time, fields)


def matches(trigger: Trigger, event: TriggerEvent) -> bool:
    """Whether ``event`` is one ``trigger`` starts on: its name (any for INACTIVITY without
    one) and every ``where`` condition."""
    if trigger.event is not None and event.name != trigger.event:
        return False
    return all(value_matches(event.fields.get(c.key), c.op, c.value) for c in trigger.where)


class Triggers:
    """The timers of a set of campaigns, and what fires."""

    def __init__(self, campaigns: Mapping[str, Trigger], timers: Iterable[Timer] = ()) -> None:
        self.campaigns = dict(campaigns)
        self._timers: dict[Key, Timer] = {(t.campaign, t.user): t for t in timers
                                          if t.campaign in self.campaigns}
        self._armed_events: dict[Key, TriggerEvent] = {}
        self._changed: dict[Key, Timer | None] = {}

    @property
    def timers(self) -> list[Timer]:
        return sorted(self._timers.values(), key=lambda t: (t.due, t.campaign, t.user))

    def set_campaigns(self, campaigns: Mapping[str, Trigger]) -> None:
        """Replace the campaign set; timers of campaigns gone (or paused) are dropped."""
        self.campaigns = dict(campaigns)
        for key in [k for k in self._timers if k[0] not in self.campaigns]:
            self._drop(key)

    def observe(self, events: Sequence[TriggerEvent]) -> list[Firing]:
        """Arm, disarm and fire on ``events``. Returns the ``ON_EVENT`` firings and the
        timers an event of their user shows to be due (due before that event's time: the
        user's stream has moved past it, so nothing can disarm it any more), in order."""
        fired: list[Firing] = []
        for e in sorted(events, key=lambda x: (x.user, x.time, x.insert_id)):
            for cid, trigger in self.campaigns.items():
                key = (cid, e.user)
                timer = self._timers.get(key)
                if timer is not None and timer.due < e.time:
                    fired.append(self._fire(timer))
                    timer = None
                if trigger.exit_on is not None and e.name == trigger.exit_on:
                    if timer is not None and e.time >= timer.armed:
                        self._drop(key)
                    continue
                if trigger.type == "ON_EVENT":
                    if matches(trigger, e):
                        fired.append(Firing(cid, e.user, e.insert_id, e.time, e))
                elif trigger.type == "NOT_FOLLOWED_BY":
                    self._not_followed_by(key, trigger, timer, e)
                else:
                    self._inactivity(key, trigger, timer, e)
        return fired

    def _not_followed_by(self, key: Key, trigger: Trigger, timer: Timer | None,
                         e: TriggerEvent) -> None:
        if (timer is not None and e.name == trigger.followed_by
                and timer.armed <= e.time <= timer.due):
            self._drop(key)
        elif timer is None and matches(trigger, e):
            self._arm(key, trigger, e)

    def _inactivity(self, key: Key, trigger: Trigger, timer: Timer | None,
                    e: TriggerEvent) -> None:
        if matches(trigger, e):
            if timer is None or (e.time, e.insert_id) >= (timer.armed, timer.firing):
                self._arm(key, trigger, e)
        elif timer is not None and e.time >= timer.armed and e.insert_id != timer.firing:
            self._drop(key)

    def due(self, clock: int, only: Callable[[Timer], bool] | None = None) -> list[Firing]:
        """Fire (and forget) every timer due before ``clock`` (those of them ``only`` accepts,
        when given), by due time."""
        ready = [t for t in self._timers.values()
                 if t.due < clock and (only is None or only(t))]
        ready.sort(key=lambda t: (t.due, t.campaign, t.user))
        return [self._fire(t) for t in ready]

    def _fire(self, t: Timer) -> Firing:
        key = (t.campaign, t.user)
        firing = Firing(t.campaign, t.user, t.firing, t.due, self._armed_events.get(key))
        self._drop(key)
        return firing

    def changes(self) -> list[tuple[Key, Timer | None]]:
        """Timers set (or dropped: ``None``) since the last call, to persist."""
        out = list(self._changed.items())
        self._changed.clear()
        return out

    def _arm(self, key: Key, trigger: Trigger, e: TriggerEvent) -> None:
        assert trigger.within_ms is not None
        timer = Timer(key[0], key[1], e.time + trigger.within_ms, e.insert_id, e.time)
        self._timers[key] = self._changed[key] = timer
        self._armed_events[key] = e

    def forget(self, users: Iterable[str]) -> None:
        """Drop every timer of ``users`` (an erasure): they fire for nobody."""
        gone = set(users)
        for key in [k for k in self._timers if k[1] in gone]:
            self._drop(key)

    def _drop(self, key: Key) -> None:
        if self._timers.pop(key, None) is not None:
            self._changed[key] = None
        self._armed_events.pop(key, None)
