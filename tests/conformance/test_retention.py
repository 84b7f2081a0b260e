"""Retention, churn, lifecycle, conversion and repeat purchasers (issue 4), on every backend.

Events happen at 10:00 UTC on the four days before today, so daily periods are fixed.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conformance.conftest import Project

TODAY = datetime.now(tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def day(n: int) -> str:
    """The ISO date ``n`` days before today."""
    return (TODAY - timedelta(days=n)).date().isoformat()


def at(name: str, days_ago: int, user: str, **extra: Any) -> dict[str, Any]:
    t = TODAY - timedelta(days=days_ago) + timedelta(hours=10)
    assert t.timestamp() < time.time()
    return {"event_name": name, "time": int(t.timestamp() * 1000), "distinct_user_id": user,
            "device_id": f"{user}-phone", "insert_id": str(uuid.uuid4()), **extra}


@pytest.fixture
def shop(project: Project) -> Project:
    project.send([
        at("App Launch", 4, "ann"), at("Search", 3, "ann"), at("Purchase", 1, "ann"),
        at("App Launch", 4, "bob"), at("Purchase", 2, "bob"),
        at("Purchase", 2, "bob", time=int((TODAY - timedelta(days=2, hours=-11)
                                           ).timestamp() * 1000)),
        at("App Launch", 3, "cy"), at("App Launch", 1, "cy"),
    ])
    project.send([{"distinct_user_id": "ann", "traits": {"city": "Pune"}}],
                 path="/v1/identify")
    return project


def test_daily_retention_cohorts(shop: Project) -> None:
    q = """query($w: TimeWindow, $s: SegmentFilter) { retention(window: $w, period: DAY,
        periods: 4, segment: $s) { cohorts { start size retained } } }"""
    w = {"from": day(4), "to": day(3)}
    assert shop.query(q, {"w": w})["retention"]["cohorts"] == [
        {"start": day(4), "size": 2, "retained": [2, 1, 1, 1]},
        {"start": day(3), "size": 1, "retained": [1, 0, 1, 0]}]
    assert shop.query(q, {"w": w, "s": {"city": "Pune"}})["retention"]["cohorts"] == [
        {"start": day(4), "size": 1, "retained": [1, 1, 0, 1]},
        {"start": day(3), "size": 0, "retained": [0, 0, 0, 0]}], "empty periods are shown"
    unbounded = """query($w: TimeWindow) { retention(window: $w, period: DAY, periods: 4,
        mode: ON_OR_AFTER, returnEvent: "Purchase") { cohorts { start size retained } } }"""
    assert shop.query(unbounded, {"w": w})["retention"]["cohorts"] == [
        {"start": day(4), "size": 2, "retained": [2, 2, 2, 1]},
        {"start": day(3), "size": 1, "retained": [0, 0, 0, 0]}]


def test_churn_and_lifecycle_per_day(shop: Project) -> None:
    w = {"from": day(3), "to": day(1)}
    churn = shop.query("""query($w: TimeWindow) { churn(period: DAY, window: $w) {
        period active previousActive churned rate } }""", {"w": w})["churn"]
    assert churn == [
        {"period": day(3), "active": 2, "previousActive": 2, "churned": 1, "rate": 0.5},
        {"period": day(2), "active": 1, "previousActive": 2, "churned": 2, "rate": 1.0},
        {"period": day(1), "active": 2, "previousActive": 1, "churned": 1, "rate": 1.0}]
    life = shop.query("""query($w: TimeWindow) { lifecycle(period: DAY, window: $w) {
        period new returning resurrecting dormant } }""", {"w": w})["lifecycle"]
    assert life == [
        {"period": day(3), "new": 1, "returning": 1, "resurrecting": 0, "dormant": 1},
        {"period": day(2), "new": 0, "returning": 0, "resurrecting": 1, "dormant": 2},
        {"period": day(1), "new": 0, "returning": 0, "resurrecting": 2, "dormant": 1}]


def test_install_to_first_purchase_and_repeat_purchasers(shop: Project) -> None:
    q = """query($w: TimeWindow, $within: String) { conversion(fromEvent: "App Launch",
        toEvent: "Purchase", window: $w, within: $within) { users converted rate
        medianSeconds } }"""
    w = {"from": day(4), "to": day(1)}
    assert shop.query(q, {"w": w})["conversion"] == {
        "users": 3, "converted": 2, "rate": 2 / 3, "medianSeconds": 216_000.0}
    assert shop.query(q, {"w": w, "within": "2d"})["conversion"] == {
        "users": 3, "converted": 1, "rate": 1 / 3, "medianSeconds": 172_800.0}
    repeat = shop.query("""query($w: TimeWindow) { repeatPurchasers(window: $w) {
        purchasers users share } }""", {"w": w})["repeatPurchasers"]
    assert repeat == {"purchasers": 2, "users": 1, "share": 0.5}


def test_bad_retention_input_names_the_field(project: Project) -> None:
    body = project.gateway.gql(project.keys["read_key"],
                               "{ retention(periods: 0) { cohorts { size } } }")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["message"].startswith("periods:")
