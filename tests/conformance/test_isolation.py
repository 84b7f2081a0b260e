"""Tenants are isolated (issue 7), on every backend: project A's keys see nothing of project
B — on every query, mutation and subscription the schema has (``tests.schema_walk`` walks
them all, so a field added later is covered too).

B holds events, a profile with contact fields, a saved segment, a campaign, an event schema
and a dead letter. The names A aims at (B's user, session, event name, segment name) carry
a ``target`` marker — an answer may echo them (a funnel names its steps) — and everything
else B stores carries a ``secret`` one: device ids, URLs, properties, traits, a second
user and event A never names, the campaign's name, template and secret. No answer to A,
data or error, holds a secret of B. A's own data shows up in its answers (a control: the
queries do reach data), and B's answers never show A's.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from resolvers.schema import build_schema
from tests.conformance.conftest import Project
from tests.e2e.ws_client import TRANSPORT_WS, connected
from tests.schema_walk import Operation, Values, operations

SCHEMA = build_schema()._schema
NOW = int(time.time() * 1000)


class Tenant:
    """A project with data marked by ``target`` (what others may aim at) and ``secret``."""

    def __init__(self, project: Project, label: str) -> None:
        self.p = project
        self.target = f"{label}tgt{uuid.uuid4().hex[:10]}"
        self.secret = f"{label}sec{uuid.uuid4().hex[:10]}"
        self.user = f"user-{self.target}"
        self.event = f"Event {self.target}"
        self.segment = f"segment-{self.target}"
        self.campaign = ""
        self.session = ""

    def admin(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self.p.gateway.gql(self.p.keys["admin_key"], query, variables)
        assert "errors" not in body, body
        return dict(body["data"])

    def populate(self) -> None:
        t, s = self.target, self.secret
        self.p.send([{"distinct_user_id": self.user, "device_id": f"device-{s}-id",
                      "traits": {"email": f"{s}@example.com", "first_name": f"Name{s}",
                                 "phone": "+1555" + s[-6:]}}], "/v1/identify")
        self.admin("""mutation($s: EventSchemaInput!) { registerEventSchema(input: $s) {
            version } }""", {"s": {"eventName": self.event, "category": "User Actions",
                                   "schema": {"type": "object", "properties": {
                                       "note": {"type": "string"}}}}})
        events = [{"event_name": name, "time": NOW - 3_600_000 + k * 1_000,
                   "insert_id": f"{t}-{k}", "distinct_user_id": user,
                   "device_id": f"device-{s}-{user[-3:]}", "url": f"https://{s}.example/p{k}",
                   "custom_properties": {"note": f"note-{s}"}}
                  for user, names in ((self.user, [self.event, "Add to Cart", self.event,
                                                   "Purchase"]),
                                      (f"user-{s}", [f"Secret {s}", "Purchase"]))
                  for k, name in enumerate(names, start=len(names))]
        bad = {**events[0], "insert_id": f"{t}-bad", "custom_properties": {"note": 7,
                                                                          "why": s}}
        result = self.p.send([*events, bad])
        assert result["accepted"] == 6
        assert len(result["rejected"]) == 1  # a dead letter holding the secret
        self.admin("""mutation($n: String!, $f: SegmentFilter!) { saveSegment(name: $n,
            filter: $f) { name } }""", {"n": self.segment,
                                          "f": {"did": [{"event": self.event}]}})
        self.campaign = self.admin("""mutation($i: CampaignInput!) { createCampaign(input: $i)
            { id } }""", {"i": {"name": f"Campaign {s}", "trigger": {
            "type": "ON_EVENT", "event": f"Never {s}"}, "channel": {
            "type": "WEBHOOK", "url": f"http://127.0.0.1:9/{s}", "secret": s + s},
            "template": {"body": f"Hello {s}"}}})["createCampaign"]["id"]
        self.p.gateway.wait_processed(self.p.keys["read_key"])
        sessions = self.admin("""query($u: String!) { sessions(filter: {userId: $u}) {
            edges { node { id } } } }""", {"u": self.user})["sessions"]["edges"]
        assert sessions, "the tenant's events were sessionized"
        self.session = sessions[0]["node"]["id"]

    def values(self) -> Values:
        """Arguments aimed at this tenant's data."""
        return Values(
            strings={"userId": self.user, "sessionId": self.session, "id": self.session,
                     "campaignId": self.campaign, "target": self.event, "start": self.event,
                     "startEvent": self.event, "returnEvent": self.event,
                     "fromEvent": self.event, "toEvent": "Purchase", "event": self.event,
                     "savedSegment": self.segment, "name": self.segment,
                     "prefix": self.p.keys["read_key"][:10], "breakdown": "city"},
            default=self.event,
            overrides={"steps": lambda: [{"event": self.event}, {"event": "Purchase"}]})


def run(tenant: Tenant, key: str, op: Operation) -> dict[str, Any]:
    body = tenant.p.gateway.gql(tenant.p.keys[key], op.document, op.variables)
    assert "data" in body or "errors" in body, body
    for error in body.get("errors") or ():
        code = (error.get("extensions") or {}).get("code")
        assert code in ("BAD_USER_INPUT", "NOT_FOUND", "FORBIDDEN", "UNAVAILABLE"), (
            op.field, error)
    return body


def assert_sees_nothing_of(body: dict[str, Any], other: Tenant, field: str) -> None:
    data = json.dumps(body.get("data"))
    assert other.secret not in data, (field, data[:2000])
    assert other.secret not in json.dumps(body.get("errors")), (field, body["errors"])


def test_every_query_and_mutation_of_one_project_sees_nothing_of_another(
        backend: Any) -> None:
    a = Tenant(Project(backend, backend.create_project("tenant-a")), "a")
    b = Tenant(Project(backend, backend.create_project("tenant-b")), "b")
    a.populate()
    b.populate()
    ops = list(operations(SCHEMA, "query", b.values()))
    assert {o.field for o in ops} == set(SCHEMA.query_type.fields)  # type: ignore[union-attr]
    showed_own = []
    for key in ("read_key", "admin_key"):
        for op in ops:
            body = run(a, key, op)
            assert_sees_nothing_of(body, b, op.field)
            if a.target in json.dumps(body.get("data")):
                showed_own.append(op.field)
    # the control: aimed at B's names A finds nothing, so ask once more with A's own
    for op in operations(SCHEMA, "query", a.values()):
        body = run(a, "admin_key", op)
        assert_sees_nothing_of(body, b, op.field)
        if a.target in json.dumps(body.get("data")):
            showed_own.append(op.field)
    assert {"sessions", "segment", "paths", "segments", "eventSchemas",
            "deadLetters"} <= set(showed_own), sorted(set(showed_own))

    # Mutations, by A's admin key, aimed at B's things (or creating A's own).
    b_letters = [e["id"] for e in b.admin("{ deadLetters(first: 10) { edges { id } } }")[
        "deadLetters"]["edges"]]
    assert len(b_letters) == 1
    replayed = a.admin("mutation($ids: [ID!]) { replayDeadLetters(ids: $ids) { accepted } }",
                       {"ids": b_letters})
    assert replayed == {"replayDeadLetters": {"accepted": 0}}
    done = {"replayDeadLetters"}
    for op in operations(SCHEMA, "mutation", b.values()):
        variables = dict(op.variables)
        if op.field in ("pauseCampaign", "resumeCampaign"):
            variables["id"] = b.campaign
        if op.field == "revokeApiKey":
            variables["prefix"] = b.p.keys["read_key"][:10]
        if op.field in ("createCampaign", "sendEngagement", "replayDeadLetters"):
            continue  # with valid inputs, here
        body = a.p.gateway.gql(a.p.keys["admin_key"], op.document, variables)
        assert_sees_nothing_of(body, b, op.field)
        done.add(op.field)
    a.admin("""mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }""", {"i": {
        "name": "A campaign", "trigger": {"type": "ON_EVENT", "event": b.event},
        "channel": {"type": "LOG"}, "template": {"body": "hi"}}})
    sent = a.admin("""mutation($f: SegmentFilter!) { sendEngagement(segment: $f,
        channel: {type: LOG}, template: {body: "hi"}) { queued } }""",
                   {"f": {"did": [{"event": b.event}]}})
    assert sent["sendEngagement"]["queued"] == 0, "B's users are not A's to message"
    done |= {"createCampaign", "sendEngagement"}
    assert done == set(SCHEMA.mutation_type.fields)  # type: ignore[union-attr]
    a.p.gateway.wait_processed(a.p.keys["read_key"])

    # B is as it was: its keys work, its campaign is active, its segment and schema stand.
    assert b.admin("{ campaigns { id status } }")["campaigns"] == [
        {"id": b.campaign, "status": "ACTIVE"}]
    assert b.admin("{ segments { name } }")["segments"] == [{"name": b.segment}]
    assert [k["active"] for k in b.admin("{ apiKeys { active } }")["apiKeys"]] == [True] * 3
    letters = b.admin("{ deadLetters(first: 10, status: \"open\") { edges { id } } }")
    assert [e["id"] for e in letters["deadLetters"]["edges"]] == b_letters
    assert b.admin("{ sessionSettings { timeoutMinutes } }") == {
        "sessionSettings": {"timeoutMinutes": 30}}
    # and nothing of A (A tracked events for B's user id in its own project) shows in B
    for op in operations(SCHEMA, "query", b.values()):
        body = run(b, "admin_key", op)
        assert_sees_nothing_of(body, a, op.field)


async def test_subscriptions_of_one_project_see_nothing_of_another(backend: Any) -> None:
    a = Tenant(Project(backend, backend.create_project("live-a")), "a")
    b = Tenant(Project(backend, backend.create_project("live-b")), "b")
    ops = list(operations(SCHEMA, "subscription", b.values()))
    assert {o.field for o in ops} == set(
        SCHEMA.subscription_type.fields)  # type: ignore[union-attr]
    now = int(time.time() * 1000)
    seen: list[dict[str, Any]] = []
    async with connected(backend, TRANSPORT_WS, a.p.keys["read_key"]) as sub:
        for n, op in enumerate(ops):
            await sub.subscribe(str(n), op.document, op.variables)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(b.p.send, [{
            "event_name": b.event, "time": now, "insert_id": f"{b.target}-live-{k}",
            "distinct_user_id": b.user, "device_id": f"device-{b.secret}",
            "url": f"https://{b.secret}.example/live"} for k in range(3)])
        await asyncio.to_thread(a.p.send, [{
            "event_name": a.event, "time": now, "insert_id": f"{a.target}-live",
            "distinct_user_id": a.user, "device_id": f"device-{a.target}"}])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                message = await sub.receive(max(0.1, deadline - time.monotonic()))
            except (TimeoutError, AssertionError):
                break
            seen.append(message)
            if a.target in json.dumps(message):
                break  # A's own event arrived: B's, sent first, would have by now
        await asyncio.sleep(2.0)  # and a little more, for stragglers
        while True:
            try:
                seen.append(await sub.receive(0.2))
            except (TimeoutError, AssertionError):
                break
    text = json.dumps(seen)
    assert a.target in text, "the control: A's live event reached A's liveEvents"
    assert b.secret not in text
    assert f"{b.target}-live" not in text
