"""Campaigns on every backend (issue 6): the same triggers fire for the same users.

Embedded: the runner's commit evaluates the triggers and its timers. Distributed: the gateway
mirrors the active campaigns to Redis, the PyFlink job evaluates them with Flink keyed state
and timers, and its firings come back through a Redis stream to the gateway's delivery worker.
A real HTTP receiver gets the webhooks either way.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from clients.channels import verify_signature
from gateway.campaigns import in_holdout
from tests.conformance.conftest import Project
from tests.e2e.receiver import Receiver

SECRET = "conformance-secret"
WITHIN = 120.0  # the distributed path waits on the job's margin, buffers and checkpoints


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def admin(project: Project, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = project.gateway.gql(project.keys["admin_key"], query, variables)
    assert "errors" not in body, body
    return dict(body["data"])


def create(project: Project, receiver: Receiver, **input_: Any) -> str:
    data = admin(project, """mutation($input: CampaignInput!) { createCampaign(input: $input) {
        id status } }""", {"input": {
        "channel": {"type": "WEBHOOK", "url": receiver.url, "secret": SECRET}, **input_}})
    assert data["createCampaign"]["status"] == "ACTIVE"
    return str(data["createCampaign"]["id"])


def event(name: str, user: str, seconds_ago: float = 0, **props: Any) -> dict[str, Any]:
    """Live events: stamped about now, so timers run on the wall clock."""
    return {"event_name": name, "time": int(time.time() * 1000 - seconds_ago * 1000),
            "insert_id": str(uuid.uuid4()), "distinct_user_id": user,
            "device_id": f"dev-{user}", "custom_properties": props}


def test_thank_you_and_abandoned_cart_fire_for_the_same_users(
        project: Project, receiver: Receiver) -> None:
    ann, bob, cy = (f"{n}-{uuid.uuid4().hex[:6]}" for n in ("ann", "bob", "cy"))
    cart = create(project, receiver, name="abandoned cart", trigger={
        "type": "NOT_FOLLOWED_BY", "event": "Add to Cart", "followedBy": "Purchase",
        "within": "3s"}, template={"body": "{{ first_name | default: \"Hey\" }}, still there?"})
    thanks = create(project, receiver, name="thanks NY", trigger={
        "type": "ON_EVENT", "event": "Charged",
        "where": [{"key": "city", "op": "eq", "value": "New York"}]},
        template={"body": "Thanks for ordering, {{ first_name }}!"})
    project.send([{"distinct_user_id": ann, "traits": {"first_name": "Ann"}}], "/v1/identify")
    project.gateway.wait_processed(project.keys["read_key"])  # the profile is stored first
    time.sleep(3)  # the job reads the campaigns from Redis every 2 s
    project.send([event("Add to Cart", ann), event("Add to Cart", bob, seconds_ago=1),
                  event("Purchase", bob), event("Charged", ann, city="New York", amount=12),
                  event("Charged", cy, city="Boston", amount=3)])

    (thank,) = receiver.wait(thanks, 1, timeout=WITHIN)
    assert (thank["user_id"], thank["message"]) == (ann, "Thanks for ordering, Ann!")
    (reminder,) = receiver.wait(cart, 1, timeout=WITHIN)
    assert (reminder["user_id"], reminder["message"]) == (ann, "Ann, still there?")
    assert reminder["idempotency_key"].endswith(f":{ann}:" + reminder["data"]["firing"])
    _, headers, raw = next(r for r in receiver.received if r[0] is reminder)
    assert verify_signature(SECRET, raw, headers["X-CEP-Signature"])

    time.sleep(6)  # bob bought and cy is in Boston: nothing more comes
    assert [b["user_id"] for b in receiver.for_campaign(cart)] == [ann]
    assert [b["user_id"] for b in receiver.for_campaign(thanks)] == [ann]
    page = admin(project, """query($id: String!) { deliveries(campaignId: $id) {
        totalCount edges { node { userId status attempts channel } } } }""", {"id": cart})
    assert page["deliveries"]["totalCount"] == 1
    assert page["deliveries"]["edges"][0]["node"] == {
        "userId": ann, "status": "sent", "attempts": 1, "channel": "WEBHOOK"}


def test_a_paused_campaign_sends_nothing(project: Project, receiver: Receiver) -> None:
    dee = f"dee-{uuid.uuid4().hex[:6]}"
    welcome = create(project, receiver, name="welcome", trigger={
        "type": "ON_EVENT", "event": "Sign Up"}, template={"body": "Welcome!"})
    time.sleep(3)
    project.send([event("Sign Up", dee)])
    (first,) = receiver.wait(welcome, 1, timeout=WITHIN)
    assert first["user_id"] == dee
    admin(project, "mutation($id: String!) { pauseCampaign(id: $id) { status } }",
          {"id": welcome})
    time.sleep(3)
    project.send([event("Sign Up", dee)])
    project.gateway.wait_processed(project.keys["read_key"])
    time.sleep(5)
    assert len(receiver.for_campaign(welcome)) == 1


def restart_processing(gateway: Any) -> None:
    """Kill what evaluates the triggers and start it again: the embedded gateway (its
    runner), or the PyFlink job with SIGKILL (it restores its latest checkpoint)."""
    job = getattr(gateway, "job", None)
    if job is None:
        gateway.stop()
        gateway.start()
        return
    assert job.proc is not None
    os.killpg(job.proc.pid, signal.SIGKILL)
    job.proc.wait()
    job.start()


def test_a_pending_timer_survives_a_restart_and_fires_once(
        project: Project, receiver: Receiver) -> None:
    eve = f"eve-{uuid.uuid4().hex[:6]}"
    cart = create(project, receiver, name="cart after restart", trigger={
        "type": "NOT_FOLLOWED_BY", "event": "Add to Cart", "followedBy": "Purchase",
        "within": "8s"}, template={"body": "Still there?"})
    time.sleep(3)
    project.send([event("Add to Cart", eve)])
    project.gateway.wait_processed(project.keys["read_key"])  # in a checkpoint, distributed
    time.sleep(1.5)
    assert receiver.for_campaign(cart) == [], "the timer is not due yet"
    restart_processing(project.gateway)
    (msg,) = receiver.wait(cart, 1, timeout=WITHIN)
    assert msg["user_id"] == eve
    time.sleep(5)
    assert len(receiver.for_campaign(cart)) == 1, "fired once, not again after the restore"


def test_holdout_results_and_a_one_off_send_to_a_segment(
        project: Project, receiver: Receiver) -> None:
    tag = uuid.uuid4().hex[:6]
    welcome = create(project, receiver, name="welcome", trigger={
        "type": "ON_EVENT", "event": "Sign Up"}, holdout=0.5,
        goal={"event": "Purchase", "within": "1h"}, template={"body": "Welcome!"})
    users = [f"w{i:02d}-{tag}" for i in range(24)]
    held = {u for u in users if in_holdout(welcome, u, 0.5)}
    assert 0 < len(held) < len(users)
    buyers = set(users[:8])
    time.sleep(3)
    project.send([event("Sign Up", u, seconds_ago=5) for u in users])
    receiver.wait(welcome, len(users) - len(held), timeout=WITHIN)
    count = """query($id: String!) { deliveries(campaignId: $id) { totalCount } }"""
    deadline = time.monotonic() + WITHIN  # the holdout decisions are recorded too
    while (time.monotonic() < deadline
           and admin(project, count, {"id": welcome})["deliveries"]["totalCount"] < len(users)):
        time.sleep(0.2)
    time.sleep(0.01)  # purchases come after every decision (ms clock)
    project.send([event("Purchase", u) for u in sorted(buyers)])
    project.gateway.wait_processed(project.keys["read_key"])
    r = admin(project, """query($id: String!) { campaignResults(id: $id) { sent converted
        holdout holdoutConverted lift } }""", {"id": welcome})["campaignResults"]
    sent = set(users) - held
    rate, held_rate = len(buyers & sent) / len(sent), len(buyers & held) / len(held)
    assert r == {"sent": len(sent), "converted": len(buyers & sent), "holdout": len(held),
                 "holdoutConverted": len(buyers & held),
                 "lift": rate / held_rate - 1 if held_rate else None}

    thanks = admin(project, """mutation($ch: ChannelInput!, $f: SegmentFilter!) {
        sendEngagement(segment: $f, channel: $ch, template: {body: "Thank you!"}) {
        queued campaign { id status } } }""", {
        "ch": {"type": "WEBHOOK", "url": receiver.url, "secret": SECRET},
        "f": {"did": [{"event": "Purchase"}]}})["sendEngagement"]
    assert thanks["queued"] == len(buyers)
    got = receiver.wait(thanks["campaign"]["id"], len(buyers), timeout=WITHIN)
    assert sorted(b["user_id"] for b in got) == sorted(buyers)
