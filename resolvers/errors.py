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
