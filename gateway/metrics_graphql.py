"""GraphQL metrics: each operation's latency by name, and the subscriptions running now.

Operation names are chosen by clients, so they are bounded before they become labels
(``OperationNames``). A subscription's "latency" would be its lifetime, so subscriptions
count in the active-subscriptions gauge instead of the latency histogram.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from gateway.metrics import Metrics

MAX_OPERATION_NAMES = 100
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")  # a GraphQL name, at most 64 characters


class OperationNames:
    """The label of an operation name: the first ``limit`` distinct valid names are their
    own label, any later one is ``other`` (so a client cannot grow the label set without
    bound); no name is ``anonymous``; a name on a request without a valid key is
    ``unauthenticated`` (only key holders claim names)."""

    def __init__(self, limit: int = MAX_OPERATION_NAMES) -> None:
        self._limit = limit
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def label(self, name: str | None, authenticated: bool = True) -> str:
        if not authenticated:
            return "unauthenticated"
        if not name:
            return "anonymous"
        if name in self._known:
            return name
        if not _NAME.fullmatch(name):  # a provided operationName can be any string
            return "other"
        with self._lock:
            if len(self._known) < self._limit:
                self._known.add(name)
                return name
        return "other"


def operation_metrics(metrics: Metrics, names: OperationNames | None = None
                      ) -> Callable[[], SchemaExtension]:
    """A factory of the schema extension (one instance per operation)."""
    bounded = names or OperationNames()
    return lambda: _OperationMetrics(metrics, bounded)


class _OperationMetrics(SchemaExtension):
    def __init__(self, metrics: Metrics, names: OperationNames) -> None:
        self._metrics = metrics
        self._names = names
        self._subscribed = False

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            if self._subscribed:
                self._metrics.subscriptions.dec()
            else:
                self._observe(time.perf_counter() - started)

    def on_execute(self) -> Iterator[None]:
        if self._type() == "subscription":
            self._subscribed = True
            self._metrics.subscriptions.inc()
        yield

    def _type(self) -> str:
        ctx = self.execution_context
        if ctx.graphql_document is None:
            return "invalid"  # not parsed: a syntax error, or no query at all
        try:
            kind = ctx.operation_type
        except Exception:  # noqa: BLE001 - an unknown operationName: refused by strawberry
            return "invalid"
        return {OperationType.QUERY: "query", OperationType.MUTATION: "mutation",
                OperationType.SUBSCRIPTION: "subscription"}.get(kind, "invalid")

    def _observe(self, seconds: float) -> None:
        ctx = self.execution_context
        project = getattr(ctx.context, "project", None)
        labels = (self._names.label(ctx.operation_name, project is not None), self._type())
        self._metrics.operation_seconds.labels(*labels).observe(seconds)
        errors: list[GraphQLError] | None = ctx.pre_execution_errors or (
            ctx.result.errors if ctx.result is not None else None)
        if errors:
            self._metrics.operation_errors.labels(*labels).inc()
