"""Backward compatibility between two versions of an event's ``custom_properties`` schema.

"Backward compatible" means every payload the old schema accepted, the new one accepts too,
so producers still sending the old shape keep working. The check is structural and
conservative: it understands the keywords that event schemas use (types, properties,
required, enums, numeric / length / count bounds, patterns, items, additional properties,
``allOf`` / ``anyOf``) and refuses any other assertion keyword (``oneOf``, ``not``,
``if``, ``$ref``…) that was added or changed, because it cannot prove those safe.
Annotations (``description``, ``title``, ``examples``, ``default``, ``format``…) never
matter: 2020-12 treats ``format`` as an annotation and the registry does not assert it.

One deliberate exception to "accepts everything it accepted": declaring a new *optional*
property is allowed even when the old schema left undeclared properties open, as every
schema registry does; otherwise no schema could ever grow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any, TypeGuard

import orjson

ROOT = "custom_properties"

# Compared by equality only: adding one, or changing it, is refused.
_OPAQUE_KEYWORDS = (
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentSchemas",
    "contains",
    "minContains",
    "maxContains",
    "prefixItems",
    "patternProperties",
    "unevaluatedItems",
    "unevaluatedProperties",
    "$ref",
    "$dynamicRef",
    "$id",
    "$anchor",
    "$dynamicAnchor",
)
_MAX_DEPTH = 64
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def join_path(path: str, key: str | int) -> str:
    """``custom_properties`` + ``items`` → ``custom_properties.items``; ``0`` → ``…[0]``.

    Keys that are not identifiers are quoted (``custom_properties["unit price"]``) so a
    path always reads back unambiguously.
    """
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}"
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{path}["{escaped}"]'


def check_backward_compatible(
    old_schema: Mapping[str, Any] | bool,
    new_schema: Mapping[str, Any] | bool,
    root: str = ROOT,
) -> list[str]:
    """Why ``new_schema`` is not backward compatible with ``old_schema``; empty when it is.

    Each reason is ``"<property path>: <what changed>"``, e.g.
    ``custom_properties.amount: type changed from number to string``. Array items are
    addressed as ``path[]``, additional properties as ``path.*``, ``$defs`` as
    ``path/$defs/name``. Pure: neither schema is modified.
    """
    reasons: list[str] = []
    _compare(old_schema, new_schema, root, reasons, 0)
    return reasons


def _compare(old: object, new: object, path: str, out: list[str], depth: int) -> None:
    if old is False or new is True or _json_equal(old, new):
        return
    if new is False:
        out.append(f"{path}: no longer accepts any value")
        return
    old_map = _as_mapping(old)
    new_map = _as_mapping(new)
    if old_map is None or new_map is None:
        out.append(f"{path}: schema is not a JSON object or boolean")
        return
    if depth >= _MAX_DEPTH:
        out.append(f"{path}: nested too deeply to compare")
        return
    if not _compare_types(old_map, new_map, path, out):
        return  # A type change makes every finer difference noise.
    _compare_values(old_map, new_map, path, out)
    _compare_bounds(old_map, new_map, path, out)
    _compare_strings(old_map, new_map, path, out)
    _compare_object(old_map, new_map, path, out, depth)
    _compare_array(old_map, new_map, path, out, depth)
    _compare_combinators(old_map, new_map, path, out)
    _compare_defs(old_map, new_map, path, out, depth)


def _as_mapping(schema: object) -> Mapping[str, Any] | None:
    if schema is True:
        return {}
    if isinstance(schema, Mapping):
        return schema
    return None


def _types(schema: Mapping[str, Any]) -> frozenset[str] | None:
    declared = schema.get("type")
    if declared is None:
        return None
    if isinstance(declared, str):
        return frozenset((declared,))
    return frozenset(t for t in declared if isinstance(t, str))


def _describe_types(types: frozenset[str] | None) -> str:
    if types is None:
        return "any"
    return " or ".join(sorted(types))


def _compare_types(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, out: list[str]
) -> bool:
    old_types, new_types = _types(old), _types(new)
    if new_types is None:
        return True
    lost = old_types is None or any(
        t not in new_types and not (t == "integer" and "number" in new_types) for t in old_types
    )
    if lost:
        out.append(
            f"{path}: type changed from {_describe_types(old_types)} "
            f"to {_describe_types(new_types)}"
        )
        return False
    return True


def _allowed_values(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    values = schema.get("enum")
    return list(values) if isinstance(values, list) else None


def _compare_values(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, out: list[str]
) -> None:
    new_values = _allowed_values(new)
    if new_values is None:
        return
    old_values = _allowed_values(old)
    if old_values is None:
        out.append(f"{path}: values restricted to {_render(new_values)}")
        return
    dropped = [v for v in old_values if not any(_json_equal(v, n) for n in new_values)]
    if dropped:
        out.append(f"{path}: enum narrowed, no longer allows {_render(dropped)}")


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bound(
    schema: Mapping[str, Any], inclusive: str, exclusive: str, pick_larger: bool
) -> tuple[float, bool] | None:
    """The tightest of ``inclusive`` / ``exclusive`` as ``(limit, is_exclusive)``."""
    candidates = [
        (schema[key], key == exclusive)
        for key in (inclusive, exclusive)
        if _is_number(schema.get(key))
    ]
    if not candidates:
        return None

    def tightness(candidate: tuple[float, bool]) -> tuple[float, bool]:
        limit, is_exclusive = candidate
        return (limit if pick_larger else -limit, is_exclusive)

    return max(candidates, key=tightness)


def _render_bound(bound: tuple[float, bool] | None, lower: bool) -> str:
    if bound is None:
        return "none"
    limit, is_exclusive = bound
    sign = (">" if lower else "<") + ("" if is_exclusive else "=")
    return f"{sign} {limit}"


def _compare_bounds(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, out: list[str]
) -> None:
    for lower, inclusive, exclusive in (
        (True, "minimum", "exclusiveMinimum"),
        (False, "maximum", "exclusiveMaximum"),
    ):
        old_bound = _bound(old, inclusive, exclusive, pick_larger=lower)
        new_bound = _bound(new, inclusive, exclusive, pick_larger=lower)
        if new_bound is None:
            continue
        narrowed = (
            old_bound is None
            or ((new_bound[0] > old_bound[0]) if lower else (new_bound[0] < old_bound[0]))
            or (new_bound[0] == old_bound[0] and new_bound[1] and not old_bound[1])
        )
        if narrowed:
            name = "minimum" if lower else "maximum"
            out.append(
                f"{path}: {name} narrowed from {_render_bound(old_bound, lower)} "
                f"to {_render_bound(new_bound, lower)}"
            )
    _compare_multiple_of(old, new, path, out)
    for keyword, is_minimum in (
        ("minLength", True),
        ("maxLength", False),
        ("minItems", True),
        ("maxItems", False),
        ("minProperties", True),
        ("maxProperties", False),
    ):
        _compare_count(old, new, keyword, is_minimum, path, out)


def _compare_multiple_of(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, out: list[str]
) -> None:
    new_step = new.get("multipleOf")
    if not _is_number(new_step) or new_step <= 0:
        return
    old_step = old.get("multipleOf")
    if not _is_number(old_step) or old_step <= 0:
        out.append(f"{path}: multipleOf {new_step} added")
        return
    # Exact decimal arithmetic: 0.1 must divide 0.3.
    if (Fraction(str(old_step)) / Fraction(str(new_step))).denominator != 1:
        out.append(f"{path}: multipleOf changed from {old_step} to {new_step}")


def _compare_count(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    keyword: str,
    is_minimum: bool,
    path: str,
    out: list[str],
) -> None:
    new_limit = new.get(keyword)
    if not _is_number(new_limit):
        return
    old_limit = old.get(keyword)
    if not _is_number(old_limit):
        if is_minimum and new_limit <= 0:
            return
        out.append(f"{path}: {keyword} {new_limit} added")
    elif (new_limit > old_limit) if is_minimum else (new_limit < old_limit):
        out.append(f"{path}: {keyword} narrowed from {old_limit} to {new_limit}")


def _compare_strings(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, out: list[str]
) -> None:
    new_pattern = new.get("pattern")
    if new_pattern is None or new_pattern == old.get("pattern"):
        return
    if "pattern" in old:
        out.append(
            f"{path}: pattern changed from {_render(old['pattern'])} to {_render(new_pattern)}"
        )
    else:
        out.append(f"{path}: pattern {_render(new_pattern)} added")


def _compare_object(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, out: list[str], depth: int
) -> None:
    old_properties = _mapping(old.get("properties"))
    new_properties = _mapping(new.get("properties"))
    for name, old_property in old_properties.items():
        child = join_path(path, name)
        if name not in new_properties:
            out.append(f"{child}: property removed")
        else:
            _compare(old_property, new_properties[name], child, out, depth + 1)

    old_required = set(_strings(old.get("required")))
    for name in _strings(new.get("required")):
        if name not in old_required:
            out.append(f"{join_path(path, name)}: newly required")
    _compare_dependent_required(old, new, path, out)

    if "additionalProperties" in new:
        old_extra = old.get("additionalProperties", True)
        new_extra = new["additionalProperties"]
        if new_extra is False and old_extra is not False:
            out.append(f"{path}: additional properties no longer allowed")
        else:
            _compare(old_extra, new_extra, f"{path}.*", out, depth + 1)
    if "propertyNames" in new:
        _compare(
            old.get("propertyNames", True),
            new["propertyNames"],
            f"{path} (property names)",
            out,
            depth + 1,
        )


def _compare_dependent_required(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, out: list[str]
) -> None:
    old_dependencies = _mapping(old.get("dependentRequired"))
    for name, needed in _mapping(new.get("dependentRequired")).items():
        already = set(_strings(old_dependencies.get(name)))
        added = [n for n in _strings(needed) if n not in already]
        if added:
            out.append(f"{join_path(path, name)}: now requires {_render(added)} when present")


def _compare_array(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, out: list[str], depth: int
) -> None:
    if "items" in new:
        old_items = old.get("items", True)
        if new["items"] is False and old_items is not False:
            out.append(f"{path}[]: items no longer allowed")
        else:
            _compare(old_items, new["items"], f"{path}[]", out, depth + 1)
    if new.get("uniqueItems") is True and old.get("uniqueItems") is not True:
        out.append(f"{path}: uniqueItems added")


def _compare_combinators(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, out: list[str]
) -> None:
    # allOf may lose branches (each branch only narrows); anyOf may gain them (each widens).
    old_all, new_all = _list(old.get("allOf")), _list(new.get("allOf"))
    if any(not _contains(old_all, branch) for branch in new_all):
        out.append(f"{path}: allOf gained a constraint")
    if "anyOf" in new:
        new_any = _list(new["anyOf"])
        if "anyOf" not in old or any(not _contains(new_any, b) for b in _list(old["anyOf"])):
            out.append(f"{path}: anyOf added or lost an alternative")
    for keyword in _OPAQUE_KEYWORDS:
        if keyword in new and not (keyword in old and _json_equal(old[keyword], new[keyword])):
            change = "changed" if keyword in old else "added"
            out.append(f"{path}: {keyword} {change}; compatibility cannot be verified")


def _compare_defs(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, out: list[str], depth: int
) -> None:
    new_defs = _mapping(new.get("$defs"))
    for name, old_def in _mapping(old.get("$defs")).items():
        where = f"{path}/$defs/{name}"
        if name not in new_defs:
            out.append(f"{where}: definition removed")
        else:
            _compare(old_def, new_defs[name], where, out, depth + 1)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else []


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _contains(schemas: Sequence[Any], schema: object) -> bool:
    return any(_json_equal(candidate, schema) for candidate in schemas)


def _json_equal(a: object, b: object) -> bool:
    """JSON equality: ``1 == 1.0`` but ``true != 1`` (Python's ``==`` conflates those).

    Iterative, so arbitrarily deep documents cannot exhaust the stack.
    """
    pending: list[tuple[object, object]] = [(a, b)]
    while pending:
        x, y = pending.pop()
        if not _equal_here(x, y, pending):
            return False
    return True


def _equal_here(x: object, y: object, pending: list[tuple[object, object]]) -> bool:
    """Compare one pair at its own level; queue a container's children on ``pending``."""
    if isinstance(x, bool) or isinstance(y, bool):
        return x is y
    if _is_number(x) and _is_number(y):
        return x == y
    if isinstance(x, Mapping) and isinstance(y, Mapping):
        if x.keys() != y.keys():
            return False
        pending.extend((x[k], y[k]) for k in x)
        return True
    if isinstance(x, list) and isinstance(y, list):
        if len(x) != len(y):
            return False
        pending.extend(zip(x, y, strict=True))
        return True
    return type(x) is type(y) and x == y


def _render(value: object) -> str:
    """JSON text of a value; a list's items comma-separated, for messages."""
    if isinstance(value, list):
        return ", ".join(_render(v) for v in value)
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # e.g. an integer beyond 64 bits
        return repr(value)
