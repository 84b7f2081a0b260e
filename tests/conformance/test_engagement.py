"""Engagement, feature usage and crashes (issue 4), on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.conftest import Project, ev
from tests.conformance.test_segments import ANDROID, IPHONE


@pytest.fixture
def app(project: Project) -> Project:
    def on(agent: str, *events: tuple[str, float, dict[str, Any]], device: str,
           user: str) -> list[dict[str, Any]]:
        return [ev(name, minute, device=device, user=user, user_agent=agent, **extra)
                for name, minute, extra in events]

    project.send([
        *on(IPHONE, ("App Launch", 0, {"url": "shop/home"}), ("Search", 1, {}),
            ("Add to Cart", 2, {}), ("App Close", 3, {}), ("App Launch", 60, {}),
            ("Search", 61, {}), device="d1", user="ann"),
        *on(IPHONE, ("App Launch", 10, {}),
            ("App Crash", 11, {"custom_properties": {"reason": "NullPointer"}}),
            device="d2", user="bob"),
        *on(ANDROID, ("App Launch", 20, {}),
            ("App Crash", 21, {"custom_properties": {"reason": "OOM"}}),
            ("App Crash", 22, {"custom_properties": {"reason": "OOM",
                                                     "exception": "OutOfMemoryError"}}),
            device="d3", user="cy"),
    ])
    return project


def test_engagement_counts_users_sessions_and_interactions(app: Project) -> None:
    e = app.query("""{ engagement(window: {last: "1d"}) { activeUsers dau wau mau stickiness
        averageSecondsBetweenSessions sessionsPerUser
        interactionsPerSession(first: 3) { event perSession } } }""")["engagement"]
    assert e == {
        "activeUsers": 3, "dau": 3, "wau": 3, "mau": 3, "stickiness": 1.0,
        # ann: the first session ends at minute 3 (App Close), the next starts at 60
        "averageSecondsBetweenSessions": 57 * 60.0, "sessionsPerUser": 4 / 3,
        "interactionsPerSession": [{"event": "App Launch", "perSession": 1.0},
                                   {"event": "App Crash", "perSession": 0.75},
                                   {"event": "Search", "perSession": 0.5}]}
    ios = app.query("""{ engagement(window: {last: "1d"}, segment: {os: "iOS"}) {
        activeUsers sessionsPerUser } }""")["engagement"]
    assert ios == {"activeUsers": 2, "sessionsPerUser": 1.5}


def test_feature_usage_ranks_by_users(app: Project) -> None:
    rows = app.query("""{ featureUsage(window: {last: "1d"}, by: EVENT, first: 3) {
        key events users retentionLift } }""")["featureUsage"]
    assert rows == [
        {"key": "App Launch", "events": 4, "users": 3, "retentionLift": None},
        {"key": "App Crash", "events": 3, "users": 2, "retentionLift": None},
        {"key": "Search", "events": 2, "users": 1, "retentionLift": None}]
    pages = app.query("""{ featureUsage(window: {last: "1d"}, by: URL) { key users } }""")
    assert pages["featureUsage"] == [{"key": "shop/home", "users": 1}]


def test_crash_rates_causes_and_groups(app: Project) -> None:
    c = app.query("""{ crashes(window: {last: "1d"}, by: OS) { crashes sessions
        crashesPer1000Sessions crashFreeUsers topCauses { cause count }
        groups { key crashes sessions crashesPer1000Sessions crashFreeUsers } } }""")
    assert c["crashes"] == {
        "crashes": 3, "sessions": 4, "crashesPer1000Sessions": 750.0,
        "crashFreeUsers": 1 / 3,
        "topCauses": [{"cause": "OOM", "count": 2}, {"cause": "NullPointer", "count": 1}],
        "groups": [
            {"key": "Android", "crashes": 2, "sessions": 1, "crashesPer1000Sessions": 2000.0,
             "crashFreeUsers": 0.0},
            {"key": "iOS", "crashes": 1, "sessions": 3, "crashesPer1000Sessions": 1000 / 3,
             "crashFreeUsers": 0.5}]}
