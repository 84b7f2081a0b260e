"""Fuzzing a real gateway (issue 7): `/v1/events`, `/v1/identify`, the SDK-compatible
routes (issue 8) and `/graphql` answer every input — malformed bytes, wrong types in every
field, valid queries and mutations generated from the schema (hypothesis-graphql), random
query text — with a 200 or a 4xx that says why, never a 500 or an internal error, and the
gateway stays up and keeps what it accepted.

``FUZZ_EXAMPLES`` scales the number of inputs (default 150 per strategy, 900 in all).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import mutations, nodes, queries

from resolvers.schema import build_schema
from tests.e2e.conftest import Gateway

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
SDL = str(build_schema())
# JSON arguments (an event schema, a campaign's headers): strings, numbers or small objects
JSON_NODES = {"JSON": st.one_of(st.text(max_size=20).map(nodes.String),
                                st.integers(-5, 5).map(nodes.Int),
                                st.booleans().map(nodes.Boolean))}
TRIED: dict[str, int] = {}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12)

def dumps(value: Any) -> bytes:
    """The standard library's JSON: integers past 64 bits, and Infinity (not JSON) too."""
    return json.dumps(value).encode()


EVENT_FIELDS = ("event_name", "time", "insert_id", "distinct_user_id", "device_id",
                "session_id", "event_category", "url", "ip", "user_agent", "source_id",
                "app_version", "custom_properties")


@st.composite
def event_like(draw: Any) -> Any:
    """A valid event with some fields dropped, replaced by any JSON, or added."""
    event: dict[str, Any] = {
        "event_name": "Search", "time": int(time.time() * 1000),
        "insert_id": str(uuid.uuid4()), "device_id": "fuzz-device",
        "custom_properties": {"q": "shoes"}}
    for name in draw(st.lists(st.sampled_from(EVENT_FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()):
            event.pop(name, None)
        else:
            event[name] = draw(json_values)
    event.update(draw(st.dictionaries(st.text(max_size=12), json_values, max_size=2)))
    return event


bodies = (st.lists(event_like(), min_size=1, max_size=5).map(dumps)
          | event_like().map(dumps)
          | json_values.map(dumps)
          | st.binary(max_size=300)
          | st.binary(max_size=300).map(gzip.compress))


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(tmp_path_factory.mktemp("fuzz"), env={"CEP_RATE_QUERIES": "0",
                                                       "CEP_RATE_INGEST": "0"})
    g.start()
    yield g
    g.stop()


@pytest.fixture(scope="module")
def keys(gw: Gateway) -> dict[str, Any]:
    return gw.create_project("fuzz")


@pytest.fixture(scope="module")
def client(gw: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=30) as c:
        yield c


def check_ingest(resp: httpx.Response, body: bytes) -> None:
    assert resp.status_code in (200, 400, 413), (resp.status_code, resp.text, body[:300])
    answer = resp.json()
    if resp.status_code == 200:
        assert set(answer) == {"accepted", "rejected"}
        for r in answer["rejected"]:
            assert isinstance(r["index"], int)
            assert r["reason"], r
    else:
        assert answer["error"], answer
        assert answer["code"] in ("BAD_REQUEST", "PAYLOAD_TOO_LARGE"), answer


@pytest.mark.parametrize("path", ["/v1/events", "/v1/identify"])
def test_ingest_answers_every_body_with_200_or_a_4xx_that_says_why(
        client: httpx.Client, keys: dict[str, Any], path: str) -> None:
    @SETTINGS
    @given(body=bodies)
    def run(body: bytes) -> None:
        TRIED[path] = TRIED.get(path, 0) + 1
        resp = client.post(path, content=body, headers={
            "Authorization": f"Bearer {keys['write_key']}"})
        check_ingest(resp, body)

    run()


SDK_PATHS = ["/v1/batch", "/v1/track", "/v1/page", "/batch/", "/capture/", "/e/", "/track",
             "/engage", "/import?strict=1"]


@st.composite
def sdk_bodies(draw: Any) -> tuple[str, bytes, str]:
    """A path of the SDK-compatible routes, a body (JSON of any shape, an SDK-like message
    with wrong types, form encoded or raw bytes) and its content type."""
    path = draw(st.sampled_from(SDK_PATHS))
    message = draw(st.dictionaries(st.sampled_from(
        ["type", "event", "userId", "anonymousId", "messageId", "timestamp", "sentAt",
         "properties", "traits", "context", "batch", "api_key", "distinct_id", "uuid",
         "$set", "$token", "data"]), json_values, max_size=6))
    kind = draw(st.sampled_from(["json", "list", "form", "bytes"]))
    if kind == "json":
        return path, dumps(message), "application/json"
    if kind == "list":
        return path, dumps([message, draw(json_values)]), "application/json"
    if kind == "form":
        data = base64.b64encode(dumps(draw(st.one_of(st.just([message]), json_values))))
        return path, b"data=" + data, "application/x-www-form-urlencoded"
    return path, draw(st.binary(max_size=200)), "application/octet-stream"


def test_sdk_routes_answer_every_body_without_a_500(client: httpx.Client,
                                                    keys: dict[str, Any]) -> None:
    @SETTINGS
    @given(case=sdk_bodies())
    def run(case: tuple[str, bytes, str]) -> None:
        path, body, content_type = case
        TRIED["sdk routes"] = TRIED.get("sdk routes", 0) + 1
        resp = client.post(path, content=body, headers={
            "Authorization": f"Bearer {keys['write_key']}", "Content-Type": content_type})
        assert resp.status_code < 500, (path, resp.status_code, resp.text[:300], body[:300])
        assert resp.status_code in (200, 400, 413), (path, resp.status_code, resp.text[:300])

    run()


def check_graphql(resp: httpx.Response, query: str) -> None:
    assert resp.status_code in (200, 400), (resp.status_code, resp.text[:500], query[:500])
    answer = resp.json()
    for error in answer.get("errors") or ():
        assert error["message"] != "Internal error", (error, query[:2000])
        assert error["message"], error


def test_graphql_answers_generated_queries_without_internal_errors(
        client: httpx.Client, keys: dict[str, Any]) -> None:
    @SETTINGS
    @given(query=queries(SDL, custom_scalars=JSON_NODES))
    def run(query: str) -> None:
        TRIED["queries"] = TRIED.get("queries", 0) + 1
        check_graphql(client.post("/graphql", json={"query": query}, headers={
            "Authorization": f"Bearer {keys['admin_key']}"}), query)

    run()


def test_graphql_answers_generated_mutations_without_internal_errors(
        client: httpx.Client, keys: dict[str, Any]) -> None:
    schema = build_schema()._schema
    assert schema.mutation_type is not None
    # Not the key mutations: a generated revoke or rotate would end the test's own key.
    fields = [f for f in schema.mutation_type.fields if "ApiKey" not in f]

    @SETTINGS
    @given(query=mutations(SDL, fields=fields, custom_scalars=JSON_NODES))
    def run(query: str) -> None:
        TRIED["mutations"] = TRIED.get("mutations", 0) + 1
        check_graphql(client.post("/graphql", json={"query": query}, headers={
            "Authorization": f"Bearer {keys['admin_key']}"}), query)

    run()


def test_graphql_answers_random_text_and_shapes_with_4xx_or_errors(
        client: httpx.Client, keys: dict[str, Any]) -> None:
    @SETTINGS
    @given(body=st.one_of(
        st.text(max_size=200).map(lambda q: dumps({"query": q})),
        st.dictionaries(st.sampled_from(["query", "variables", "operationName"]),
                        json_values, max_size=3).map(dumps),
        st.binary(max_size=200)))
    def run(body: bytes) -> None:
        TRIED["graphql text"] = TRIED.get("graphql text", 0) + 1
        resp = client.post("/graphql", content=body, headers={
            "Authorization": f"Bearer {keys['read_key']}",
            "Content-Type": "application/json"})
        assert resp.status_code in (200, 400, 415, 422), (resp.status_code, resp.text[:300])
        if resp.status_code == 200:
            check_graphql(resp, body.decode(errors="replace"))

    run()


def test_the_gateway_survived_and_kept_what_it_accepted(
        gw: Gateway, client: httpx.Client, keys: dict[str, Any]) -> None:
    marker = uuid.uuid4().hex
    gw.gql(keys["admin_key"], "mutation { setStrictMode(strict: false) }")  # fuzzed on
    resp = client.post("/v1/events", json=[{
        "event_name": "After Fuzz", "time": int(time.time() * 1000), "insert_id": marker,
        "device_id": "after-fuzz"}], headers={"Authorization": f"Bearer {keys['write_key']}"})
    assert resp.json() == {"accepted": 1, "rejected": []}
    gw.wait_processed(keys["read_key"])
    found = gw.gql(keys["read_key"], """{ sessions(filter: {deviceId: "after-fuzz"}) {
        edges { node { events { insertId } } } } }""")
    assert [e["insertId"] for edge in found["data"]["sessions"]["edges"]
            for e in edge["node"]["events"]] == [marker]
    total = sum(TRIED.values())
    print(f"fuzzed {total} inputs: {TRIED}")
    assert not TRIED or total >= 0.9 * EXAMPLES * len(TRIED)
