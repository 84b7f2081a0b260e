"""Campaigns end to end on the embedded profile (issue 6): a real `cep serve`, a real HTTP
receiver for the webhook channel, events over `/v1/events`, and the GraphQL API.

Abandoned cart (NOT_FOLLOWED_BY) fires for the user who did not buy and for no one else;
a thank-you (ON_EVENT with a condition) is rendered from the profile and signed; a pending
timer survives a restart; a restart sends nothing twice; the holdout is kept out and the
results count conversions against it.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from clients.channels import verify_signature
from gateway.campaigns import in_holdout
from tests.e2e.conftest import Gateway
from tests.e2e.receiver import Receiver

SECRET = "s3cret-for-tests"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


class Mailbox:
    """A real SMTP server's inbox (aiosmtpd)."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, smtp: tuple[Mailbox, int]
       ) -> Iterator[Gateway]:
    g = Gateway(tmp_path_factory.mktemp("campaigns"), env={
        "CEP_WEBHOOK_SECRET": SECRET, "CEP_SMTP_HOST": "127.0.0.1",
        "CEP_SMTP_PORT": str(smtp[1]), "CEP_SMTP_SENDER": "hello@shop.example",
        "CEP_SMTP_SECURITY": "none"})
    g.start()
    yield g
    g.stop()


@pytest.fixture
def keys(gw: Gateway) -> dict[str, Any]:
    return gw.create_project(f"camp-{uuid.uuid4().hex[:6]}")


def send(gw: Gateway, keys: dict[str, Any], records: list[dict[str, Any]],
         path: str = "/v1/events") -> None:
    resp = httpx.post(gw.url + path, json=records, timeout=30,
                      headers={"Authorization": f"Bearer {keys['write_key']}"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["rejected"] == []


def event(name: str, user: str, seconds_ago: float = 0, **props: Any) -> dict[str, Any]:
    return {"event_name": name, "time": int(time.time() * 1000 - seconds_ago * 1000),
            "insert_id": str(uuid.uuid4()), "distinct_user_id": user,
            "device_id": f"dev-{user}", "custom_properties": props}


def admin(gw: Gateway, keys: dict[str, Any], query: str,
          variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = gw.gql(keys["admin_key"], query, variables)
    assert "errors" not in body, body
    return dict(body["data"])


CREATE = """mutation($input: CampaignInput!) { createCampaign(input: $input) {
    id status spec } }"""


def create(gw: Gateway, keys: dict[str, Any], receiver: Receiver,
           **input_: Any) -> str:
    data = admin(gw, keys, CREATE, {"input": {
        "channel": {"type": "WEBHOOK", "url": receiver.url},
        "template": {"subject": "Hi", "body": "Hello {{ first_name | default: \"there\" }}"},
        **input_}})
    assert data["createCampaign"]["status"] == "ACTIVE"
    assert "secret" not in data["createCampaign"]["spec"]["channel"]
    return str(data["createCampaign"]["id"])


def test_abandoned_cart_and_thank_you(gw: Gateway, keys: dict[str, Any],
                                      receiver: Receiver) -> None:
    cart = create(gw, keys, receiver, name="abandoned cart", trigger={
        "type": "NOT_FOLLOWED_BY", "event": "Add to Cart", "followedBy": "Purchase",
        "within": "2s"}, template={"subject": "Your cart",
                                   "body": "{{ first_name | default: \"Hey\" }}, still there?"})
    thanks = create(gw, keys, receiver, name="thanks NY", trigger={
        "type": "ON_EVENT", "event": "Charged",
        "where": [{"key": "city", "op": "eq", "value": "New York"}]},
        template={"body": "Thanks for ordering, {{ first_name }}!"})
    send(gw, keys, [{"distinct_user_id": "ann", "traits": {"first_name": "Ann"}}],
         "/v1/identify")
    # bob buys a second after adding (same-millisecond events are ordered by insert id)
    send(gw, keys, [event("Add to Cart", "ann"), event("Add to Cart", "bob", seconds_ago=1),
                    event("Purchase", "bob"),
                    event("Charged", "ann", city="New York", amount=12),
                    event("Charged", "cy", city="Boston", amount=3)])
    (thank,) = receiver.wait(thanks, 1)
    assert (thank["user_id"], thank["message"]) == ("ann", "Thanks for ordering, Ann!")
    (reminder,) = receiver.wait(cart, 1)
    assert (reminder["user_id"], reminder["message"]) == ("ann", "Ann, still there?")
    assert reminder["idempotency_key"].endswith(":ann:" + reminder["data"]["firing"])
    _, headers, raw = next(r for r in receiver.received if r[0] is reminder)
    assert verify_signature(SECRET, raw, headers["X-CEP-Signature"])
    time.sleep(3)  # bob bought: nothing more comes
    assert [b["user_id"] for b in receiver.for_campaign(cart)] == ["ann"]
    page = admin(gw, keys, """query($id: String!) { deliveries(campaignId: $id) {
        totalCount edges { node { userId status attempts channel } } } }""", {"id": cart})
    assert page["deliveries"]["totalCount"] == 1
    assert page["deliveries"]["edges"][0]["node"] == {
        "userId": "ann", "status": "sent", "attempts": 1, "channel": "WEBHOOK"}


def test_timers_survive_a_restart_and_nothing_is_sent_twice(
        gw: Gateway, keys: dict[str, Any], receiver: Receiver) -> None:
    cart = create(gw, keys, receiver, name="cart 4s", trigger={
        "type": "NOT_FOLLOWED_BY", "event": "Add to Cart", "followedBy": "Purchase",
        "within": "4s"})
    send(gw, keys, [event("Add to Cart", "dan")])
    gw.wait_processed(keys["read_key"])
    gw.stop()  # the timer is due in ~4 s; it lives in the campaign store
    gw.start()
    (msg,) = receiver.wait(cart, 1)
    assert msg["user_id"] == "dan"
    gw.stop()
    gw.start()
    time.sleep(2)
    assert len(receiver.for_campaign(cart)) == 1


def test_holdout_and_results(gw: Gateway, keys: dict[str, Any], receiver: Receiver) -> None:
    welcome = create(gw, keys, receiver, name="welcome", trigger={
        "type": "ON_EVENT", "event": "Sign Up"}, holdout=0.5,
        goal={"event": "Purchase", "within": "1h"})
    users = [f"u{i:02d}" for i in range(16)]
    held = {u for u in users if in_holdout(welcome, u, 0.5)}
    assert 0 < len(held) < len(users)  # both groups exist for these ids
    buyers = {"u00", "u01", "u02", "u03", "u04", "u05"}
    send(gw, keys, [event("Sign Up", u, seconds_ago=5) for u in users])
    receiver.wait(welcome, len(users) - len(held))
    deadline = time.monotonic() + 30  # the holdout decisions are recorded too
    while time.monotonic() < deadline and admin(gw, keys, """query($id: String!) {
            deliveries(campaignId: $id) { totalCount } }""", {"id": welcome}
            )["deliveries"]["totalCount"] < len(users):
        time.sleep(0.1)
    time.sleep(0.01)  # purchases come after every decision (ms clock)
    send(gw, keys, [event("Purchase", u) for u in sorted(buyers)])
    gw.wait_processed(keys["read_key"])
    r = admin(gw, keys, """query($id: String!) { campaignResults(id: $id) { sent converted
        holdout holdoutConverted conversionRate holdoutConversionRate lift } }""",
              {"id": welcome})["campaignResults"]
    sent = set(users) - held
    rate, held_rate = len(buyers & sent) / len(sent), len(buyers & held) / len(held)
    assert r == {"sent": len(sent), "converted": len(buyers & sent), "holdout": len(held),
                 "holdoutConverted": len(buyers & held), "conversionRate": rate,
                 "holdoutConversionRate": held_rate,
                 "lift": rate / held_rate - 1 if held_rate else None}
    assert {b["user_id"] for b in receiver.for_campaign(welcome)} == sent


def test_pause_stops_firing_and_one_off_sends_reach_a_segment(
        gw: Gateway, keys: dict[str, Any], receiver: Receiver) -> None:
    ping = create(gw, keys, receiver, name="ping", trigger={"type": "ON_EVENT",
                                                            "event": "Ping"})
    assert admin(gw, keys, "mutation($id: String!) { pauseCampaign(id: $id) { status } }",
                 {"id": ping}) == {"pauseCampaign": {"status": "PAUSED"}}
    send(gw, keys, [event("Ping", "eve"), event("Charged", "eve"), event("Charged", "fay"),
                    event("Search", "gus")])
    gw.wait_processed(keys["read_key"])
    sent = admin(gw, keys, """mutation($ch: ChannelInput!) { sendEngagement(
        segment: {did: [{event: "Charged"}]}, channel: $ch,
        template: {body: "Thank you!"}) { queued campaign { id status } } }""",
                 {"ch": {"type": "WEBHOOK", "url": receiver.url}})["sendEngagement"]
    assert sent["queued"] == 2
    assert sent["campaign"]["status"] == "SENT"
    got = receiver.wait(sent["campaign"]["id"], 2)
    assert sorted(b["user_id"] for b in got) == ["eve", "fay"]
    assert receiver.for_campaign(ping) == []


def test_email_campaign_reaches_a_real_smtp_server(gw: Gateway, keys: dict[str, Any],
                                                   smtp: tuple[Mailbox, int]) -> None:
    box, _ = smtp
    data = admin(gw, keys, CREATE, {"input": {
        "name": "welcome mail", "trigger": {"type": "ON_EVENT", "event": "Sign Up"},
        "channel": {"type": "EMAIL"},
        "template": {"subject": "Welcome, {{ first_name }}",
                     "body": "Hello from {{ city | default: \"us\" }}."}}})
    send(gw, keys, [{"distinct_user_id": "hal", "traits": {
        "first_name": "Hal", "email": "hal@example.com", "city": "Austin"}}], "/v1/identify")
    gw.wait_processed(keys["read_key"])
    send(gw, keys, [event("Sign Up", "hal")])
    deadline = time.monotonic() + 30
    while not box.messages and time.monotonic() < deadline:
        time.sleep(0.1)
    (mail,) = box.messages
    assert mail["To"] == "hal@example.com"
    assert mail["From"] == "hello@shop.example"
    assert mail["Subject"] == "Welcome, Hal"
    assert mail.get_content().strip() == "Hello from Austin."
    page = admin(gw, keys, """query($id: String!) { deliveries(campaignId: $id) {
        edges { node { status channel } } } }""", {"id": data["createCampaign"]["id"]})
    assert page["deliveries"]["edges"] == [{"node": {"status": "sent", "channel": "EMAIL"}}]


def test_bad_campaigns_name_the_field_and_need_the_admin_key(
        gw: Gateway, keys: dict[str, Any], receiver: Receiver) -> None:
    base = {"name": "x", "channel": {"type": "WEBHOOK", "url": receiver.url},
            "template": {"body": "hi"}}
    cases = [
        ({"trigger": {"type": "NOT_FOLLOWED_BY", "event": "A", "within": "1h"}},
         "input.trigger.followedBy"),
        ({"trigger": {"type": "ON_EVENT", "event": "A"}, "holdout": 2.0}, "input.holdout"),
        ({"trigger": {"type": "ON_EVENT", "event": "A"},
          "channel": {"type": "WEBHOOK", "url": "ftp://x"}}, "input.channel.url"),
        ({"trigger": {"type": "ON_EVENT", "event": "A"},
          "template": {"body": "{{ oops"}}, "input.template.body"),
        ({"trigger": {"type": "INACTIVITY", "within": "soon"}}, "input.trigger.within"),
    ]
    for extra, field in cases:
        body = gw.gql(keys["admin_key"], CREATE, {"input": {**base, **extra}})
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
        assert body["errors"][0]["message"].startswith(field), body
    body = gw.gql(keys["read_key"], CREATE, {"input": {
        **base, "trigger": {"type": "ON_EVENT", "event": "A"}}})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"

