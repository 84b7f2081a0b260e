"""The PyFlink job's campaign triggers (``stream.flink.campaigns``) over dict-backed state and
a simulated timer service: events observed in event-time order whatever their arrival order,
timers fired by the watermark (replays) or by the wall clock (live), and the same firings as
the embedded engine."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.flink.campaigns import UserState, UserTriggers
from stream.flink.records import CampaignFiring
from stream.operators.triggers import Trigger, TriggerEvent, Triggers

CART = Trigger("NOT_FOLLOWED_BY", "Add to Cart", followed_by="Purchase", within_ms=60_000)
THANKS = Trigger("ON_EVENT", "Charged")
MARGIN = 1_000


@dataclass
class Key:
    """One key's state (round-tripped through msgpack, as Flink stores it) and timers."""

    raw: bytes | None = None
    event_timers: set[int] = field(default_factory=set)
    processing_timers: set[int] = field(default_factory=set)

    def get(self) -> UserState | None:
        return None if self.raw is None else msgspec.msgpack.decode(self.raw, type=UserState)

    def set(self, state: UserState | None) -> None:
        self.raw = None if state is None else msgspec.msgpack.encode(state)

    def event_time(self, timestamp: int) -> None:
        self.event_timers.add(timestamp)

    def processing_time(self, timestamp: int) -> None:
        self.processing_timers.add(timestamp)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def ev(name: str, t: int, ident: str | None = None) -> TriggerEvent:
    return TriggerEvent("u", ident or f"{name}-{t}", name, t)


def advance_watermark(logic: UserTriggers, key: Key, to: int) -> list[CampaignFiring]:
    """Fire the key's event-time timers up to ``to`` in order, as Flink does."""
    out: list[CampaignFiring] = []
    while True:
        ready = sorted(t for t in key.event_timers if t <= to)
        if not ready:
            return out
        key.event_timers.discard(ready[0])
        out += logic.on_timer(key, key, "p", "u", ready[0], event_time=True)


def advance_clock(logic: UserTriggers, key: Key, clock: Clock, to: int) -> list[CampaignFiring]:
    out: list[CampaignFiring] = []
    while True:
        ready = sorted(t for t in key.processing_timers if t <= to)
        if not ready:
            clock.now = to
            return out
        key.processing_timers.discard(ready[0])
        clock.now = ready[0]
        out += logic.on_timer(key, key, "p", "u", ready[0], event_time=False)


def test_a_purchase_arriving_before_its_add_to_cart_still_disarms_it() -> None:
    clock = Clock(1_000_000)
    logic = UserTriggers(lambda p: {"cart": CART}, MARGIN, clock)
    key = Key()
    logic.on_event(key, key, ev("Purchase", 1_000_500))  # swapped by the upstream shuffle
    logic.on_event(key, key, ev("Add to Cart", 1_000_000))
    assert advance_clock(logic, key, clock, 1_000_000 + 5 * 60_000) == []
    assert key.raw is None  # nothing held once nothing is armed or waiting


def test_a_live_timer_fires_on_the_wall_clock_when_the_stream_is_quiet() -> None:
    clock = Clock(1_000_000)
    logic = UserTriggers(lambda p: {"cart": CART}, MARGIN, clock)
    key = Key()
    logic.on_event(key, key, ev("Add to Cart", 1_000_000, "a1"))
    assert advance_clock(logic, key, clock, 1_000_000 + 60_000) == []  # due, not yet + margin
    fired = advance_clock(logic, key, clock, 1_000_000 + 60_000 + MARGIN)
    assert fired == [CampaignFiring("p", "cart", "u", "a1", 1_060_000, "Add to Cart")]
    assert advance_watermark(logic, key, 2_000_000) == []  # the event-time timer finds nothing


def test_a_replayed_timer_waits_for_the_watermark_not_the_wall_clock() -> None:
    """Events of last week, replayed now: the user's later purchase is still in the backlog
    when the wall clock passes the timer's due time."""
    week_ago = 1_000_000
    clock = Clock(week_ago + 7 * 86_400_000)
    logic = UserTriggers(lambda p: {"cart": CART}, MARGIN, clock)
    key = Key()
    logic.on_event(key, key, ev("Add to Cart", week_ago))
    assert advance_clock(logic, key, clock, clock.now + 10 * MARGIN) == []
    logic.on_event(key, key, ev("Purchase", week_ago + 30_000))
    assert advance_watermark(logic, key, week_ago + 10 * 60_000) == []
    assert key.raw is None


def test_on_event_fires_once_the_watermark_passes_the_event() -> None:
    clock = Clock(5_000)
    logic = UserTriggers(lambda p: {"thanks": THANKS}, MARGIN, clock)
    key = Key()
    logic.on_event(key, key, ev("Charged", 4_000, "c1"))
    assert advance_watermark(logic, key, 3_999) == []
    assert advance_watermark(logic, key, 4_000) == [
        CampaignFiring("p", "thanks", "u", "c1", 4_000, "Charged")]


def test_a_campaign_gone_drops_its_timers() -> None:
    campaigns = {"cart": CART}
    clock = Clock(0)
    logic = UserTriggers(lambda p: dict(campaigns), MARGIN, clock)
    key = Key()
    logic.on_event(key, key, ev("Add to Cart", 0))
    advance_watermark(logic, key, 0)
    held = key.get()
    assert held is not None
    assert [t[0] for t in held.timers] == ["cart"]
    campaigns.clear()
    assert advance_watermark(logic, key, 10 * 60_000) == []
    assert key.raw is None


NAMES = ["Add to Cart", "Purchase", "Charged", "View"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 300)), max_size=12,
                unique_by=lambda x: x[1]),
       st.permutations(list(range(12))))
def test_watermark_order_gives_the_embedded_engines_firings(
        steps: list[tuple[str, int]], order: list[int]) -> None:
    """Events of a replay, in any arrival order: firing on the watermark gives exactly what the
    embedded engine gives over the events sorted, with its clock past the end."""
    events = [ev(name, t * 1_000) for name, t in steps]
    arrival = [events[i] for i in order if i < len(events)]
    campaigns = {"cart": CART, "thanks": THANKS}
    clock = Clock(10**12)  # long after: no timer is live
    logic = UserTriggers(lambda p: campaigns, MARGIN, clock)
    key = Key()
    for e in arrival:
        logic.on_event(key, key, e)
    got = advance_watermark(logic, key, 2**62)

    engine = Triggers(campaigns)
    want = engine.observe(events) + engine.due(2**62)
    assert sorted((f.campaign, f.firing, f.at) for f in got) == sorted(
        (f.campaign, f.firing, f.at) for f in want)
