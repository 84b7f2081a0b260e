"""Enrichment: geo from the IP, device and OS from the user agent.

Unknown inputs give default values, never an error. Results are cached per (ip, user
agent) pair because real traffic repeats both heavily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Enrichment:
    """What enrichment adds to an event or session (empty strings / None when unknown)."""

    city: str = ""
    state: str = ""
    country: str = ""
    postal_code: str = ""
    lat: float | None = None
    long: float | None = None
    device_type: str = ""
    os: str = ""
    os_version: str = ""
    browser: str = ""


class GeoLookup(Protocol):
    def lookup(self, ip: str | None) -> object: ...


class DeviceLookup(Protocol):
    def parse(self, user_agent: str | None) -> object: ...


class Enricher:
    def __init__(self, geo: GeoLookup | None, device: DeviceLookup | None,
                 cache_size: int = 100_000) -> None:
        self._geo = geo
        self._device = device
        self._cache: dict[tuple[str | None, str | None], Enrichment] = {}
        self._cache_size = cache_size

    def enrich(self, ip: str | None, user_agent: str | None) -> Enrichment:
        key = (ip, user_agent)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        value = self._compute(ip, user_agent)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[key] = value
        return value

    def _compute(self, ip: str | None, user_agent: str | None) -> Enrichment:
        geo = self._geo.lookup(ip) if self._geo is not None and ip else None
        dev = self._device.parse(user_agent) if self._device is not None and user_agent else None
        return Enrichment(
            city=getattr(geo, "city", "") or "",
            state=getattr(geo, "state", "") or "",
            country=getattr(geo, "country", "") or "",
            postal_code=getattr(geo, "postal_code", "") or "",
            lat=getattr(geo, "lat", None),
            long=getattr(geo, "long", None),
            device_type=getattr(dev, "device_type", "") or "",
            os=getattr(dev, "os", "") or "",
            os_version=getattr(dev, "os_version", "") or "",
            browser=getattr(dev, "browser", "") or "",
        )
