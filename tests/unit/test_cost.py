"""The static cost limit (``resolvers.cost``): pages multiply what they select, connections
count their page once, and an operation over the limit is refused before it runs."""

from __future__ import annotations

from graphql import GraphQLError, parse, validate

from resolvers.cost import cost_rule
from resolvers.schema import build_schema

SCHEMA = build_schema()._schema


def errors(query: str, max_cost: int = 250_000) -> list[GraphQLError]:
    return validate(SCHEMA, parse(query), [cost_rule(max_cost, 10_000)])


def cost(query: str) -> int:
    found = errors(query, max_cost=0)
    assert len(found) == 1, found
    extensions = found[0].extensions or {}
    return int(extensions["cost"])


def test_pages_multiply_and_connections_count_their_page_once() -> None:
    assert cost("{ pipelineStatus { pendingEvents } }") == 2
    one = cost('{ sessions(first: 1) { edges { node { id } } } }')
    ten = cost('{ sessions(first: 10) { edges { node { id } } } }')
    assert (one, ten) == (1 + 1 * (1 + 1 * (1 + 1)), 1 + 10 * 3)
    nested = cost('{ sessions(first: 10) { edges { node { events { eventName } } } } }')
    assert nested == 1 + 10 * (1 + (1 + (1 + 20 * 1)))  # a session's events: 20 assumed
    assert cost("query($n: Int!) { sessions(first: $n) { totalCount } }") == 1 + 10_000


def test_a_full_segment_page_passes_and_every_event_of_10000_sessions_does_not() -> None:
    page = """{ segment(filter: {city: "Pune"}, first: 10000) { edges { node { userId city
        state country postalCode lat long deviceType os email phone } } } }"""
    assert errors(page) == []
    heavy = """query Heavy { sessions(first: 10000) { edges { node { id events { eventName
        time url properties city } } } } }"""
    (error,) = errors(heavy)
    assert error.message.startswith("Heavy may cost 1,")
    assert "(the limit is 250,000)" in error.message
    assert (error.extensions or {})["code"] == "BAD_USER_INPUT"


def test_fragments_count_where_they_are_spread() -> None:
    direct = cost('{ sessions(first: 5) { edges { node { id events { eventName } } } } }')
    spread = cost("""{ sessions(first: 5) { edges { node { ...S } } } }
        fragment S on Session { id events { eventName } }""")
    assert spread == direct


def test_trends_count_breakdown_limit_series() -> None:
    default = cost('{ trends(series: [{event: "A"}], breakdown: "os") { series { name total '
                   'values } } }')
    wide = cost('{ trends(series: [{event: "A"}], breakdownLimit: 100) { buckets series { '
                'name total values } } }')
    # trends(page) { series (counted once) { 3 fields } }: values are scalars
    assert (default, wide) == (1 + 10 * (1 + 3), 1 + 100 * (1 + 1 + 3))
