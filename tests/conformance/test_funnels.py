"""Funnels (issue 4 "Funnels"), on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.conftest import Project, ev

FUNNEL = """query($steps: [FunnelStepInput!]!, $order: FunnelOrder, $ex: [FunnelExclusionInput!],
  $breakdown: String) {
  funnel(steps: $steps, window: {last: "1d"}, conversionWindow: "30m", order: $order,
         exclusions: $ex, breakdown: $breakdown) {
    steps { event users conversionFromPrevious conversionFromFirst dropOff
            medianSecondsFromPrevious }
    breakdowns { key steps { users } } } }"""


def steps(*names: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"event": n, **extra.get(n, {})} for n in names]


@pytest.fixture
def shop(project: Project) -> Project:
    def cart(minute: float, amount: float, **kw: Any) -> dict[str, Any]:
        return ev("Add to Cart", minute, custom_properties={"amount": amount}, **kw)

    project.send([
        ev("App Launch", 0, device="da", user="ann"), ev("Search", 1, device="da", user="ann"),
        cart(2, 5, device="da", user="ann"), ev("Purchase", 5, device="da", user="ann"),
        ev("App Launch", 10, device="db", user="bob"), cart(12, 10, device="db", user="bob"),
        ev("Search", 13, device="db", user="bob"),
        ev("Purchase", 60, device="db", user="bob"),  # 50 min after launch: too late
        ev("App Launch", 20, device="dc", user="cy"), ev("Search", 21, device="dc", user="cy"),
        cart(22, 2, device="dc", user="cy"),
        ev("Search", 30, device="dd", user="dee"),
    ])
    return project


def test_an_ordered_funnel_with_a_conversion_window(shop: Project) -> None:
    got = shop.query(FUNNEL, {"steps": steps("App Launch", "Add to Cart", "Purchase")})
    assert got["funnel"]["steps"] == [
        {"event": "App Launch", "users": 3, "conversionFromPrevious": 1.0,
         "conversionFromFirst": 1.0, "dropOff": 0, "medianSecondsFromPrevious": None},
        {"event": "Add to Cart", "users": 3, "conversionFromPrevious": 1.0,
         "conversionFromFirst": 1.0, "dropOff": 0, "medianSecondsFromPrevious": 120.0},
        {"event": "Purchase", "users": 1, "conversionFromPrevious": 1 / 3,
         "conversionFromFirst": 1 / 3, "dropOff": 2, "medianSecondsFromPrevious": 180.0}]
    assert got["funnel"]["breakdowns"] == []


def test_who_dropped_off_and_who_converted(shop: Project) -> None:
    q = """query($steps: [FunnelStepInput!]!, $step: Int!, $dropped: Boolean) {
        funnelUsers(steps: $steps, step: $step, dropped: $dropped, window: {last: "1d"},
                    conversionWindow: "30m") { totalCount users } }"""
    funnel = steps("App Launch", "Add to Cart", "Purchase")
    dropped = shop.query(q, {"steps": funnel, "step": 3, "dropped": True})["funnelUsers"]
    assert dropped == {"totalCount": 2, "users": ["bob", "cy"]}
    reached = shop.query(q, {"steps": funnel, "step": 3})["funnelUsers"]
    assert reached == {"totalCount": 1, "users": ["ann"]}


def users_per_step(p: Project, variables: dict[str, Any]) -> list[int]:
    return [s["users"] for s in p.query(FUNNEL, variables)["funnel"]["steps"]]


def test_strict_order_exclusions_optional_steps_and_filters(shop: Project) -> None:
    # STRICT: only bob's cart is his very next event after the launch
    assert users_per_step(shop, {"steps": steps("App Launch", "Add to Cart"),
                                 "order": "STRICT"}) == [3, 1]
    # a Search between launch and cart disqualifies ann and cy
    assert users_per_step(shop, {"steps": steps("App Launch", "Add to Cart"), "ex": [
        {"event": "Search", "fromStep": 1, "toStep": 2}]}) == [3, 1]
    # an optional Search: ann and cy did it, bob skipped it, all three reached the cart
    assert users_per_step(shop, {"steps": steps(
        "App Launch", "Search", "Add to Cart", Search={"optional": True})}) == [3, 2, 3]
    # carts worth more than 4: ann (5) and bob (10)
    assert users_per_step(shop, {"steps": steps(
        "App Launch", "Add to Cart",
        **{"Add to Cart": {"where": [{"key": "amount", "op": "gt", "value": 4}]}})}) == [3, 2]
    # ANY order: dee's lone Search counts as one step done
    assert users_per_step(shop, {"steps": steps("App Launch", "Search"),
                                 "order": "ANY"}) == [4, 3]


def test_breakdown_by_the_first_steps_property(shop: Project) -> None:
    got = shop.query(FUNNEL, {"steps": steps("Add to Cart", "Purchase"),
                              "breakdown": "amount"})["funnel"]["breakdowns"]
    assert got == [{"key": "10", "steps": [{"users": 1}, {"users": 0}]},
                   {"key": "2", "steps": [{"users": 1}, {"users": 0}]},
                   {"key": "5", "steps": [{"users": 1}, {"users": 1}]}]


def test_funnel_trend_adds_up(shop: Project) -> None:
    points = shop.query("""query($steps: [FunnelStepInput!]!) { funnelTrend(steps: $steps,
        interval: DAY, window: {last: "1d"}, conversionWindow: "30m") { period entered
        converted rate } }""", {"steps": steps("App Launch", "Purchase")})["funnelTrend"]
    assert sum(p["entered"] for p in points) == 3
    assert sum(p["converted"] for p in points) == 1
    assert all(p["rate"] == (p["converted"] / p["entered"] if p["entered"] else 0.0)
               for p in points)


def test_bad_funnel_input_names_the_field(project: Project) -> None:
    body = project.gateway.gql(project.keys["read_key"], """{ funnel(steps: [
        {event: "A"}, {event: "B", where: [{key: "x", op: "like", value: 1}]}]) {
        steps { users } } }""")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["message"].startswith("steps[1].where[0].op:")
