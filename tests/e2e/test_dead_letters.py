"""Dead letters: rejected records are kept with their reason and replayed after a fix."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx
import orjson

from tests.e2e.conftest import ROOT, Gateway

NOW = int(time.time() * 1000)
SCHEMA = """mutation($s: EventSchemaInput!) { registerEventSchema(input: $s) {
  eventName version category } }"""


def coupon(i: int, code: Any) -> dict[str, Any]:
    return {"event_name": "Coupon Applied", "time": NOW - 60_000 + i, "insert_id": f"cp-{i}",
            "device_id": "dl-device", "custom_properties": {"code": code}}


def test_schema_fix_then_replay_ingests_the_rejected(gateway: Gateway,
                                                     keys: dict[str, Any]) -> None:
    admin, read = keys["admin_key"], keys["read_key"]
    v1 = {"eventName": "Coupon Applied", "category": "User Actions",
          "schema": {"type": "object", "properties": {"code": {"type": "string"}}}}
    assert gateway.gql(admin, SCHEMA, {"s": v1})["data"]["registerEventSchema"] == {
        "eventName": "Coupon Applied", "version": 1, "category": "User Actions"}
    resp = httpx.post(gateway.url + "/v1/events", content=orjson.dumps(
        [coupon(0, "SAVE10"), coupon(1, 42), coupon(2, 7)]),
        headers={"Authorization": f"Bearer {keys['write_key']}"}).json()
    assert resp["accepted"] == 1
    assert [r["reason"] for r in resp["rejected"]] == [
        "custom_properties.code: 42 is not of type \"string\"",
        "custom_properties.code: 7 is not of type \"string\""]

    # Changing the type would break events already valid: refused (unless forced).
    narrow = {**v1, "schema": {"type": "object", "properties": {"code": {"type": "integer"}}}}
    refused = gateway.gql(admin, SCHEMA, {"s": narrow})["errors"][0]
    assert refused["extensions"]["code"] == "BAD_USER_INPUT"
    assert refused["message"].startswith("input.")
    assert "code" in refused["message"]
    # Widening it keeps every old event valid: accepted as version 2.
    wide = {**v1, "schema": {"type": "object",
                             "properties": {"code": {"type": ["string", "integer"]}}}}
    assert gateway.gql(admin, SCHEMA, {"s": wide})["data"]["registerEventSchema"][
        "version"] == 2

    gateway.wait_processed(read)
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "deadletters", "replay",
                          "--url", gateway.url, "--admin-key", admin], cwd=ROOT,
                         capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout)["accepted"] >= 2
    gateway.wait_processed(read)
    open_letters = gateway.gql(read, "{ deadLetters(first: 500) { edges { payload } } }")
    assert not [d for d in open_letters["data"]["deadLetters"]["edges"]
                if "Coupon Applied" in d["payload"]]
    events = gateway.gql(read, """{ sessions(filter: {deviceId: "dl-device"}) {
        edges { node { events { insertId properties } } } } }""")["data"]["sessions"]
    got = {e["insertId"]: e["properties"]["code"]
           for edge in events["edges"] for e in edge["node"]["events"]}
    assert got == {"cp-0": "SAVE10", "cp-1": 42, "cp-2": 7}
