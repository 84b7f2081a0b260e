"""Operations generated from the schema itself, so a test covers every root field — including
fields added later — without listing them.

For a root field: its required arguments (and the optional ones that name something: a user,
a session, an event, a campaign, a segment, a key) get values by type and name; ``window``
is always the last 30 days; every field of the result is selected to a depth, except fields
that need arguments of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
    get_named_type,
)

# arguments and input fields aimed at another project's data, by name
TARGETS = ("userId", "sessionId", "id", "campaignId", "target", "start", "startEvent",
           "returnEvent", "fromEvent", "toEvent", "savedSegment", "name", "prefix", "event",
           "breakdown")
INTS = {"first": 5, "top": 5, "periods": 3, "maxLength": 4, "intervalSeconds": 1,
        "minPurchases": 1, "step": 0, "retentionDays": 7, "minCount": 1, "maxDepth": 4,
        "maxLinks": 20, "minSessions": 1}


@dataclass
class Values:
    """``strings[name]`` for a string argument or input field named ``name``, else
    ``default``; ``overrides[name]`` wins for any argument."""

    strings: Mapping[str, str]
    default: str
    overrides: Mapping[str, Callable[[], Any]] = field(default_factory=dict)
    every_field: bool = False  # optional arguments and input fields too (injection)

    def of(self, name: str, type_: GraphQLInputType) -> Any:
        if name in self.overrides:
            return self.overrides[name]()
        if isinstance(type_, GraphQLNonNull):
            return self.of(name, type_.of_type)
        if isinstance(type_, GraphQLList):
            return [self.of(name, type_.of_type)]
        if isinstance(type_, GraphQLEnumType):
            return next(iter(type_.values))
        if isinstance(type_, GraphQLInputObjectType):
            if type_.name == "TimeWindow":
                return {"last": "30d"}
            return {n: self.of(n, f.type) for n, f in type_.fields.items()
                    if self.every_field or wanted(n, f.type, f.default_value)}
        assert isinstance(type_, GraphQLScalarType)
        if type_.name in ("String", "ID"):
            return self.strings.get(name, self.default)
        if type_.name == "Int":
            return INTS.get(name, 3)
        if type_.name == "Float":
            return 1.0
        if type_.name == "Boolean":
            return False
        return {}  # JSON


def wanted(name: str, type_: Any, default: Any) -> bool:
    """Required (non-null without a default), a time window, or a name that targets data."""
    named = get_named_type(type_)
    if isinstance(type_, GraphQLNonNull) and default is Undefined:
        return True
    return named.name == "TimeWindow" or (name in TARGETS and named.name in ("String", "ID"))


def selection(type_: Any, depth: int) -> str:
    named = get_named_type(type_)
    if not isinstance(named, GraphQLObjectType):
        return ""
    parts = []
    for name, f in named.fields.items():
        if any(isinstance(a.type, GraphQLNonNull) and a.default_value is Undefined
               for a in f.args.values()):
            continue
        inner = get_named_type(f.type)
        if isinstance(inner, GraphQLObjectType):
            if depth > 1:
                sub = selection(inner, depth - 1)
                if sub:
                    parts.append(f"{name} {sub}")
        else:
            parts.append(name)
    return "{ " + " ".join(parts) + " }" if parts else ""


@dataclass(frozen=True)
class Operation:
    kind: str  # query | mutation | subscription
    field: str
    document: str
    variables: dict[str, Any]


def operation(kind: str, name: str, f: GraphQLField, values: Values, depth: int = 5
              ) -> Operation:
    declared, passed, variables = [], [], {}
    for arg, a in f.args.items():
        if not (values.every_field or wanted(arg, a.type, a.default_value)
                or arg in values.overrides):
            continue
        declared.append(f"${arg}: {a.type}")
        passed.append(f"{arg}: ${arg}")
        variables[arg] = values.of(arg, a.type)
    head = f"{kind}({', '.join(declared)})" if declared else kind
    call = f"{name}({', '.join(passed)})" if passed else name
    return Operation(kind, name, f"{head} {{ {call} {selection(f.type, depth)} }}", variables)


def operations(schema: GraphQLSchema, kind: str, values: Values, depth: int = 5
               ) -> Iterator[Operation]:
    root = {"query": schema.query_type, "mutation": schema.mutation_type,
            "subscription": schema.subscription_type}[kind]
    assert root is not None
    for name, f in root.fields.items():
        yield operation(kind, name, f, values, depth)


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside a JSON value (keys too)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)
