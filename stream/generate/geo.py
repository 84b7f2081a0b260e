"""Where the demo users live, and the public IP addresses their devices use.

Every network below is a real allocation of a well-known ISP or mobile carrier, picked
so that a geo-IP database places it in the city it is listed under: each block was
checked /24 by /24 against DB-IP City Lite (June 2026) and ``iptocc``. Hosts are drawn
inside the blocks (never the network or broadcast address); nothing here is private,
reserved or CGNAT space. Mobile carriers egress through regional gateways, so a phone
on cellular data may be placed in the carrier's hub city (Sunnyvale for San Jose).

Local time uses the cities' civil rules (US and UK daylight saving, India none) so that
evening peaks land in the evening all year.
"""

from __future__ import annotations

import functools
import ipaddress
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_HOUR_MS = 3_600_000
_UK_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # letters used in the inward part of a UK postcode


@dataclass(frozen=True, slots=True)
class City:
    name: str
    state: str
    country: str  # ISO 3166-1 alpha-2
    latitude: float
    longitude: float
    utc_offset_minutes: int  # standard time
    dst: str  # "us" | "eu" | ""
    postal_prefixes: tuple[str, ...]
    fixed_networks: tuple[str, ...]  # home broadband
    mobile_networks: tuple[str, ...]  # cellular data; empty: the city's phones use Wi-Fi
    weight: float  # share of the country's users


CITIES: tuple[City, ...] = (
    # United States. Fixed: Verizon Fios (108.x, 71.x), Spectrum (66.108.x, 70.112.x),
    # Comcast Xfinity (73.x, 67.x, 98.x), Google Fiber (136.x).
    # Mobile: Verizon Wireless (174.192.0.0/10), AT&T Mobility (166.128.0.0/9),
    # T-Mobile (172.32.0.0/11).
    City("New York", "New York", "US", 40.7128, -74.006, -300, "us",
         ("100", "101", "102", "112", "113"),
         ("108.10.64.0/20", "71.167.64.0/20", "66.108.16.0/20"),
         ("174.192.80.0/20", "166.129.16.0/20"), 0.24),
    City("Chicago", "Illinois", "US", 41.8781, -87.6298, -360, "us",
         ("606", "607"),
         ("67.184.32.0/20", "73.67.32.0/21"),
         ("172.32.0.0/20", "166.139.32.0/20"), 0.14),
    City("Seattle", "Washington", "US", 47.6062, -122.3321, -480, "us",
         ("981",),
         ("98.203.240.0/20", "67.185.112.0/20", "73.109.128.0/20"),
         ("174.204.80.0/20",), 0.1),
    City("Austin", "Texas", "US", 30.2672, -97.7431, -360, "us",
         ("787",),
         ("70.113.16.0/20", "136.40.96.0/20"),
         (), 0.1),
    City("San Jose", "California", "US", 37.3387, -121.8853, -480, "us",
         ("951",),
         ("98.210.64.0/20", "73.70.72.0/21"),
         ("174.194.144.0/20", "166.139.96.0/20"), 0.12),
    City("Boston", "Massachusetts", "US", 42.3601, -71.0589, -300, "us",
         ("021", "022"),
         ("73.60.16.0/20", "108.7.144.0/20"),
         ("174.200.64.0/22",), 0.1),
    City("Atlanta", "Georgia", "US", 33.749, -84.388, -300, "us",
         ("303",),
         ("73.106.224.0/20", "136.40.128.0/20"),
         ("174.195.16.0/20", "166.147.112.0/21"), 0.1),
    City("Houston", "Texas", "US", 29.7604, -95.3698, -360, "us",
         ("770",),
         ("73.77.192.0/20", "98.194.176.0/20"),
         (), 0.1),
    # India. Fixed: Airtel broadband (122.16x, 182.64.0.0/12), BSNL (117.192.0.0/10),
    # ACT Fibernet (106.51.0.0/16, 49.204.0.0/14).
    # Mobile: Jio (49.32.0.0/11), Airtel (106.192.0.0/11),
    # Vodafone Idea (42.104.0.0/13, 1.38.0.0/15).
    City("Mumbai", "Maharashtra", "IN", 19.076, 72.8777, 330, "",
         ("400",),
         ("117.232.112.0/20",),
         ("49.32.64.0/20", "106.195.128.0/20", "42.106.48.0/20"), 0.24),
    City("Bengaluru", "Karnataka", "IN", 12.9716, 77.5946, 330, "",
         ("560",),
         ("106.51.224.0/20", "122.166.0.0/20", "117.193.128.0/20"),
         ("106.196.128.0/20",), 0.22),
    City("New Delhi", "Delhi", "IN", 28.6139, 77.209, 330, "",
         ("110",),
         ("182.64.128.0/20", "122.162.16.0/20"),
         ("106.199.16.0/20", "42.104.0.0/20"), 0.2),
    City("Hyderabad", "Telangana", "IN", 17.385, 78.4867, 330, "",
         ("500",),
         ("49.205.48.0/20",),
         ("42.105.16.0/20", "1.39.0.0/20"), 0.14),
    City("Chennai", "Tamil Nadu", "IN", 13.0827, 80.2707, 330, "",
         ("600",),
         ("122.164.0.0/20",),
         ("106.197.128.0/20",), 0.1),
    City("Pune", "Maharashtra", "IN", 18.5204, 73.8567, 330, "",
         ("411",),
         ("117.228.48.0/20",),
         ("106.220.244.0/22",), 0.1),
    # United Kingdom. Fixed: BT (86.128.0.0/10, 81.128.0.0/11), Sky (90.192.0.0/11),
    # TalkTalk (92.0.0.0/11), Virgin Media (86.0.0.0/11).
    # Mobile: O2 (82.132.0.0/16), Three (92.40.0.0/13), Vodafone (148.252.0.0/16).
    City("London", "England", "GB", 51.5072, -0.1276, 0, "eu",
         ("E1", "E14", "N1", "N7", "NW3", "SE1", "SE15", "SW1A", "SW11", "W2", "W11", "WC1"),
         ("86.187.0.0/20", "81.130.0.0/20", "90.222.160.0/20", "86.0.104.0/21"),
         ("82.132.200.0/21", "92.41.0.0/20"), 0.45),
    City("Manchester", "England", "GB", 53.4808, -2.2426, 0, "eu",
         ("M1", "M4", "M14", "M20", "M21"),
         ("81.131.218.0/23", "90.199.174.0/23", "86.9.202.0/23"),
         ("148.252.192.0/22",), 0.17),
    City("Birmingham", "England", "GB", 52.4862, -1.8904, 0, "eu",
         ("B1", "B5", "B15", "B29"),
         ("81.131.54.0/23", "90.192.70.0/23", "92.17.240.0/23"),
         (), 0.13),
    City("Leeds", "England", "GB", 53.8008, -1.5491, 0, "eu",
         ("LS1", "LS6", "LS8", "LS17"),
         ("86.4.104.0/21", "86.7.40.0/21"),
         (), 0.09),
    City("Glasgow", "Scotland", "GB", 55.8642, -4.2518, 0, "eu",
         ("G1", "G3", "G12", "G41"),
         ("90.210.168.0/22", "86.22.4.0/23"),
         (), 0.09),
    City("Edinburgh", "Scotland", "GB", 55.9533, -3.1883, 0, "eu",
         ("EH1", "EH3", "EH6", "EH10"),
         ("81.154.174.0/23", "86.26.80.0/23", "86.26.194.0/23"),
         (), 0.07),
)  # fmt: skip

COUNTRY_LOCALES: dict[str, str] = {"US": "en_US", "IN": "en_IN", "GB": "en_GB"}
COUNTRY_CURRENCY: dict[str, str] = {"US": "USD", "IN": "INR", "GB": "GBP"}
COUNTRY_WEIGHTS: dict[str, float] = {"IN": 0.5, "US": 0.3, "GB": 0.2}
_DIAL_CODES: dict[str, str] = {"US": "+1", "IN": "+91", "GB": "+44"}
# Real area codes of each US city, so a phone number looks local.
_US_AREA_CODES: dict[str, tuple[str, ...]] = {
    "New York": ("212", "347", "646", "718", "917"),
    "Chicago": ("312", "773", "872"),
    "Seattle": ("206",),
    "Austin": ("512", "737"),
    "San Jose": ("408", "669"),
    "Boston": ("617", "857"),
    "Atlanta": ("404", "470", "678"),
    "Houston": ("281", "713", "832"),
}


def _parse(networks: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """(first usable host as int, number of usable hosts) per block."""
    out = []
    for text in networks:
        net = ipaddress.IPv4Network(text)
        out.append((int(net.network_address) + 1, net.num_addresses - 2))
    return tuple(out)


_FIXED = {city.name: _parse(city.fixed_networks) for city in CITIES}
_MOBILE = {city.name: _parse(city.mobile_networks) for city in CITIES}


def _host(rng: random.Random, blocks: tuple[tuple[int, int], ...]) -> str:
    first, count = rng.choice(blocks)
    return str(ipaddress.IPv4Address(first + rng.randrange(count)))


def home_ip(rng: random.Random, city: City) -> str:
    """An address of the city's home broadband (kept by a household for weeks)."""
    return _host(rng, _FIXED[city.name])


def cellular_ip(rng: random.Random, city: City) -> str | None:
    """A fresh carrier address for one session on cellular data, if the city has one."""
    blocks = _MOBILE[city.name]
    return _host(rng, blocks) if blocks else None


def pick_city(rng: random.Random, country: str) -> City:
    cities = [c for c in CITIES if c.country == country]
    return rng.choices(cities, [c.weight for c in cities])[0]


def postal_code(rng: random.Random, city: City) -> str:
    prefix = rng.choice(city.postal_prefixes)
    if city.country == "US":
        return f"{prefix}{rng.randrange(1, 100):02d}"
    if city.country == "IN":
        return f"{prefix}{rng.randrange(1, 100):03d}"
    return f"{prefix} {rng.randrange(10)}{rng.choice(_UK_LETTERS)}{rng.choice(_UK_LETTERS)}"


def phone_number(rng: random.Random, city: City) -> str:
    """An E.164 mobile number in the city's numbering plan."""
    if city.country == "US":
        area = rng.choice(_US_AREA_CODES.get(city.name, ("212",)))
        return f"+1{area}{rng.randrange(2, 10)}{rng.randrange(10**6):06d}"
    if city.country == "IN":
        return f"+91{rng.randrange(6, 10)}{rng.randrange(10**9):09d}"
    return f"{_DIAL_CODES[city.country]}7{rng.randrange(4, 10)}{rng.randrange(10**8):08d}"


def _nth_sunday(year: int, month: int, n: int) -> datetime:
    """The n-th Sunday of a month (n = -1: the last one), at midnight UTC."""
    if n > 0:
        first = datetime(year, month, 1, tzinfo=UTC)
        return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))
    nxt = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() + 1) % 7)


def utc_offset_ms(city: City, utc_ms: int) -> int:
    """The city's offset from UTC at an instant, daylight saving included."""
    base = city.utc_offset_minutes * 60_000
    if not city.dst:
        return base
    year = datetime.fromtimestamp(utc_ms / 1000, tz=UTC).year
    start, end = _summer_time(city.dst, base, year)
    return base + _HOUR_MS if start <= utc_ms < end else base


@functools.lru_cache(maxsize=64)
def _summer_time(rule: str, base: int, year: int) -> tuple[int, int]:
    """[start, end) of daylight saving in UTC ms for a rule, standard offset and year."""
    if rule == "us":  # 2:00 local, second Sunday of March to first Sunday of November
        start = _ms(_nth_sunday(year, 3, 2)) + 2 * _HOUR_MS - base
        end = _ms(_nth_sunday(year, 11, 1)) + 2 * _HOUR_MS - base - _HOUR_MS
    else:  # 1:00 UTC, last Sunday of March to last Sunday of October
        start = _ms(_nth_sunday(year, 3, -1)) + _HOUR_MS
        end = _ms(_nth_sunday(year, 10, -1)) + _HOUR_MS
    return start, end


def _ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000
