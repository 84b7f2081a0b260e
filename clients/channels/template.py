"""Message templates: user traits dropped into text.

The syntax is the output tag of Liquid (the template language of Shopify, Braze and
Customer.io), and only that::

    Hi {{ first_name }}, new offers in {{ city | default: "your city" }}!

- ``{{ name }}`` or a dotted ``{{ address.city }}`` looks the trait up in the profile;
  a missing trait, or None, renders as the empty string.
- ``| default: "text"`` (single or double quotes, or a number) is used when the trait is
  missing, None, false, "" or an empty list, as Liquid's ``default`` filter does.
- Values render as text: booleans as ``true``/``false``, lists joined with ``", "``.
- Nothing is HTML-escaped: bodies are plain text (SMS, WhatsApp, a plain-text email, a
  webhook's JSON string). A channel that sends HTML must escape traits itself.
- Anything else between ``{{ }}`` (other filters, expressions), Liquid's ``{% %}`` tags
  and an unclosed ``{{`` raise :class:`TemplateError` with the line and column, so a
  campaign is rejected when created rather than sending broken text later.

Why not a library: the mustache renderers (chevron, pystache) have no default filter;
jinja2 spells it ``default("there")`` and brings a whole expression language to sandbox;
python-liquid has exactly this syntax but pulls babel, pytz and python-dateutil and the
rest of Liquid (loops, assignments, date filters) that campaigns do not promise. This
grammar has two productions, executes nothing by construction and renders in one pass;
since it is a strict subset of Liquid, moving to python-liquid later keeps every
existing template's output for scalar traits."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_TAG = re.compile(r"\{\{(.*?)\}\}|\{%", re.DOTALL)
_EXPR = re.compile(
    r"""\s*(?P<path>[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\s*
        (?:\|\s*default\s*:\s*
           (?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<num>-?\d+(?:\.\d+)?))\s*)?""",
    re.VERBOSE)
_SUPPORTED = '{{ trait }} and {{ trait | default: "text" }}'


class TemplateError(ValueError):
    """A template outside the supported syntax; the message names line and column."""


@dataclass(frozen=True, slots=True)
class _Field:
    path: tuple[str, ...]
    default: str | None


_Part = str | _Field


def _position(template: str, index: int) -> str:
    line = template.count("\n", 0, index) + 1
    column = index - (template.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"


@lru_cache(maxsize=512)
def parse(template: str) -> tuple[_Part, ...]:
    """The template split into text and fields; raises :class:`TemplateError`. Cached, so
    rendering one campaign's template for many users parses it once."""
    parts: list[_Part] = []
    end = 0
    for match in _TAG.finditer(template):
        if match.group(0) == "{%":
            raise TemplateError(f"template: tags ({{% ... %}}) are not supported "
                                f"({_position(template, match.start())}); use {_SUPPORTED}")
        expr = _EXPR.fullmatch(match.group(1))
        if expr is None:
            raise TemplateError(f"template: unsupported expression {match.group(0)!r} "
                                f"({_position(template, match.start())}); use {_SUPPORTED}")
        parts.append(template[end:match.start()])
        default = next((g for g in expr.group("dq", "sq", "num") if g is not None), None)
        parts.append(_Field(tuple(expr.group("path").split(".")), default))
        end = match.end()
    unclosed = template.find("{{", end)
    if unclosed >= 0:
        raise TemplateError(f"template: '{{{{' is never closed "
                            f"({_position(template, unclosed)})")
    parts.append(template[end:])
    return tuple(p for p in parts if p != "")


def _lookup(profile: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = profile
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence | frozenset | set) and not isinstance(value, bytes):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _blank(value: Any) -> bool:
    return value is None or value is False or (
        isinstance(value, str | list | tuple | dict) and len(value) == 0)


def render(template: str, profile: Mapping[str, Any]) -> str:
    """``template`` with the profile's traits filled in (see the module doc for the
    syntax); raises :class:`TemplateError` on a template outside it."""
    out: list[str] = []
    for part in parse(template):
        if isinstance(part, str):
            out.append(part)
            continue
        value = _lookup(profile, part.path)
        out.append(part.default if part.default is not None and _blank(value)
                   else _text(value))
    return "".join(out)


def check_template(template: str) -> None:
    """Raises :class:`TemplateError` unless ``template`` renders (for validating input)."""
    parse(template)
