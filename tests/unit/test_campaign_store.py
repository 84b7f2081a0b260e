"""The campaign store's exactly-once bookkeeping and the delivery rules that need no
services (holdout draw, quiet hours, stored triggers)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.campaigns import in_holdout, quiet_until
from storage.campaigns import CampaignStore, idempotency_key
from stream.operators.triggers import Condition, Firing, Timer, Trigger, trigger_of


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_replayed_firings_and_timers_change_nothing(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path / "c.sqlite")
    timer = Timer("c1", "ann", 100, "e1", 40)
    firing = Firing("c1", "bob", "e2", 50)
    for _ in range(2):  # a batch replayed after a crash
        store.apply("p", [(("c1", "ann"), timer)], [firing])
    assert store.timers() == [("p", timer)]
    (row,) = store.outbox(now_ms=0)
    assert (row.user_id, row.firing) == ("bob", "e2")
    store.apply("p", [(("c1", "ann"), None)], [])
    assert store.timers() == []


def test_a_delivery_is_recorded_once_and_settles_with_its_outbox_row(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path / "c.sqlite")
    store.apply("p", [], [Firing("c1", "bob", "e2", 50)])
    (row,) = store.outbox(now_ms=0)
    first = store.begin(row, "WEBHOOK")
    again = store.begin(row, "WEBHOOK")  # a crash before settling: same delivery, same key
    assert first.id == again.id
    assert first.idempotency_key == idempotency_key("p", "c1", "bob", "e2")
    assert first.status == "pending"
    store.settle(row, first.idempotency_key, "sent", "200", 1)
    assert store.outbox(now_ms=0) == []
    (d,) = store.deliveries("p", "c1")
    assert (d.status, d.attempts, d.detail) == ("sent", 1, "200")
    assert store.sent_since("p", "c1", "bob", 0) == 1
    store.apply("p", [], [Firing("c1", "bob", "e2", 50)])  # the same firing once more
    (row,) = store.outbox(now_ms=0)
    assert store.begin(row, "WEBHOOK").status == "sent"  # the worker skips it


def test_postponed_rows_wait(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path / "c.sqlite")
    store.apply("p", [], [Firing("c1", "bob", "e2", 50)])
    (row,) = store.outbox(now_ms=0)
    store.postpone(row, 1_000)
    assert store.outbox(now_ms=999) == []
    assert len(store.outbox(now_ms=1_000)) == 1


def test_campaigns_and_status(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path / "c.sqlite")
    store.create("p", "c1", "cart", {"trigger": None})
    store.create("q", "c2", "other", {"trigger": None})
    assert [c.id for c in store.campaigns("p")] == ["c1"]
    assert store.set_status("p", "c1", "PAUSED")
    assert not store.set_status("q", "c1", "PAUSED")  # another project's id
    campaign = store.campaign("p", "c1")
    assert campaign is not None
    assert campaign.status == "PAUSED"


def test_holdout_draw_is_stable_and_near_its_share() -> None:
    users = [f"u{i}" for i in range(4000)]
    held = [u for u in users if in_holdout("c1", u, 0.25)]
    assert 850 < len(held) < 1150
    assert held == [u for u in users if in_holdout("c1", u, 0.25)]
    assert not any(in_holdout("c1", u, 0.0) for u in users)
    assert set(held) != {u for u in users if in_holdout("c2", u, 0.25)}


def test_quiet_hours_postpone_to_their_end() -> None:
    night = {"startHour": 22, "endHour": 8, "timezone": "America/New_York"}
    # 03:00 UTC = 22:00 in New York (EST): quiet until 08:00 New York = 13:00 UTC
    assert quiet_until(ms("2026-12-01T03:00"), night) == ms("2026-12-01T13:00")
    assert quiet_until(ms("2026-12-01T13:00"), night) is None
    assert quiet_until(ms("2026-12-01T12:59"), night) == ms("2026-12-01T13:00")
    day = {"startHour": 12, "endHour": 14}
    assert quiet_until(ms("2026-12-01T12:30"), day) == ms("2026-12-01T14:00")
    assert quiet_until(ms("2026-12-01T14:00"), day) is None
    assert quiet_until(ms("2026-12-01T03:00"), None) is None


def test_stored_triggers_read_back_with_exit_on_conversion() -> None:
    spec = {"trigger": {"type": "INACTIVITY", "event": "App Launch", "followedBy": None,
                        "withinMs": 60_000, "where": [{"key": "os", "op": "eq",
                                                       "value": "iOS"}]},
            "goal": {"event": "Purchase", "withinMs": None}, "exitOnConversion": True}
    assert trigger_of(spec) == Trigger("INACTIVITY", "App Launch",
                                       (Condition("os", "eq", "iOS"),), None, 60_000,
                                       "Purchase")
    assert trigger_of({**spec, "exitOnConversion": False}).exit_on is None  # type: ignore[union-attr]
    assert trigger_of({"trigger": None}) is None
