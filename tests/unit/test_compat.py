"""Backward compatibility of properties schemas: one table of (old, new, expected reasons)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stream.contract.compat import check_backward_compatible, join_path


def obj(required: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required is not None:
        schema["required"] = required
    return schema


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
ITEM = obj(product_id=STRING, price=NUMBER)

COMPATIBLE: list[tuple[str, Any, Any]] = [
    ("identical", obj(a=STRING), obj(a=STRING)),
    ("optional property added", obj(a=STRING), obj(a=STRING, b=INTEGER)),
    ("required dropped", obj(["a"], a=STRING), obj(a=STRING)),
    ("required kept", obj(["a"], a=STRING), obj(["a"], a=STRING, b=STRING)),
    ("integer widened to number", obj(n=INTEGER), obj(n=NUMBER)),
    ("type gains null", obj(a=STRING), obj(a={"type": ["string", "null"]})),
    ("type removed", obj(a=STRING), obj(a={})),
    (
        "type list reordered",
        obj(a={"type": ["string", "null"]}),
        obj(a={"type": ["null", "string"]}),
    ),
    (
        "enum widened",
        obj(s={"enum": ["a", "b"]}),
        obj(s={"enum": ["b", "a", "c"]}),
    ),
    ("enum removed", obj(s={"type": "string", "enum": ["a"]}), obj(s=STRING)),
    ("const to enum holding it", obj(s={"const": "a"}), obj(s={"enum": ["a", "b"]})),
    ("enum 1 vs 1.0", obj(n={"enum": [1]}), obj(n={"enum": [1.0]})),
    (
        "minimum lowered",
        obj(n={"type": "number", "minimum": 1}),
        obj(n={"type": "number", "minimum": 0}),
    ),
    ("minimum removed", obj(n={"type": "number", "minimum": 1}), obj(n=NUMBER)),
    (
        "maximum raised",
        obj(n={"type": "number", "maximum": 5}),
        obj(n={"type": "number", "maximum": 10}),
    ),
    (
        "exclusive bound relaxed to inclusive",
        obj(n={"type": "number", "exclusiveMinimum": 0}),
        obj(n={"type": "number", "minimum": 0}),
    ),
    (
        "redundant weaker bound added",
        obj(n={"type": "number", "minimum": 5}),
        obj(n={"type": "number", "minimum": 5, "exclusiveMinimum": 1}),
    ),
    (
        "maxLength raised",
        obj(s={"type": "string", "maxLength": 5}),
        obj(s={"type": "string", "maxLength": 9}),
    ),
    (
        "minLength lowered",
        obj(s={"type": "string", "minLength": 3}),
        obj(s={"type": "string", "minLength": 1}),
    ),
    ("minLength 0 added", obj(s=STRING), obj(s={"type": "string", "minLength": 0})),
    (
        "maxItems raised",
        obj(t={"type": "array", "maxItems": 2}),
        obj(t={"type": "array", "maxItems": 3}),
    ),
    ("multipleOf divides old", obj(n={"multipleOf": 0.3}), obj(n={"multipleOf": 0.1})),
    ("multipleOf removed", obj(n={"multipleOf": 2}), obj(n={})),
    ("pattern removed", obj(s={"type": "string", "pattern": "^a"}), obj(s=STRING)),
    (
        "uniqueItems removed",
        obj(t={"type": "array", "uniqueItems": True}),
        obj(t={"type": "array"}),
    ),
    (
        "additional properties opened",
        {**obj(a=STRING), "additionalProperties": False},
        {**obj(a=STRING), "additionalProperties": True},
    ),
    (
        "additional properties schema dropped",
        {**obj(a=STRING), "additionalProperties": STRING},
        obj(a=STRING),
    ),
    (
        "annotations changed",
        obj(a={"type": "string", "description": "x", "title": "A", "examples": ["q"]}),
        obj(a={"type": "string", "description": "y", "format": "email", "default": "d"}),
    ),
    ("unknown keyword added", obj(a=STRING), obj(a={"type": "string", "x-owner": "growth"})),
    (
        "array items gain optional property",
        obj(items={"type": "array", "items": ITEM}),
        obj(items={"type": "array", "items": obj(product_id=STRING, price=NUMBER, qty=INTEGER)}),
    ),
    (
        "nested object widened",
        obj(address=obj(["city"], city=STRING)),
        obj(address=obj(city={"type": ["string", "null"]}, pin=STRING)),
    ),
    ("anyOf gains a branch", obj(a={"anyOf": [STRING]}), obj(a={"anyOf": [STRING, INTEGER]})),
    (
        "allOf loses a branch",
        obj(a={"allOf": [STRING, {"minLength": 1}]}),
        obj(a={"allOf": [STRING]}),
    ),
    ("oneOf unchanged", obj(a={"oneOf": [STRING, INTEGER]}), obj(a={"oneOf": [STRING, INTEGER]})),
    (
        "$defs definition added",
        {**obj(), "$defs": {"a": STRING}},
        {**obj(), "$defs": {"a": STRING, "b": NUMBER}},
    ),
    ("new schema is true", obj(a=STRING), True),
    ("old schema is false", False, obj(["a"], a=INTEGER)),
    ("property schema becomes true", obj(a=STRING), obj(a=True)),
    ("dependentRequired removed", {**obj(), "dependentRequired": {"a": ["b"]}}, obj()),
]

INCOMPATIBLE: list[tuple[str, Any, Any, list[str]]] = [
    (
        "property removed",
        obj(a=STRING, b=STRING),
        obj(a=STRING),
        ["custom_properties.b: property removed"],
    ),
    (
        "type changed",
        obj(a=STRING),
        obj(a=INTEGER),
        ["custom_properties.a: type changed from string to integer"],
    ),
    (
        "number narrowed to integer",
        obj(n=NUMBER),
        obj(n=INTEGER),
        ["custom_properties.n: type changed from number to integer"],
    ),
    (
        "null dropped from type",
        obj(a={"type": ["string", "null"]}),
        obj(a=STRING),
        ["custom_properties.a: type changed from null or string to string"],
    ),
    (
        "type added where any was allowed",
        obj(a={}),
        obj(a=STRING),
        ["custom_properties.a: type changed from any to string"],
    ),
    (
        "existing property becomes required",
        obj(a=STRING),
        obj(["a"], a=STRING),
        ["custom_properties.a: newly required"],
    ),
    (
        "new required property",
        obj(a=STRING),
        obj(["b"], a=STRING, b=STRING),
        ["custom_properties.b: newly required"],
    ),
    (
        "enum narrowed",
        obj(s={"enum": ["a", "b", "c"]}),
        obj(s={"enum": ["a"]}),
        ['custom_properties.s: enum narrowed, no longer allows "b", "c"'],
    ),
    (
        "enum added",
        obj(s=STRING),
        obj(s={"type": "string", "enum": ["a", "b"]}),
        ['custom_properties.s: values restricted to "a", "b"'],
    ),
    (
        "true is not 1",
        obj(n={"enum": [1]}),
        obj(n={"enum": [True]}),
        ["custom_properties.n: enum narrowed, no longer allows 1"],
    ),
    (
        "minimum raised",
        obj(amount={"type": "number", "minimum": 0}),
        obj(amount={"type": "number", "minimum": 1}),
        ["custom_properties.amount: minimum narrowed from >= 0 to >= 1"],
    ),
    (
        "minimum added",
        obj(amount=NUMBER),
        obj(amount={"type": "number", "minimum": 0}),
        ["custom_properties.amount: minimum narrowed from none to >= 0"],
    ),
    (
        "inclusive bound made exclusive",
        obj(amount={"type": "number", "minimum": 0}),
        obj(amount={"type": "number", "exclusiveMinimum": 0}),
        ["custom_properties.amount: minimum narrowed from >= 0 to > 0"],
    ),
    (
        "maximum lowered",
        obj(r={"type": "number", "maximum": 10}),
        obj(r={"type": "number", "maximum": 5}),
        ["custom_properties.r: maximum narrowed from <= 10 to <= 5"],
    ),
    (
        "exclusive maximum added",
        obj(r=NUMBER),
        obj(r={"type": "number", "exclusiveMaximum": 100}),
        ["custom_properties.r: maximum narrowed from none to < 100"],
    ),
    (
        "maxLength lowered",
        obj(s={"type": "string", "maxLength": 10}),
        obj(s={"type": "string", "maxLength": 5}),
        ["custom_properties.s: maxLength narrowed from 10 to 5"],
    ),
    (
        "maxLength added",
        obj(s=STRING),
        obj(s={"type": "string", "maxLength": 5}),
        ["custom_properties.s: maxLength 5 added"],
    ),
    (
        "minLength added",
        obj(s=STRING),
        obj(s={"type": "string", "minLength": 2}),
        ["custom_properties.s: minLength 2 added"],
    ),
    (
        "minItems raised",
        obj(t={"type": "array", "minItems": 1}),
        obj(t={"type": "array", "minItems": 2}),
        ["custom_properties.t: minItems narrowed from 1 to 2"],
    ),
    (
        "maxProperties added",
        obj(f={"type": "object"}),
        obj(f={"type": "object", "maxProperties": 3}),
        ["custom_properties.f: maxProperties 3 added"],
    ),
    (
        "multipleOf changed",
        obj(n={"multipleOf": 2}),
        obj(n={"multipleOf": 3}),
        ["custom_properties.n: multipleOf changed from 2 to 3"],
    ),
    (
        "multipleOf added",
        obj(n=NUMBER),
        obj(n={"type": "number", "multipleOf": 0.5}),
        ["custom_properties.n: multipleOf 0.5 added"],
    ),
    (
        "pattern added",
        obj(currency=STRING),
        obj(currency={"type": "string", "pattern": "^[A-Z]{3}$"}),
        ['custom_properties.currency: pattern "^[A-Z]{3}$" added'],
    ),
    (
        "pattern changed",
        obj(c={"type": "string", "pattern": "^[A-Z]+$"}),
        obj(c={"type": "string", "pattern": "^[A-Z]{3}$"}),
        ['custom_properties.c: pattern changed from "^[A-Z]+$" to "^[A-Z]{3}$"'],
    ),
    (
        "additional properties disallowed",
        obj(a=STRING),
        {**obj(a=STRING), "additionalProperties": False},
        ["custom_properties: additional properties no longer allowed"],
    ),
    (
        "additional properties typed",
        obj(a=STRING),
        {**obj(a=STRING), "additionalProperties": STRING},
        ["custom_properties.*: type changed from any to string"],
    ),
    (
        "nested object property changed",
        obj(address=obj(city=STRING, pin=STRING)),
        obj(address=obj(city=INTEGER)),
        [
            "custom_properties.address.city: type changed from string to integer",
            "custom_properties.address.pin: property removed",
        ],
    ),
    (
        "nested required added",
        obj(address=obj(city=STRING)),
        obj(address=obj(["city"], city=STRING)),
        ["custom_properties.address.city: newly required"],
    ),
    (
        "array item property removed",
        obj(items={"type": "array", "items": ITEM}),
        obj(items={"type": "array", "items": obj(product_id=STRING)}),
        ["custom_properties.items[].price: property removed"],
    ),
    (
        "array item type changed",
        obj(tags={"type": "array", "items": STRING}),
        obj(tags={"type": "array", "items": INTEGER}),
        ["custom_properties.tags[]: type changed from string to integer"],
    ),
    (
        "array items constrained",
        obj(tags={"type": "array"}),
        obj(tags={"type": "array", "items": STRING}),
        ["custom_properties.tags[]: type changed from any to string"],
    ),
    (
        "array items forbidden",
        obj(tags={"type": "array"}),
        obj(tags={"type": "array", "items": False}),
        ["custom_properties.tags[]: items no longer allowed"],
    ),
    (
        "uniqueItems added",
        obj(tags={"type": "array"}),
        obj(tags={"type": "array", "uniqueItems": True}),
        ["custom_properties.tags: uniqueItems added"],
    ),
    (
        "array became object",
        obj(items={"type": "array", "items": ITEM}),
        obj(items=ITEM),
        ["custom_properties.items: type changed from array to object"],
    ),
    (
        "oneOf added",
        obj(a={}),
        obj(a={"oneOf": [STRING, INTEGER]}),
        ["custom_properties.a: oneOf added; compatibility cannot be verified"],
    ),
    (
        "$ref changed",
        {**obj(a={"$ref": "#/$defs/x"}), "$defs": {"x": STRING, "y": STRING}},
        {**obj(a={"$ref": "#/$defs/y"}), "$defs": {"x": STRING, "y": STRING}},
        ["custom_properties.a: $ref changed; compatibility cannot be verified"],
    ),
    (
        "not added",
        obj(a=STRING),
        obj(a={"type": "string", "not": {"const": ""}}),
        ["custom_properties.a: not added; compatibility cannot be verified"],
    ),
    (
        "anyOf loses a branch",
        obj(a={"anyOf": [STRING, INTEGER]}),
        obj(a={"anyOf": [STRING]}),
        ["custom_properties.a: anyOf added or lost an alternative"],
    ),
    (
        "allOf gains a branch",
        obj(a={"allOf": [STRING]}),
        obj(a={"allOf": [STRING, {"minLength": 1}]}),
        ["custom_properties.a: allOf gained a constraint"],
    ),
    (
        "schema becomes false",
        obj(a=STRING),
        False,
        ["custom_properties: no longer accepts any value"],
    ),
    (
        "property becomes false",
        obj(a=STRING),
        obj(a=False),
        ["custom_properties.a: no longer accepts any value"],
    ),
    (
        "$defs definition removed",
        {**obj(), "$defs": {"money": NUMBER}},
        obj(),
        ["custom_properties/$defs/money: definition removed"],
    ),
    (
        "$defs definition narrowed",
        {**obj(), "$defs": {"money": NUMBER}},
        {**obj(), "$defs": {"money": INTEGER}},
        ["custom_properties/$defs/money: type changed from number to integer"],
    ),
    (
        "key that is not an identifier",
        {"type": "object", "properties": {"unit price": NUMBER}},
        obj(),
        ['custom_properties["unit price"]: property removed'],
    ),
    (
        "dependentRequired added",
        obj(a=STRING, b=STRING),
        {**obj(a=STRING, b=STRING), "dependentRequired": {"a": ["b"]}},
        ['custom_properties.a: now requires "b" when present'],
    ),
    (
        "propertyNames added",
        obj(f={"type": "object"}),
        obj(f={"type": "object", "propertyNames": {"maxLength": 8}}),
        ["custom_properties.f (property names): maxLength 8 added"],
    ),
    (
        "every reason is listed",
        obj(["a"], a=STRING, b=NUMBER, c=STRING),
        obj(["a", "d"], a=INTEGER, b={"type": "number", "minimum": 0}, d=STRING),
        [
            "custom_properties.a: type changed from string to integer",
            "custom_properties.b: minimum narrowed from none to >= 0",
            "custom_properties.c: property removed",
            "custom_properties.d: newly required",
        ],
    ),
]


@pytest.mark.parametrize(
    ("old", "new"), [c[1:] for c in COMPATIBLE], ids=[c[0] for c in COMPATIBLE]
)
def test_compatible_changes_have_no_reasons(old: Any, new: Any) -> None:
    assert check_backward_compatible(old, new) == []


@pytest.mark.parametrize(
    ("old", "new", "reasons"), [c[1:] for c in INCOMPATIBLE], ids=[c[0] for c in INCOMPATIBLE]
)
def test_incompatible_changes_name_each_property(old: Any, new: Any, reasons: list[str]) -> None:
    assert check_backward_compatible(old, new) == reasons


@pytest.mark.parametrize(
    ("old", "new"),
    [c[1:] for c in COMPATIBLE] + [c[1:3] for c in INCOMPATIBLE],
    ids=[c[0] for c in COMPATIBLE] + [c[0] for c in INCOMPATIBLE],
)
def test_inputs_are_not_modified(old: Any, new: Any) -> None:
    old_copy, new_copy = copy.deepcopy(old), copy.deepcopy(new)
    check_backward_compatible(old, new)
    assert (old, new) == (old_copy, new_copy)


def test_root_name_is_configurable() -> None:
    reasons = check_backward_compatible(obj(a=STRING), obj(), root="traits")
    assert reasons == ["traits.a: property removed"]


def test_type_change_hides_finer_differences_below_it() -> None:
    old = obj(a={"type": "string", "maxLength": 10})
    new = obj(a={"type": "integer", "maximum": 3})
    assert check_backward_compatible(old, new) == [
        "custom_properties.a: type changed from string to integer"
    ]


def test_very_deep_schemas_are_refused_not_recursed_forever() -> None:
    def nest(depth: int, leaf: dict[str, Any]) -> dict[str, Any]:
        schema = leaf
        for _ in range(depth):
            schema = obj(x=schema)
        return schema

    reasons = check_backward_compatible(nest(200, STRING), nest(200, INTEGER))
    assert len(reasons) == 1
    assert reasons[0].endswith(": nested too deeply to compare")
    assert reasons[0].startswith("custom_properties.x.x.")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("amount", "custom_properties.amount"),
        ("_private1", "custom_properties._private1"),
        (0, "custom_properties[0]"),
        ("unit price", 'custom_properties["unit price"]'),
        ("a.b", 'custom_properties["a.b"]'),
        ('say "hi"', 'custom_properties["say \\"hi\\""]'),
        ("1st", 'custom_properties["1st"]'),
    ],
)
def test_join_path(key: str | int, expected: str) -> None:
    assert join_path("custom_properties", key) == expected
