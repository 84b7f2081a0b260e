"""Property conditions ``{key, op, value}`` on one value: the one definition of how a value
matches, shared by the query runners (row by row over columns) and the stream operators
(campaign triggers, event by event).

Numbers and numeric strings compare as numbers; ``gt``/``lt`` between two non-numeric
strings compare as text; any other mix is false. ``neq`` holds when the property is unset;
``contains`` is case-sensitive; ``in`` takes a list.
"""

from __future__ import annotations

import math
from typing import Any

OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "contains", "in", "is_set", "is_not_set")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _equal(actual: Any, operand: Any) -> bool:
    a, b = _number(actual), _number(operand)
    if a is not None and b is not None:
        return a == b
    return _text(actual) == _text(operand)


def value_matches(actual: Any, op: str, operand: Any) -> bool:
    """One filter on one value (``None`` = not set). Numbers, and strings that parse as
    numbers, compare numerically; other strings compare as text (``gt`` etc. only between
    two strings); ``neq`` holds for an unset value; ``contains`` is case-sensitive."""
    if op == "is_set":
        return actual is not None
    if op == "is_not_set":
        return actual is None
    if op == "neq":
        return actual is None or not _equal(actual, operand)
    if actual is None:
        return False
    if op == "eq":
        return _equal(actual, operand)
    if op == "in":
        return any(_equal(actual, o) for o in operand)
    if op == "contains":
        return _text(operand) in _text(actual)
    a, b = _number(actual), _number(operand)
    if a is None or b is None:
        if not (isinstance(actual, str) and isinstance(operand, str)):
            return False
        sign = (actual > operand) - (actual < operand)
    else:
        sign = (a > b) - (a < b)
    return {"gt": sign > 0, "gte": sign >= 0, "lt": sign < 0, "lte": sign <= 0}[op]
