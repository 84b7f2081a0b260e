"""Forgotten identities: which records the pipelines drop after an erasure, and the list that
holds them (``stream.operators.suppress``, ``stream.flink.suppress``,
``storage.suppression``)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from storage.suppression import SuppressionStore
from stream.contract.event import Event, Profile
from stream.contract.records import DeadLetter
from stream.flink.records import (
    CampaignFiring,
    DeviceTie,
    EnrichedEvent,
    SessionDeleted,
    SessionUpsert,
    TooLate,
)
from stream.flink.suppress import drops, without_forgotten
from stream.operators.enrich import Enrichment
from stream.operators.sessionize import SessionRow
from stream.operators.suppress import Forgotten, Suppressions, letter_ids

ANN = Suppressions({"p1": Forgotten(frozenset({"ann"}), frozenset({"phone-a"}))})


def _ev(user: str | None, device: str | None, project: str = "p1") -> Event:
    return Event(project=project, insert_id="i", event_name="Search", category="User Actions",
                 time=1, ingest_time=2, distinct_user_id=user, device_id=device)


@pytest.mark.parametrize(("user", "device", "dropped"), [
    ("ann", None, True),  # hers by user id
    ("ann", "laptop", True),  # hers on any device
    (None, "phone-a", True),  # anonymous on her device
    ("bob", "phone-a", False),  # someone else on her (shared) device
    ("bob", None, False),
    (None, "laptop", False),
])
def test_an_event_belongs_to_its_user_else_its_device(user: str | None, device: str | None,
                                                      dropped: bool) -> None:
    assert ANN.drops_event(_ev(user, device)) is dropped


def test_projects_are_apart_and_an_empty_list_is_falsy() -> None:
    assert not ANN.drops_event(_ev("ann", None, project="p2"))
    assert ANN
    assert not Suppressions()
    assert not Suppressions({"p1": Forgotten()})


def test_profiles_and_aliases_of_a_forgotten_user_are_dropped() -> None:
    assert ANN.drops_profile(Profile(project="p1", distinct_user_id="ann", ingest_time=1,
                                     traits={"city": "Pune"}))
    assert not ANN.drops_profile(Profile(project="p1", distinct_user_id="bob",
                                         ingest_time=1, device_id="phone-a"))


@pytest.mark.parametrize(("payload", "users", "devices"), [
    ({"event_name": "x", "distinct_user_id": "ann"}, {"ann"}, set()),
    ({"event": "x", "default_properties": {"device_id": "phone-a"}}, set(), {"phone-a"}),
    ({"type": "track", "userId": "ann", "anonymousId": "anon-1"}, {"ann"}, {"anon-1"}),
    ({"event": "$pageview", "properties": {"distinct_id": 42, "$device_id": "d"}},
     {"42"}, {"d"}),
    ({"distinct_user_id": True, "device_id": ""}, set(), set()),
])
def test_letter_ids_reads_the_envelope_and_the_sdk_shapes(payload: dict[str, object],
                                                          users: set[str],
                                                          devices: set[str]) -> None:
    assert letter_ids(orjson.dumps(payload)) == (users, devices)


def test_letter_ids_of_something_that_is_not_an_object_is_nobody() -> None:
    assert letter_ids(b"not json{") == (set(), set())
    assert letter_ids(b"[1, 2]") == (set(), set())


def test_dead_letters_are_judged_by_the_ids_they_name() -> None:
    def letter(payload: dict[str, object]) -> DeadLetter:
        return DeadLetter(project="p1", kind="event", index=0, reason="r",
                          payload=orjson.dumps(payload), received_at=1)

    assert ANN.drops_letter(letter({"distinct_user_id": "ann", "time": "bad"}))
    assert ANN.drops_letter(letter({"device_id": "phone-a"}))
    assert not ANN.drops_letter(letter({"distinct_user_id": "bob", "device_id": "phone-a"}))


def test_forgotten_round_trips_through_json() -> None:
    f = Forgotten(frozenset({"ann", "al"}), frozenset({"phone-a"}))
    assert Forgotten.from_json(f.to_json()) == f
    assert Forgotten.from_json(f.to_json().decode()) == f


def test_the_jobs_outputs_of_a_forgotten_identity_are_not_written() -> None:
    row = SessionRow(session_id="s1", project="p1", session_key="d:phone-a", producer=False,
                     start_time=1, end_time=2, last_insert_id="i", events=1,
                     device_id="phone-a")
    bob_row = SessionRow(session_id="s2", project="p1", session_key="d:phone-a",
                         producer=False, start_time=1, end_time=2, last_insert_id="i",
                         events=1, device_id="phone-a", user_id="bob")
    theirs = [EnrichedEvent(_ev("ann", None), "s1", "u:ann", Enrichment()),
              TooLate(_ev(None, "phone-a"), "late"),
              SessionUpsert(row, Enrichment()),
              DeviceTie("p1", "phone-a", "ann", 1),
              CampaignFiring("p1", "c1", "ann", "f", 1),
              Profile(project="p1", distinct_user_id="ann", ingest_time=1)]
    kept = [SessionDeleted("p1", "s1", "d:phone-a"),  # deleting is always fine
            SessionUpsert(bob_row, Enrichment()),
            EnrichedEvent(_ev("bob", "phone-a"), "s2", "d:phone-a", Enrichment())]
    assert all(drops(ANN, o) for o in theirs)
    assert without_forgotten(ANN, [*theirs, *kept]) == kept
    assert without_forgotten(Suppressions(), theirs) == theirs


def test_the_list_persists_and_other_processes_see_additions(tmp_path: Path) -> None:
    path = tmp_path / "forgotten.sqlite"
    gateway, cli = SuppressionStore(path), SuppressionStore(path)
    try:
        assert not gateway.current()
        cli.forget("p1", ["ann"], ["phone-a"])
        cli.forget("p1", ["ann"], [])  # idempotent
        assert gateway.current().drops_event(_ev(None, "phone-a"))
        assert gateway.forgotten("p1") == Forgotten(frozenset({"ann"}), frozenset({"phone-a"}))
        assert gateway.projects() == ["p1"]
        cli.record("p1", "ann", {"events": 3})
        assert [(e["user_id"], e["records"]) for e in gateway.erasures("p1")] == [
            ("ann", {"events": 3})]
    finally:
        gateway.close()
        cli.close()
    again = SuppressionStore(path)
    assert again.current().drops_event(_ev("ann", None))
    again.close()
