"""Trends (event volume over time), on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conformance.conftest import MIN, T0, Project, ev
from tests.conformance.test_segments import ANDROID, IPHONE

HOUR = 60 * MIN
H0 = T0 - T0 % HOUR  # the scenario's first whole UTC hour; it covers three hours from here

TRENDS = """query($series: [TrendSeriesInput!]!, $interval: TrendInterval!, $window: TimeWindow,
  $breakdown: String, $segment: SegmentFilter, $timezone: String) {
  trends(series: $series, interval: $interval, window: $window, breakdown: $breakdown,
         segment: $segment, timezone: $timezone) {
    interval buckets series { name event math breakdownValue total values } } }"""


def label(ms: int, zone: str | None = None) -> str:
    moment = datetime.fromtimestamp(ms / 1000, ZoneInfo(zone) if zone else UTC).isoformat()
    return moment if zone else moment.replace("+00:00", "Z")


WINDOW = {"from": label(H0), "to": label(H0 + 3 * HOUR)}


@pytest.fixture
def shop(project: Project) -> Project:
    def at(name: str, minute: int, user: str, agent: str, **extra: Any) -> dict[str, Any]:
        return {**ev(name, 0, device=f"d-{user}", user=user, user_agent=agent, **extra),
                "time": H0 + minute * MIN}

    def paid(minute: int, user: str, agent: str, amount: float, currency: str
             ) -> dict[str, Any]:
        return at("Purchase", minute, user, agent,
                  custom_properties={"amount": amount, "currency": currency})

    answer = project.send([
        # ann: sessions at 5-10 and 70 (an hour apart); bob: at 20 and 75
        at("App Launch", 5, "ann", IPHONE), paid(10, "ann", IPHONE, 20, "INR"),
        paid(70, "ann", IPHONE, 5, "INR"),
        at("App Launch", 20, "bob", ANDROID), paid(75, "bob", ANDROID, 12, "USD"),
        at("App Launch", 130, "cy", IPHONE), at("Search", 135, "cy", IPHONE),
        # dee: before and after the window
        at("App Launch", -30, "dee", ANDROID), paid(200, "dee", ANDROID, 50, "USD"),
    ])
    assert answer["rejected"] == []
    return project


def trends(project: Project, series: list[dict[str, Any]], interval: str = "HOUR",
           **options: Any) -> dict[str, Any]:
    data = project.query(TRENDS, {"series": series, "interval": interval, "window": WINDOW,
                                  **options})
    return dict(data["trends"])


def row(name: str, event: str | None, math: str, total: float, values: list[float],
        value: str | None = None) -> dict[str, Any]:
    return {"name": name, "event": event, "math": math, "breakdownValue": value,
            "total": total, "values": values}


def test_hourly_totals_users_averages_and_sessions(shop: Project) -> None:
    result = trends(shop, [
        {"event": "Purchase"}, {"math": "UNIQUE_USERS"},
        {"event": "Purchase", "math": "PER_USER_AVERAGE"},
        {"math": "SESSIONS", "name": "sessions"}])
    assert result == {
        "interval": "HOUR", "buckets": [label(H0 + h * HOUR) for h in range(3)],
        "series": [
            row("Purchase", "Purchase", "TOTAL", 3.0, [1.0, 2.0, 0.0]),
            # ann bob | ann bob | cy: three people over the window
            row("All events", None, "UNIQUE_USERS", 3.0, [2.0, 2.0, 1.0]),
            row("Purchase", "Purchase", "PER_USER_AVERAGE", 1.5, [1.0, 1.0, 0.0]),
            row("sessions", None, "SESSIONS", 5.0, [2.0, 2.0, 1.0])]}


def test_filters_breakdowns_segments_and_time_zones(shop: Project) -> None:
    big = trends(shop, [{"event": "Purchase", "where": [
        {"key": "amount", "op": "gte", "value": 10}]}], breakdown="currency")
    assert big["series"] == [
        row("Purchase", "Purchase", "TOTAL", 1.0, [1.0, 0.0, 0.0], "INR"),
        row("Purchase", "Purchase", "TOTAL", 1.0, [0.0, 1.0, 0.0], "USD")]
    ios = trends(shop, [{"math": "UNIQUE_USERS"}], breakdown="os", segment={"os": "iOS"})
    assert ios["series"] == [row("All events", None, "UNIQUE_USERS", 2.0, [1.0, 1.0, 1.0],
                                 "iOS")]
    # Kolkata's hours start at half past the UTC hour
    kolkata = trends(shop, [{"event": "Purchase"}], timezone="Asia/Kolkata")
    assert kolkata["buckets"] == [label(H0 + (h * 2 - 1) * HOUR // 2, "Asia/Kolkata")
                                  for h in range(4)]
    assert kolkata["series"] == [row("Purchase", "Purchase", "TOTAL", 3.0,
                                     [1.0, 2.0, 0.0, 0.0])]


def test_too_many_buckets_is_refused_naming_the_window(shop: Project) -> None:
    shop.gateway.wait_processed(shop.keys["read_key"])
    body = shop.gateway.gql(shop.keys["read_key"], """{ trends(series: [{}], interval: HOUR,
        window: {last: "60d"}) { buckets } }""")
    (error,) = body["errors"]
    assert error["message"].startswith("window: holds more than 1,000 HOUR buckets")
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
