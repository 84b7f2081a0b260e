from __future__ import annotations

from stream.contract.event import Event
from stream.operators.identify import resolve, ties


def ev(t: int, user: str | None, device: str | None, project: str = "p") -> Event:
    return Event(project=project, insert_id=f"{t}", event_name="x", category="c", time=t,
                 ingest_time=0, distinct_user_id=user, device_id=device)


def test_latest_tie_by_event_time_wins_per_project_and_device() -> None:
    got = ties([ev(5, "bob", "d1"), ev(3, "amy", "d1"), ev(4, "cat", "d2"),
                ev(1, "dan", "d1", project="q"), ev(9, None, "d1"), ev(9, "eve", None)])
    assert sorted(got) == [("p", "d1", "bob", 5), ("p", "d2", "cat", 4), ("q", "d1", "dan", 1)]


def test_resolution_order() -> None:
    tied = {"d1": "bob"}
    assert resolve("amy", "d1", tied) == "amy"
    assert resolve(None, "d1", tied) == "bob"
    assert resolve(None, "d9", tied) == "d9"
