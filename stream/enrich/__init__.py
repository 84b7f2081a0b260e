"""Event enrichment: IP address → location, user agent → device.

- :class:`GeoLocator` reads MaxMind or DB-IP ``.mmdb`` files, with an ``iptocc`` country-only
  fallback. :mod:`stream.enrich.fetch` downloads DB-IP City Lite at set-up (never committed);
  it is not imported here so that ``python -m stream.enrich.fetch`` runs cleanly and the
  streaming path never imports ``subprocess``.
- :class:`DeviceParser` wraps ua-parser 1.0 and adds device type and native-app handling.

Both are pure lookups with bounded caches: nothing opens a connection, and the only I/O is
mapping the ``.mmdb`` files named by the caller.
"""

from stream.enrich.device import Device, DeviceParser
from stream.enrich.geo import DBIP_ATTRIBUTION, Attribution, Geo, GeoLocator

__all__ = [
    "DBIP_ATTRIBUTION",
    "Attribution",
    "Device",
    "DeviceParser",
    "Geo",
    "GeoLocator",
]
