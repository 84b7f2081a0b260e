"""Campaign triggers (stream/operators/triggers.py): hand-made cases, and property tests that
firings do not depend on batching or restarts and match a per-user reference."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.operators.triggers import (
    Condition,
    Firing,
    Timer,
    Trigger,
    TriggerEvent,
    Triggers,
    matches,
)

MIN = 60_000
HOUR = 60 * MIN
CART = Trigger("NOT_FOLLOWED_BY", "Add to Cart", followed_by="Purchase", within_ms=HOUR)
THANKS = Trigger("ON_EVENT", "Charged", where=(Condition("city", "eq", "New York"),))
IDLE = Trigger("INACTIVITY", "App Launch", within_ms=30 * MIN)


def ev(user: str, name: str, minute: float, iid: str | None = None,
       **fields: Any) -> TriggerEvent:
    return TriggerEvent(user, iid or f"{user}-{name}-{minute}", name, int(minute * MIN),
                        {"event_name": name, **fields})


def keys(firings: list[Firing]) -> list[tuple[str, str, str, int]]:
    return [(f.campaign, f.user, f.firing, f.at) for f in firings]


def test_on_event_fires_at_once_when_conditions_hold() -> None:
    t = Triggers({"thanks": THANKS})
    fired = t.observe([ev("ann", "Charged", 1, "c1", city="New York"),
                       ev("bob", "Charged", 2, "c2", city="Boston"),
                       ev("cy", "Charged", 3, "c3"), ev("ann", "Search", 4)])
    assert keys(fired) == [("thanks", "ann", "c1", MIN)]
    assert fired[0].event is not None
    assert fired[0].event.fields["city"] == "New York"
    assert t.timers == []
    assert t.due(10**15) == []


def test_abandoned_cart_fires_after_the_window_unless_bought() -> None:
    t = Triggers({"cart": CART})
    assert t.observe([ev("ann", "Add to Cart", 0, "a1"), ev("bob", "Add to Cart", 0, "b1"),
                      ev("bob", "Purchase", 30)]) == []
    assert [(x.user, x.due) for x in t.timers] == [("ann", HOUR)]
    assert t.due(HOUR) == []  # due *before* the clock only: a purchase at 60:00 still counts
    fired = t.due(HOUR + 1)
    assert keys(fired) == [("cart", "ann", "a1", HOUR)]
    assert fired[0].event is not None
    assert fired[0].event.insert_id == "a1"
    assert t.timers == []


def test_cart_edges() -> None:
    t = Triggers({"cart": CART})
    # bought exactly at the due time: no message; bought before adding: no effect
    t.observe([ev("ann", "Add to Cart", 0, "a1"), ev("ann", "Purchase", 60)])
    t.observe([ev("bob", "Purchase", 0), ev("bob", "Add to Cart", 1, "b1")])
    # re-adding does not push the message back: the first unanswered add counts
    t.observe([ev("cy", "Add to Cart", 0, "c1"), ev("cy", "Add to Cart", 50, "c2")])
    assert keys(t.due(10 * HOUR)) == [("cart", "cy", "c1", HOUR), ("cart", "bob", "b1",
                                                                    HOUR + MIN)]


def test_a_later_event_of_the_user_fires_a_timer_that_is_past_due() -> None:
    t = Triggers({"cart": CART})
    t.observe([ev("ann", "Add to Cart", 0, "a1")])
    # two hours later she adds again: the first cart's message is due, the second arms
    fired = t.observe([ev("ann", "Add to Cart", 120, "a2"), ev("ann", "Purchase", 121)])
    assert keys(fired) == [("cart", "ann", "a1", HOUR)]
    assert t.timers == []  # the purchase answered a2


def test_inactivity_re_arms_on_matching_events_and_any_other_event_disarms() -> None:
    t = Triggers({"idle": IDLE})
    t.observe([ev("ann", "App Launch", 0, "l1"), ev("ann", "App Launch", 10, "l2")])
    assert [(x.firing, x.due) for x in t.timers] == [("l2", 40 * MIN)]
    t.observe([ev("bob", "App Launch", 0, "b1"), ev("bob", "Search", 5)])
    assert keys(t.due(41 * MIN)) == [("idle", "ann", "l2", 40 * MIN)]
    any_event = Triggers({"idle": Trigger("INACTIVITY", None, within_ms=MIN)})
    any_event.observe([ev("cy", "Search", 0, "s1"), ev("cy", "Search", 0.5, "s2")])
    assert keys(any_event.due(2 * MIN)) == [("idle", "cy", "s2", int(1.5 * MIN))]


def test_exit_on_conversion_disarms() -> None:
    t = Triggers({"idle": Trigger("INACTIVITY", "App Launch", within_ms=HOUR,
                                  exit_on="Purchase")})
    t.observe([ev("ann", "App Launch", 0), ev("ann", "Purchase", 1)])
    assert t.timers == []
    assert t.due(10 * HOUR) == []


def test_timers_survive_a_restart_through_their_changes() -> None:
    t = Triggers({"cart": CART, "idle": IDLE})
    t.observe([ev("ann", "Add to Cart", 0, "a1"), ev("ann", "App Launch", 1, "l1"),
               ev("bob", "Add to Cart", 0, "b1"), ev("bob", "Purchase", 2)])
    saved: dict[tuple[str, str], Timer] = {}
    for key, timer in t.changes():
        if timer is None:
            saved.pop(key, None)
        else:
            saved[key] = timer
    assert t.changes() == []
    again = Triggers({"cart": CART, "idle": IDLE}, saved.values())
    assert keys(again.due(10 * HOUR)) == keys(t.due(10 * HOUR)) == [
        ("idle", "ann", "l1", 31 * MIN), ("cart", "ann", "a1", HOUR)]


def test_pausing_a_campaign_drops_its_timers() -> None:
    t = Triggers({"cart": CART, "idle": IDLE})
    t.observe([ev("ann", "Add to Cart", 0), ev("ann", "App Launch", 0)])
    t.set_campaigns({"idle": IDLE})
    assert [x.campaign for x in t.timers] == ["idle"]
    assert (("cart", "ann"), None) in t.changes()


@pytest.mark.parametrize(("trigger", "message"), [
    (Trigger("LATER"), "trigger.type: unknown trigger type 'LATER'"),
    (Trigger("ON_EVENT"), "trigger.event: required for ON_EVENT"),
    (Trigger("NOT_FOLLOWED_BY", "A", within_ms=MIN), "trigger.followedBy: required"),
    (Trigger("NOT_FOLLOWED_BY", "A", followed_by="B"), "trigger.within: a positive"),
    (Trigger("INACTIVITY", within_ms=0), "trigger.within: a positive"),
    (Trigger("ON_EVENT", "A", where=(Condition("x", "like", 1),)),
     "trigger.where[0].op: unknown operator 'like'"),
])
def test_bad_triggers_name_the_field(trigger: Trigger, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        trigger.check()


def test_matches_reads_attributes_and_properties() -> None:
    t = Trigger("ON_EVENT", "Charged", where=(Condition("amount", "gte", 10),
                                             Condition("os", "in", ["iOS", "Android"])))
    assert matches(t, ev("a", "Charged", 0, amount="12.5", os="iOS"))
    assert not matches(t, ev("a", "Charged", 0, amount=5, os="iOS"))
    assert not matches(t, ev("a", "Charged", 0, amount=50))


# --- properties -------------------------------------------------------------------------

CAMPAIGNS = {
    "thanks": Trigger("ON_EVENT", "B", where=(Condition("v", "gte", 1),)),
    "cart": Trigger("NOT_FOLLOWED_BY", "A", followed_by="B", within_ms=3 * MIN),
    "idle": Trigger("INACTIVITY", "A", within_ms=2 * MIN, exit_on="C"),
    "quiet": Trigger("INACTIVITY", None, within_ms=4 * MIN),
}


def reference(events: list[TriggerEvent], clock: int) -> set[tuple[str, str, str, int]]:
    """One (campaign, user) at a time, straight from the module's definitions."""
    out = set()
    for cid, trig in CAMPAIGNS.items():
        for user in {e.user for e in events}:
            mine = sorted((e for e in events if e.user == user),
                          key=lambda e: (e.time, e.insert_id))
            armed: tuple[int, str, int] | None = None  # (due, firing, armed at)
            for e in mine:
                if armed and armed[0] < e.time:
                    out.add((cid, user, armed[1], armed[0]))
                    armed = None
                if trig.exit_on is not None and e.name == trig.exit_on:
                    if armed and e.time >= armed[2]:
                        armed = None
                    continue
                hit = matches(trig, e)
                if trig.type == "ON_EVENT":
                    if hit:
                        out.add((cid, user, e.insert_id, e.time))
                elif trig.type == "NOT_FOLLOWED_BY":
                    if armed and e.name == trig.followed_by and armed[2] <= e.time <= armed[0]:
                        armed = None
                    elif armed is None and hit:
                        armed = (e.time + (trig.within_ms or 0), e.insert_id, e.time)
                elif hit:
                    armed = (e.time + (trig.within_ms or 0), e.insert_id, e.time)
                elif armed:
                    armed = None
            if armed and armed[0] < clock:
                out.add((cid, user, armed[1], armed[0]))
    return out


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[TriggerEvent], list[int], int | None]:
    rnd = random.Random(draw(st.integers(0, 2**32)))
    events = [TriggerEvent(rnd.choice("uvw"), f"e{i:03d}", rnd.choice("ABBCD"),
                           rnd.randint(0, 30) * 30_000, {"v": rnd.choice([0, 1, 2, None])})
              for i in range(rnd.randint(0, 40))]
    events.sort(key=lambda e: (e.time, e.insert_id))  # arrival in event-time order
    cuts = sorted(rnd.sample(range(len(events) + 1), min(len(events) + 1, rnd.randint(0, 5))))
    restart = rnd.choice([None, *cuts]) if cuts else None
    return events, cuts, restart


@settings(max_examples=300, deadline=None)
@given(streams())
def test_firings_do_not_depend_on_batches_or_restarts(
        case: tuple[list[TriggerEvent], list[int], int | None]) -> None:
    events, cuts, restart = case
    clock = 10**9
    whole = Triggers(CAMPAIGNS)
    expected = keys(whole.observe(events)) + keys(whole.due(clock))
    t = Triggers(CAMPAIGNS)
    got: list[tuple[str, str, str, int]] = []
    last = 0
    for cut in [*cuts, len(events)]:
        batch = events[last:cut]
        got += keys(t.observe(batch))
        if batch:  # the watermark: the latest event time processed
            got += keys(t.due(batch[-1].time))
        if cut == restart:
            t = Triggers(CAMPAIGNS, t.timers)
        last = cut
    got += keys(t.due(clock))
    assert sorted(got) == sorted(expected)
    assert len(set(got)) == len(got)  # nothing fires twice
    assert set(got) == reference(events, clock)
