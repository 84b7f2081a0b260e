"""GraphQL errors with a stable ``extensions.code``; anything else is masked."""

from __future__ import annotations

from graphql import GraphQLError

CODES = ("BAD_USER_INPUT", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "UNAVAILABLE")


def api_error(code: str, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def bad_input(field: str, reason: str) -> GraphQLError:
    """A user error naming the argument path, e.g. ``window.last: unknown unit 'y'``."""
    return api_error("BAD_USER_INPUT", f"{field}: {reason}")


def is_public(error: GraphQLError) -> bool:
    original = error.original_error
    if isinstance(original, GraphQLError):
        error = original
    elif original is not None:
        return False
    return bool(error.extensions and error.extensions.get("code") in CODES) or (
        original is None)


# Exceptions that mean a store cannot be reached (not that a statement is wrong), by the
# module their class comes from: the clients are optional imports here.
_UNAVAILABLE = {
    "cassandra": ("NoHostAvailable", "OperationTimedOut", "Unavailable", "ReadTimeout",
                  "WriteTimeout", "ConnectionException", "ConnectionShutdown"),
    "neo4j": ("ServiceUnavailable", "SessionExpired", "DatabaseUnavailable"),
    "redis": ("ConnectionError", "TimeoutError", "BusyLoadingError"),
    "aiokafka": ("KafkaConnectionError", "KafkaTimeoutError"),
}
_STORE_NAMES = {"cassandra": "Cassandra", "neo4j": "Neo4j", "redis": "Redis",
                "aiokafka": "Kafka"}


def unavailable_store(exc: BaseException | None) -> str | None:
    """The store an exception says is unreachable ("Cassandra", …), or None."""
    seen = 0
    while exc is not None and seen < 5:
        for cls in type(exc).__mro__:
            package = cls.__module__.split(".", 1)[0]
            if cls.__name__ in _UNAVAILABLE.get(package, ()):
                return _STORE_NAMES[package]
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
