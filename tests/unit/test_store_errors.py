"""A store that cannot be reached is told as ``UNAVAILABLE`` naming it; any other
unexpected error stays masked."""

from __future__ import annotations

import redis
from cassandra.cluster import NoHostAvailable
from cassandra.protocol import SyntaxException
from graphql import GraphQLError
from neo4j.exceptions import CypherSyntaxError, ServiceUnavailable

from resolvers.errors import unavailable_store
from resolvers.schema import StoreAwareMaskErrors


def test_unreachable_stores_are_named_and_statement_errors_are_not() -> None:
    assert unavailable_store(NoHostAvailable("no host", {})) == "Cassandra"
    assert unavailable_store(ServiceUnavailable("down")) == "Neo4j"
    assert unavailable_store(redis.exceptions.ConnectionError("refused")) == "Redis"
    assert unavailable_store(SyntaxException(0x2000, "bad cql", {})) is None
    assert unavailable_store(CypherSyntaxError("bad cypher")) is None
    assert unavailable_store(ValueError("x")) is None
    wrapped = RuntimeError("while reading the graph")
    wrapped.__cause__ = ServiceUnavailable("down")
    assert unavailable_store(wrapped) == "Neo4j", "found through the cause"


def test_masking_says_unavailable_for_a_store_and_hides_the_rest() -> None:
    mask = StoreAwareMaskErrors(error_message="Internal error")
    down = mask.anonymise_error(GraphQLError("boom", original_error=NoHostAvailable("x", {})))
    assert down.message == "Cassandra is unavailable; try again shortly"
    assert down.extensions == {"code": "UNAVAILABLE", "store": "Cassandra"}
    other = mask.anonymise_error(GraphQLError("secret detail",
                                              original_error=KeyError("secret detail")))
    assert other.message == "Internal error"
    assert not other.extensions
