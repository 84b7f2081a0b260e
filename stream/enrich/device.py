"""User agent → device type, OS, browser and model, via ua-parser 1.0.

The regexes are uap-core's (``ua-parser-builtins``), run by the Rust ``regex`` resolver from
``ua-parser-rs`` when installed (≈70 k new agents/s) and by ua-parser's pure-Python resolver
otherwise. The *final* :class:`Device` is cached per user-agent string in an LRU, so the
rules in :mod:`.device_rules` run once per distinct agent and a repeat costs one dict probe;
ua-parser's own ``CachingResolver`` would only hold a second copy of the same work.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Final

import ua_parser
from ua_parser import Domain, Resolver, Result

from stream.enrich import device_rules

__all__ = ["MAX_USER_AGENT_LENGTH", "Device", "DeviceParser"]

MAX_USER_AGENT_LENGTH: Final = 1024
"""Longer agents are cut before parsing and caching: bounds regex time and cache memory.
Real agents, even in-app webviews with every token, stay under ~500 characters."""


@dataclass(frozen=True, slots=True)
class Device:
    """What a user agent says about the client. Unknown parts are ``""``.

    ``device_type`` is one of ``"mobile"``, ``"tablet"``, ``"desktop"``, ``"bot"``,
    ``"other"`` (TVs, consoles, HTTP libraries such as ``okhttp``), or ``""`` when the agent
    is missing or unrecognisable. ``os`` uses uap-core family names (``"iOS"``, ``"Android"``,
    ``"Windows"``, ``"Mac OS X"``, ``"Linux"``, ``"Chrome OS"``); versions are dotted
    (``"17.4"``). ``browser`` is the browser family (``"Chrome Mobile"``, ``"Mobile Safari"``)
    or, for native apps, the app's product name (``"MoreRetail"``).
    """

    device_type: str = ""
    os: str = ""
    os_version: str = ""
    browser: str = ""
    browser_version: str = ""
    device_model: str = ""


EMPTY_DEVICE: Final = Device()


@functools.cache
def _default_resolver() -> Resolver:
    # Same choice ua-parser makes for its global parser: lazy matchers when a compiled
    # resolver (Rust regex / re2) does the matching, eager Python regexes otherwise.
    if ua_parser.BestAvailableResolver is ua_parser.BasicResolver:
        return ua_parser.BasicResolver(ua_parser.load_builtins())
    return ua_parser.BestAvailableResolver(ua_parser.load_lazy_builtins())


class DeviceParser:
    """Parses user agents into :class:`Device` values; never raises.

    The uap-core regex set is compiled once per process (≈0.2 s, on first use) and shared by
    every parser; ``resolver`` overrides it (any ua-parser ``Resolver``). Results are kept in
    an LRU cache of ``cache_size`` distinct agents. Thread-safe and picklable (a copy rebuilds
    its cache), so a PyFlink function can carry one.
    """

    def __init__(self, *, cache_size: int = 16_384, resolver: Resolver | None = None) -> None:
        self._cache_size = cache_size
        self._resolver = resolver
        self._cached = functools.lru_cache(maxsize=cache_size)(self._parse_uncached)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._cache_size, self._resolver))

    def cache_info(self) -> functools._CacheInfo:
        """Hits, misses and size of the result cache."""
        return self._cached.cache_info()

    def parse(self, user_agent: str | None) -> Device:
        """Describe the client behind ``user_agent``; ``Device()`` for ``None``/empty."""
        if not user_agent or type(user_agent) is not str:
            return EMPTY_DEVICE
        if len(user_agent) > MAX_USER_AGENT_LENGTH:
            user_agent = user_agent[:MAX_USER_AGENT_LENGTH]
        return self._cached(user_agent)

    def _parse_uncached(self, user_agent: str) -> Device:
        ua = user_agent.strip()
        if not ua:
            return EMPTY_DEVICE
        try:
            resolver = self._resolver or _default_resolver()
            result = resolver(ua, Domain.ALL).complete()
            return _describe(result, ua)
        except Exception:  # noqa: BLE001 - a parser bug must not drop the event
            return EMPTY_DEVICE


def _describe(result: Result, ua: str) -> Device:
    os, os_version = device_rules.operating_system(result)
    browser, browser_version = device_rules.browser(result, ua)
    kind = device_rules.device_type(result, ua)
    if not kind and browser:  # an app or library ua-parser doesn't know: "node-fetch/1.0"
        kind = device_rules.OTHER
    return Device(
        device_type=kind,
        os=os,
        os_version=os_version,
        browser=browser,
        browser_version=browser_version,
        device_model=device_rules.device_model(result),
    )


def _rebuild(cache_size: int, resolver: Resolver | None) -> DeviceParser:
    return DeviceParser(cache_size=cache_size, resolver=resolver)
