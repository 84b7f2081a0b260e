"""A rejection's reason as one of a few stable codes, for metrics and dashboards.

A reason is free text that names the field: ``"<field path>: <why>"``
(``stream.contract.envelope``, ``stream.contract.registry``). The path can hold names a client
chose — an unknown field, a property, a trait — so the text itself must never become a
metric label; ``reason_code`` maps it to one of ``REASON_CODES`` instead. A reason that fits
none of them (a new message nobody mapped yet) is ``other``, never its text.
"""

from __future__ import annotations

from typing import Final

from stream.contract.compat import ROOT as PROPERTIES

REASON_CODES: Final = (
    "too_large",           # the record is over the per-event byte limit
    "malformed",           # not a JSON object at all
    "missing_field",       # a required field (or both identities) is absent
    "unknown_field",       # a field the envelope does not know
    "wrong_type",          # a field of the wrong JSON type (nested traits included)
    "too_long",            # a string over its length limit (event name, insert id)
    "time_not_ms",         # a time before 2000-01-01: seconds, not milliseconds
    "time_in_future",      # beyond the allowed clock skew
    "time_too_old",        # older than the allowed event age
    "schema_violation",    # custom properties break the event's registered schema
    "unregistered_event",  # an unknown event name in a strict project
    "other",
)


def reason_code(reason: str) -> str:
    """The code of a rejection reason; ``other`` for a reason of no known kind."""
    where, _, why = reason.partition(": ")
    if where == "record":
        return "too_large" if why.endswith("-byte limit") else "malformed"
    if reason.endswith(": required field is missing") or why.startswith("one of distinct_"):
        return "missing_field"
    if reason.endswith(": unknown field"):  # the field's name may hold anything, ": " too
        return "unknown_field"
    if why.startswith(("expected ", "nested objects and arrays")):
        return "wrong_type"  # msgspec's type errors read "expected `str`, got `int`"
    if why.startswith("longer than"):
        return "too_long"
    if where == "time":
        if "future" in why:
            return "time_in_future"
        if "older than" in why:
            return "time_too_old"
        if "not unix milliseconds" in why:
            return "time_not_ms"
    if where == "event_name" and why.endswith("strict mode"):
        return "unregistered_event"
    if where == PROPERTIES or where.startswith((PROPERTIES + ".", PROPERTIES + "[")):
        return "schema_violation"
    return "other"
