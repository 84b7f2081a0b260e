"""The schema registry: catalogue, validation, strict mode, versions, state, isolation."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import jsonschema_rs
import orjson
import pytest

from stream.contract.registry import (
    CATEGORIES,
    CUSTOM_CATEGORY,
    MAX_ERRORS,
    SchemaError,
    SchemaRegistry,
    SchemaVersion,
    load_catalogue,
)

EXPECTED_EVENTS = {
    "User Actions": [
        "App Launch",
        "App Close",
        "Login",
        "Logout",
        "Sign Up",
        "Search",
        "Product View",
        "Add to Cart",
        "Remove from Cart",
        "Begin Checkout",
        "Purchase",
        "Charged",
        "Place Order",
        "Add to Wishlist",
        "Rate Product",
        "Share",
    ],
    "Delivery and Fulfillment": [
        "Order Confirmed",
        "Order Dispatched",
        "Out for Delivery",
        "Order Delivered",
        "Delivery Failed",
        "Order Cancelled",
        "Return Requested",
    ],
    "System Events": [
        "App Install",
        "App Uninstall",
        "App Update",
        "App Crash",
        "Push Received",
        "Push Opened",
        "Notification Permission",
    ],
    "User Engagement": [
        "Page View",
        "Screen View",
        "Button Click",
        "Tap",
        "Scroll",
        "Banner Click",
        "Video Play",
        "Feedback Submitted",
    ],
    "Analytics and Monitoring": [
        "API Error",
        "Slow Response",
        "Payment Failed",
        "Network Error",
        "Performance Sample",
    ],
}
ALL_PREDEFINED = [(c, n) for c, names in EXPECTED_EVENTS.items() for n in names]

FOO_V1 = {"type": "object", "properties": {"level": {"type": "integer"}}}
FOO_V2 = {
    "type": "object",
    "properties": {"level": {"type": "integer"}, "mode": {"type": "string"}},
}


@pytest.fixture
def project() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def registry() -> SchemaRegistry:
    return SchemaRegistry(clock=lambda: 1_618_716_477_000)


# ---------------------------------------------------------------------------- catalogue


def test_catalogue_has_the_seed_categories_in_order() -> None:
    catalogue = load_catalogue()
    assert tuple(catalogue.category_descriptions) == CATEGORIES
    assert CATEGORIES == (
        "User Actions",
        "Delivery and Fulfillment",
        "System Events",
        "User Engagement",
        "Analytics and Monitoring",
        "Custom Events",
    )
    assert all(catalogue.category_descriptions.values())


@pytest.mark.parametrize(("category", "name"), ALL_PREDEFINED)
def test_predefined_event_is_in_its_category(category: str, name: str) -> None:
    catalogue = load_catalogue()
    event = catalogue.get(name)
    assert event is not None
    assert event.category == category
    assert catalogue.category_of(name) == category
    assert event.description


def test_custom_events_has_nothing_predefined() -> None:
    assert load_catalogue().in_category(CUSTOM_CATEGORY) == ()
    assert load_catalogue().category_of("Loyalty Points Redeemed") == CUSTOM_CATEGORY


@pytest.mark.parametrize("name", list(load_catalogue().events))
def test_every_predefined_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = dict(load_catalogue().events[name].schema)
    jsonschema_rs.meta.validate(schema)
    validator = jsonschema_rs.Draft202012Validator(schema)
    assert schema["type"] == "object"
    assert validator.is_valid({})  # every property optional
    assert validator.is_valid({"some_unknown_property": [1, {"x": None}]})  # open


def test_session_and_conversion_flags() -> None:
    catalogue = load_catalogue()
    assert catalogue.session_start_events == {"App Launch"}
    assert catalogue.session_end_events == {"App Close"}
    assert catalogue.conversion_events == {"Purchase", "Charged", "Place Order"}
    purchase = catalogue.get("Purchase")
    assert purchase is not None
    assert purchase.conversion
    assert not purchase.session_start


def test_catalogue_is_loaded_once() -> None:
    assert load_catalogue() is load_catalogue()


# --------------------------------------------------------------------------- validation

GOOD_PROPERTIES = [
    (
        "Purchase",
        {
            "amount": 250.5,
            "currency": "INR",
            "order_id": "o-1",
            "items": [{"product_id": "p1", "name": "Milk", "quantity": 2, "price": 60}],
        },
    ),
    ("Search", {"query": "coffee", "results": 0}),
    (
        "App Crash",
        {
            "reason": "NullPointerException",
            "exception": "java.lang.NPE",
            "stack": "at Foo.bar()",
            "app_version": "4.12.0",
            "fatal": True,
        },
    ),
    ("Add to Cart", {"item": "Coffee", "amount": 5.0}),
    ("Notification Permission", {"status": "granted"}),
    ("Rate Product", {"rating": 5, "product_id": "p1"}),
]


@pytest.mark.parametrize(("event_name", "properties"), GOOD_PROPERTIES)
def test_valid_properties_have_no_errors(
    registry: SchemaRegistry, project: str, event_name: str, properties: dict[str, Any]
) -> None:
    assert registry.validate(project, event_name, properties) == []


@pytest.mark.parametrize(
    ("event_name", "properties", "expected"),
    [
        (
            "Purchase",
            {"amount": -3},
            ["custom_properties.amount: -3 is less than the minimum of 0"],
        ),
        (
            "Purchase",
            {"currency": "rupees"},
            ['custom_properties.currency: "rupees" does not match "^[A-Z]{3}$"'],
        ),
        (
            "Purchase",
            {"items": [{"price": 1}, {"price": "free"}]},
            ['custom_properties.items[1].price: "free" is not of type "number"'],
        ),
        (
            "Search",
            {"query": 42, "results": -1},
            [
                'custom_properties.query: 42 is not of type "string"',
                "custom_properties.results: -1 is less than the minimum of 0",
            ],
        ),
        ("Search", {"results": 2.5}, ['custom_properties.results: 2.5 is not of type "integer"']),
        (
            "Rate Product",
            {"rating": 6},
            ["custom_properties.rating: 6 is greater than the maximum of 5"],
        ),
        (
            "Search",
            ["not", "an", "object"],
            ['custom_properties: ["not","an","object"] is not of type "object"'],
        ),
    ],
)
def test_errors_name_the_property_path_and_reason(
    registry: SchemaRegistry,
    project: str,
    event_name: str,
    properties: Any,
    expected: list[str],
) -> None:
    assert registry.validate(project, event_name, properties) == expected


def test_required_and_additional_property_errors_name_the_property(
    registry: SchemaRegistry, project: str
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "tier": {"type": "string"},
            "address": {
                "type": "object",
                "properties": {"pin": {"type": "string"}},
                "required": ["pin"],
                "additionalProperties": False,
            },
        },
        "required": ["tier"],
    }
    registry.register(project, "Loyalty Joined", schema)
    errors = registry.validate(project, "Loyalty Joined", {"address": {"city": "Pune"}})
    assert sorted(errors) == [
        "custom_properties.address.city: is not an allowed property",
        "custom_properties.address.pin: is a required property",
        "custom_properties.tier: is a required property",
    ]


def test_keys_that_are_not_identifiers_are_quoted(registry: SchemaRegistry, project: str) -> None:
    registry.register(
        project, "Tip", {"type": "object", "properties": {"tip amount": {"type": "number"}}}
    )
    assert registry.validate(project, "Tip", {"tip amount": "x"}) == [
        'custom_properties["tip amount"]: "x" is not of type "number"'
    ]


def test_errors_are_capped(registry: SchemaRegistry, project: str) -> None:
    items = [{"price": "x"} for _ in range(MAX_ERRORS * 5)]
    errors = registry.validate(project, "Purchase", {"items": items})
    assert len(errors) == MAX_ERRORS + 1
    assert errors[0] == 'custom_properties.items[0].price: "x" is not of type "number"'
    assert errors[-1] == "custom_properties: more errors not shown"


def test_long_messages_are_clipped(registry: SchemaRegistry, project: str) -> None:
    (error,) = registry.validate(project, "Search", {"query": ["q" * 10_000]})
    assert error.startswith("custom_properties.query: ")
    assert len(error) < 400
    assert error.endswith("…")


def test_unregistered_events_are_custom_and_unchecked(
    registry: SchemaRegistry, project: str
) -> None:
    assert registry.validate(project, "Loyalty Points Redeemed", {"anything": [1, 2]}) == []
    assert registry.category(project, "Loyalty Points Redeemed") == CUSTOM_CATEGORY
    assert not registry.is_registered(project, "Loyalty Points Redeemed")
    assert registry.category(project, "App Crash") == "System Events"
    assert registry.is_registered(project, "App Crash")


def test_event_names_are_case_sensitive(registry: SchemaRegistry, project: str) -> None:
    assert registry.validate(project, "purchase", {"amount": -3}) == []
    assert registry.category(project, "purchase") == CUSTOM_CATEGORY


# --------------------------------------------------------------------------- strict mode


def test_strict_mode_rejects_unregistered_names(registry: SchemaRegistry, project: str) -> None:
    registry.set_strict(project)
    assert registry.is_strict(project)
    assert registry.validate(project, "Foo", {}) == [
        'event_name: "Foo" is not registered and project is in strict mode'
    ]
    assert registry.validate(project, "Purchase", {"amount": 1}) == []
    registry.register(project, "Foo", FOO_V1)
    assert registry.validate(project, "Foo", {"level": 3}) == []
    assert registry.validate(project, "Bar", {}) != []
    registry.set_strict(project, False)
    assert registry.validate(project, "Bar", {}) == []


def test_strict_mode_is_per_project(registry: SchemaRegistry, project: str) -> None:
    registry.set_strict(project)
    assert registry.validate(project + "-other", "Foo", {}) == []
    assert not registry.is_strict(project + "-other")


def test_strict_reason_quotes_awkward_names(registry: SchemaRegistry, project: str) -> None:
    registry.set_strict(project)
    assert registry.validate(project, 'say "hi"', {}) == [
        'event_name: "say \\"hi\\"" is not registered and project is in strict mode'
    ]


# --------------------------------------------------------------------------- registration


def test_register_first_version(registry: SchemaRegistry, project: str) -> None:
    version = registry.register(project, "Foo", FOO_V1)
    assert (version.project, version.event_name, version.version) == (project, "Foo", 1)
    assert version.category == CUSTOM_CATEGORY
    assert version.created_at == 1_618_716_477_000
    assert not version.forced
    assert registry.is_registered(project, "Foo")
    assert registry.validate(project, "Foo", {"level": "high"}) == [
        'custom_properties.level: "high" is not of type "integer"'
    ]


def test_register_with_category(registry: SchemaRegistry, project: str) -> None:
    registry.register(project, "Slot Booked", FOO_V1, category="Delivery and Fulfillment")
    assert registry.category(project, "Slot Booked") == "Delivery and Fulfillment"
    # A later version keeps the category unless told otherwise.
    registry.register(project, "Slot Booked", FOO_V2)
    assert registry.category(project, "Slot Booked") == "Delivery and Fulfillment"


def test_compatible_second_version(registry: SchemaRegistry, project: str) -> None:
    registry.register(project, "Foo", FOO_V1)
    v2 = registry.register(project, "Foo", FOO_V2)
    assert v2.version == 2
    assert [v.version for v in registry.versions(project, "Foo")] == [1, 2]
    current = registry.current(project, "Foo")
    assert current is not None
    assert current.version == 2
    assert registry.validate(project, "Foo", {"mode": 7}) == [
        'custom_properties.mode: 7 is not of type "string"'
    ]


def test_incompatible_second_version_is_refused(registry: SchemaRegistry, project: str) -> None:
    registry.register(project, "Foo", FOO_V2)
    incompatible = {
        "type": "object",
        "properties": {"level": {"type": "string"}},
        "required": ["level"],
    }
    with pytest.raises(SchemaError) as caught:
        registry.register(project, "Foo", incompatible)
    error = caught.value
    assert error.field == "schema"
    assert error.reasons == (
        "custom_properties.level: type changed from integer to string",
        "custom_properties.mode: property removed",
        "custom_properties.level: newly required",
    )
    assert str(error).startswith('schema: version 2 of "Foo" is not backward compatible')
    assert "custom_properties.level: type changed from integer to string" in str(error)
    # Nothing changed.
    assert [v.version for v in registry.versions(project, "Foo")] == [1]
    assert registry.validate(project, "Foo", {"level": 3}) == []


def test_force_registers_an_incompatible_version(registry: SchemaRegistry, project: str) -> None:
    registry.register(project, "Foo", FOO_V1)
    forced = registry.register(
        project, "Foo", {"type": "object", "properties": {"level": {"type": "string"}}}, force=True
    )
    assert (forced.version, forced.forced) == (2, True)
    assert registry.validate(project, "Foo", {"level": 3}) == [
        'custom_properties.level: 3 is not of type "string"'
    ]


def test_force_on_a_compatible_change_is_not_marked_forced(
    registry: SchemaRegistry, project: str
) -> None:
    registry.register(project, "Foo", FOO_V1)
    assert not registry.register(project, "Foo", FOO_V2, force=True).forced


def test_registering_the_current_schema_again_is_a_no_op(
    registry: SchemaRegistry, project: str
) -> None:
    records: list[dict[str, Any]] = []
    registry.on_change = records.append
    first = registry.register(project, "Foo", FOO_V1)
    again = registry.register(project, "Foo", orjson.loads(orjson.dumps(FOO_V1)))
    assert again is first
    assert len(records) == 1


def test_schema_without_root_type_may_gain_it(registry: SchemaRegistry, project: str) -> None:
    registry.register(project, "Foo", {"properties": {"a": {"type": "string"}}})
    assert (
        registry.register(
            project, "Foo", {"type": "object", "properties": {"a": {"type": "string"}}}
        ).version
        == 2
    )


def test_caller_mutation_does_not_reach_the_registry(
    registry: SchemaRegistry, project: str
) -> None:
    schema = orjson.loads(orjson.dumps(FOO_V1))
    registry.register(project, "Foo", schema)
    schema["properties"]["level"]["type"] = "string"
    assert registry.validate(project, "Foo", {"level": 3}) == []


def test_override_predefined_event(registry: SchemaRegistry, project: str) -> None:
    purchase = dict(load_catalogue().events["Purchase"].schema)
    wider = {**purchase, "properties": {**purchase["properties"], "store_id": {"type": "string"}}}
    version = registry.register(project, "Purchase", wider)
    assert (version.version, version.category) == (1, "User Actions")
    assert registry.validate(project, "Purchase", {"store_id": 9}) == [
        'custom_properties.store_id: 9 is not of type "string"'
    ]
    # The predefined schema still applies to what was kept.
    assert registry.validate(project, "Purchase", {"amount": -3}) != []


def test_incompatible_override_of_predefined_event_is_refused(
    registry: SchemaRegistry, project: str
) -> None:
    narrower = {"type": "object", "properties": {"amount": {"type": "string"}}}
    with pytest.raises(SchemaError) as caught:
        registry.register(project, "Purchase", narrower)
    assert "custom_properties.amount: type changed from number to string" in caught.value.reasons
    assert "with version 0" in str(caught.value)
    assert registry.versions(project, "Purchase") == []
    assert registry.register(project, "Purchase", narrower, force=True).version == 1
    assert registry.validate(project, "Purchase", {"amount": "12"}) == []


def test_predefined_event_keeps_its_category(registry: SchemaRegistry, project: str) -> None:
    with pytest.raises(SchemaError, match='^category: "Purchase" is predefined in "User Actions"$'):
        registry.register(project, "Purchase", {"type": "object"}, category="Custom Events")


def test_current_of_predefined_event_is_version_zero(
    registry: SchemaRegistry, project: str
) -> None:
    current = registry.current(project, "Search")
    assert current is not None
    assert (current.project, current.version, current.category) == (project, 0, "User Actions")
    assert current.predefined
    assert not registry.register(project, "Search", current.schema).predefined
    assert registry.current(project, "Nope") is None


def test_list_shows_every_current_schema_by_category(
    registry: SchemaRegistry, project: str
) -> None:
    registry.register(project, "Foo", FOO_V1)
    registry.register(project, "Foo", FOO_V2)
    listed = registry.list(project)
    names = [v.event_name for v in listed]
    assert len(names) == len(load_catalogue().events) + 1
    assert names[-1] == "Foo"
    assert listed[-1].version == 2
    categories = [v.category for v in listed]
    assert categories == sorted(categories, key=CATEGORIES.index)
    assert all(isinstance(v, SchemaVersion) for v in listed)


@pytest.mark.parametrize(
    ("schema", "field", "reason"),
    [
        ([], "schema", "must be a JSON object"),
        (
            {"type": "object", "properties": {"a": {"type": "strin"}}},
            "schema.properties.a.type",
            '"strin" is not a JSON Schema type',
        ),
        (
            {"properties": {"a": {"minimum": "zero"}}},
            "schema.properties.a.minimum",
            '"zero" is not of type "number"',
        ),
        ({"required": "a"}, "schema.required", '"a" is not of type "array"'),
        (
            {"properties": {"a": {"pattern": "("}}},
            "schema.properties.a.pattern",
            'is not a "regex"',
        ),
        (
            {"properties": {"a": {"pattern": "(?=x)y"}}},
            "schema.properties.a.pattern",
            'is not a "regex"',
        ),
        (
            {"properties": {"a": {"$ref": "https://example.com/s.json"}}},
            "schema",
            "https://example.com/s.json",
        ),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "schema", "missing"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "schema.$schema", "draft 2020-12"),
        ({"type": "string"}, "schema.type", 'must be "object"'),
        ({"properties": {"a": {"const": {1, 2}}}}, "schema", "not JSON-serialisable"),
        ({"description": "x" * 300_000}, "schema", "larger than"),
    ],
)
def test_bad_schemas_are_refused_with_field_and_reason(
    registry: SchemaRegistry, project: str, schema: Any, field: str, reason: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        registry.register(project, "Foo", schema)
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert str(caught.value) == f"{caught.value.field}: {caught.value.reason}"
    assert registry.versions(project, "Foo") == []


def test_too_deep_schema_is_refused(registry: SchemaRegistry, project: str) -> None:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(40):
        schema = {"type": "object", "properties": {"x": schema}}
    with pytest.raises(SchemaError, match="nests deeper than"):
        registry.register(project, "Foo", schema)


@pytest.mark.parametrize(
    ("project_name", "event_name", "field"),
    [
        ("", "Foo", "project"),
        ("p", "", "event_name"),
        ("p", "   ", "event_name"),
        ("p", " Foo", "event_name"),
        ("p", "Foo\n", "event_name"),
        ("p", "F\x00oo", "event_name"),
        ("p", "x" * 256, "event_name"),
    ],
)
def test_bad_names_are_refused(
    registry: SchemaRegistry, project_name: str, event_name: str, field: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        registry.register(project_name, event_name, FOO_V1)
    assert caught.value.field == field


def test_unknown_category_is_refused(registry: SchemaRegistry, project: str) -> None:
    with pytest.raises(SchemaError) as caught:
        registry.register(project, "Foo", FOO_V1, category="Marketing")
    assert caught.value.field == "category"
    assert caught.value.reason.startswith('"Marketing" is not one of User Actions, ')


# --------------------------------------------------------------------------- persistence


def _populate(registry: SchemaRegistry, project: str) -> None:
    registry.register(project, "Foo", FOO_V1, category="User Engagement")
    registry.register(project, "Foo", FOO_V2)
    registry.register(project, "Purchase", {"type": "object"}, force=True)
    registry.register(project + "-b", "Bar", {"type": "object"})
    registry.set_strict(project)
    registry.set_strict(project + "-b", False)


def test_export_and_load_round_trip(registry: SchemaRegistry, project: str) -> None:
    _populate(registry, project)
    state = orjson.loads(orjson.dumps(registry.export_state()))  # JSON-serialisable
    assert {r["type"] for r in state} == {"schema", "strict"}
    restored = SchemaRegistry.from_state(state)
    assert restored.export_state() == state
    assert [v.version for v in restored.versions(project, "Foo")] == [1, 2]
    assert restored.category(project, "Foo") == "User Engagement"
    assert restored.is_strict(project)
    assert not restored.is_strict(project + "-b")
    assert restored.validate(project, "Nope", {}) == registry.validate(project, "Nope", {})
    assert restored.validate(project, "Foo", {"mode": 1}) == registry.validate(
        project, "Foo", {"mode": 1}
    )
    assert restored.validate(project, "Purchase", {"amount": -1}) == []
    purchase = restored.versions(project, "Purchase")[0]
    assert (purchase.forced, purchase.created_at) == (True, 1_618_716_477_000)


def test_on_change_log_replays_into_the_same_state(registry: SchemaRegistry, project: str) -> None:
    log: list[dict[str, Any]] = []
    registry.on_change = log.append
    _populate(registry, project)
    registry.set_strict(project, False)
    assert [r["type"] for r in log] == ["schema"] * 4 + ["strict"] * 3
    restored = SchemaRegistry.from_state(log)
    assert restored.export_state() == registry.export_state()
    assert not restored.is_strict(project)


def test_set_strict_unchanged_is_not_recorded(registry: SchemaRegistry, project: str) -> None:
    log: list[dict[str, Any]] = []
    registry.on_change = log.append
    registry.set_strict(project)
    registry.set_strict(project)
    assert log == [{"type": "strict", "project": project, "strict": True}]


def test_failing_on_change_stops_the_change(project: str) -> None:
    def refuse(record: dict[str, Any]) -> None:
        raise OSError("disk full")

    registry = SchemaRegistry(on_change=refuse)
    with pytest.raises(OSError, match="disk full"):
        registry.register(project, "Foo", FOO_V1)
    with pytest.raises(OSError, match="disk full"):
        registry.set_strict(project)
    assert registry.versions(project, "Foo") == []
    assert not registry.is_strict(project)
    assert registry.export_state() == []


def test_load_state_replayed_twice_is_idempotent(registry: SchemaRegistry, project: str) -> None:
    _populate(registry, project)
    state = registry.export_state()
    restored = SchemaRegistry.from_state(state)
    restored.load_state(state)
    assert restored.export_state() == state


def test_load_state_does_not_call_on_change(registry: SchemaRegistry, project: str) -> None:
    _populate(registry, project)
    log: list[dict[str, Any]] = []
    restored = SchemaRegistry.from_state(registry.export_state(), on_change=log.append)
    assert log == []
    restored.register(project, "Baz", FOO_V1)
    assert len(log) == 1


def _schema_record(project: str, version: int, **overrides: Any) -> dict[str, Any]:
    record = {
        "type": "schema",
        "project": project,
        "event_name": "Foo",
        "version": version,
        "category": CUSTOM_CATEGORY,
        "schema": FOO_V1,
    }
    return {**record, **overrides}


@pytest.mark.parametrize(
    ("records", "field", "reason"),
    [
        ([{"type": "nope"}], "state[0].type", "Invalid value 'nope'"),
        ([{"type": "strict", "project": "p"}], "state[0]", "missing required field `strict`"),
        (
            [{"type": "strict", "project": "p", "strict": "yes"}],
            "state[0].strict",
            "Expected `bool`",
        ),
        ([_schema_record("p", 2)], "state[0].version", "expected version 1, got 2"),
        ([_schema_record("p", 0)], "state[0].version", "Expected `int` >= 1"),
        ([_schema_record("p", 1, category="Other")], "state[0].category", '"Other" is unknown'),
        (
            [_schema_record("p", 1, schema={"type": "object", "properties": {"a": {"type": "x"}}})],
            "state[0].schema.properties.a.type",
            "is not a JSON Schema type",
        ),
        ([_schema_record("p", 1, extra=1)], "state[0]", "unknown field `extra`"),
    ],
)
def test_bad_state_is_refused(records: list[dict[str, Any]], field: str, reason: str) -> None:
    with pytest.raises(SchemaError) as caught:
        SchemaRegistry.from_state(records)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_bad_state_applies_nothing(registry: SchemaRegistry, project: str) -> None:
    records = [
        {"type": "strict", "project": project, "strict": True},
        _schema_record(project, 1),
        _schema_record(project, 3),
    ]
    with pytest.raises(SchemaError, match=r"state\[2\]\.version"):
        registry.load_state(records)
    assert registry.export_state() == []
    assert not registry.is_strict(project)


# ----------------------------------------------------------------------------- isolation


def test_projects_never_see_each_others_schemas(registry: SchemaRegistry) -> None:
    a, b = "project-a", "project-b"
    registry.register(a, "Foo", FOO_V1, category="User Actions")
    registry.register(
        a, "Purchase", {"type": "object", "properties": {"amount": {"type": "string"}}}, force=True
    )
    registry.set_strict(a)

    assert registry.validate(a, "Foo", {"level": "x"}) != []
    assert registry.validate(b, "Foo", {"level": "x"}) == []
    assert registry.category(a, "Foo") == "User Actions"
    assert registry.category(b, "Foo") == CUSTOM_CATEGORY
    assert registry.validate(a, "Purchase", {"amount": "12"}) == []
    assert registry.validate(b, "Purchase", {"amount": "12"}) == [
        'custom_properties.amount: "12" is not of type "number"'
    ]
    assert registry.validate(a, "Bar", {}) != []
    assert registry.validate(b, "Bar", {}) == []
    assert registry.versions(b, "Foo") == []
    # Project B may register the same name with an unrelated schema, from version 1.
    other = registry.register(
        b, "Foo", {"type": "object", "properties": {"level": {"type": "string"}}}
    )
    assert other.version == 1
    assert registry.validate(a, "Foo", {"level": 3}) == []


def test_registries_do_not_share_state(project: str) -> None:
    first, second = SchemaRegistry(), SchemaRegistry()
    first.register(project, "Foo", FOO_V1)
    assert not second.is_registered(project, "Foo")


# ---------------------------------------------------------------------------- concurrency


def test_readers_see_consistent_state_while_a_writer_registers(project: str) -> None:
    registry = SchemaRegistry()
    registry.register(project, "Foo", FOO_V1)
    stop = threading.Event()
    failures: list[str] = []

    def read() -> None:
        while not stop.is_set():
            errors = registry.validate(project, "Foo", {"level": 1})
            bad = registry.validate(project, "Foo", {"level": "x"})
            if errors or bad != ['custom_properties.level: "x" is not of type "integer"']:
                failures.append(f"{errors} {bad}")
            if registry.category(project, "Foo") != CUSTOM_CATEGORY:
                failures.append("category")

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        for i in range(200):
            properties = {"level": {"type": "integer"}, f"p{i}": {"type": "string"}}
            previous = registry.current(project, "Foo")
            assert previous is not None
            schema = {
                "type": "object",
                "properties": {**previous.schema["properties"], **properties},
            }
            registry.register(project, "Foo", schema)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert failures == []
    assert len(registry.versions(project, "Foo")) == 201


def test_concurrent_writers_get_distinct_consecutive_versions(project: str) -> None:
    registry = SchemaRegistry()
    registry.register(project, "Foo", {"type": "object"})

    def write(n: int) -> None:
        for i in range(25):
            name = f"w{n}_{i}"
            while True:
                current = registry.current(project, "Foo")
                assert current is not None
                props = {**current.schema.get("properties", {}), name: {"type": "string"}}
                try:
                    registry.register(project, "Foo", {"type": "object", "properties": props})
                    break
                except SchemaError:  # lost a race: someone else's property was removed
                    continue

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    versions = registry.versions(project, "Foo")
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    final = registry.current(project, "Foo")
    assert final is not None
    assert len(final.schema["properties"]) == 100
