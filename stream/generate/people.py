"""The simulated population: who the users are, their devices and how they behave.

Faker (seeded per locale) supplies names only, once per user; everything else comes
from the caller's ``random.Random`` so that a seed fixes the whole population.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field
from typing import Any

from faker import Faker

from stream.generate import agents, geo
from stream.generate.agents import Device

# Archetype -> (share of users, expected sessions per day). "weekly" shoppers come back
# on their own weekday; "churned" users stop after a few days.
ARCHETYPES: dict[str, tuple[float, float]] = {
    "power": (0.06, 1.7),
    "regular": (0.32, 0.55),
    "weekly": (0.22, 0.08),
    "casual": (0.25, 0.17),
    "churned": (0.15, 0.6),
}
NEW_USER_SHARE = 0.25  # installed the app during the window
VISITOR_SHARE = 0.05  # extra anonymous devices that never log in (no profile)
_AGE_BANDS = ((18, 24, 0.15), (25, 34, 0.35), (35, 44, 0.25), (45, 54, 0.14), (55, 72, 0.11))
_TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"
_NOT_EMAIL = re.compile(r"[^a-z0-9]")


@dataclass(slots=True)
class DeviceState:
    """A device and what changes on it while the simulation runs."""

    device: Device
    home_ip: str
    logged_in: bool
    installed: bool  # the app was installed before this session (apps only)
    anonymous: bool = False  # a visitor's device: never logs in
    signed_up: bool = True
    free_at: int = 0  # the earliest start of its next session (ms)


@dataclass(slots=True)
class Person:
    user_id: str | None  # None for anonymous visitors
    city: geo.City
    currency: str
    archetype: str
    rate: float  # expected sessions per day
    first_day: int  # first local day index with activity (new users start later)
    last_day: int  # last active day index (churned users stop early)
    shop_weekday: int  # 0 = Monday; weekly shoppers' day
    devices: list[DeviceState]
    traits: dict[str, Any] = field(default_factory=dict)
    orders: list[str] = field(default_factory=list)


_UUID4_MASK = ~((0xC000 << 48) | (0xF000 << 64)) & ((1 << 128) - 1)
_UUID4_BITS = (0x8000 << 48) | (4 << 76)


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng``: what ``uuid.UUID(int=..., version=4)`` gives,
    without its cost (this runs once per event)."""
    h = f"{(rng.getrandbits(128) & _UUID4_MASK) | _UUID4_BITS:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Population:
    """Builds people from one RNG and three seeded Faker locales."""

    def __init__(self, rng: random.Random, days: int) -> None:
        self._rng = rng
        self._days = days
        self._fakers: dict[str, Faker] = {}
        for country, locale in geo.COUNTRY_LOCALES.items():
            fake = Faker(locale)
            fake.seed_instance(rng.getrandbits(64))
            self._fakers[country] = fake
        self._countries = tuple(geo.COUNTRY_WEIGHTS)
        self._country_weights = tuple(geo.COUNTRY_WEIGHTS.values())
        self._archetypes = tuple(ARCHETYPES)
        self._archetype_weights = tuple(share for share, _ in ARCHETYPES.values())

    def user(self) -> Person:
        rng = self._rng
        country = rng.choices(self._countries, self._country_weights)[0]
        city = geo.pick_city(rng, country)
        archetype = rng.choices(self._archetypes, self._archetype_weights)[0]
        rate = ARCHETYPES[archetype][1] * rng.uniform(0.7, 1.3)
        new = rng.random() < NEW_USER_SHARE and self._days > 1
        first_day = rng.randrange(1, self._days) if new else 0
        last_day = self._days
        if archetype == "churned":
            last_day = first_day + max(1, int(rng.uniform(0.15, 0.6) * self._days))
        person = Person(
            user_id=new_uuid(rng),
            city=city,
            currency=geo.COUNTRY_CURRENCY[country],
            archetype=archetype,
            rate=rate,
            first_day=first_day,
            last_day=last_day,
            shop_weekday=rng.choice((5, 6, 6, 0, 4, 2)),
            devices=[],
        )
        count = rng.choices((1, 2, 3), (0.78, 0.18, 0.04))[0]
        for index in range(count):
            person.devices.append(self._device(person, new, index))
        person.traits = self._traits(person)
        return person

    def visitor(self) -> Person:
        """An anonymous device: browses, never signs in, has no profile."""
        rng = self._rng
        country = rng.choices(self._countries, self._country_weights)[0]
        city = geo.pick_city(rng, country)
        first_day = rng.randrange(self._days)
        person = Person(
            user_id=None,
            city=city,
            currency=geo.COUNTRY_CURRENCY[country],
            archetype="visitor",
            rate=rng.uniform(0.1, 0.4),
            first_day=first_day,
            last_day=min(self._days, first_day + rng.randrange(1, 5)),
            shop_weekday=0,
            devices=[],
        )
        state = self._device(person, True, 0)
        state.anonymous = True
        person.devices.append(state)
        return person

    def _device(self, person: Person, new_user: bool, index: int) -> DeviceState:
        rng = self._rng
        device = agents.new_device(rng, new_uuid(rng), person.city.country)
        # A second device joins later; new users' first device is installed in the window.
        fresh = new_user or index > 0
        return DeviceState(
            device=device,
            home_ip=geo.home_ip(rng, person.city),
            logged_in=not fresh and rng.random() > 0.22,
            installed=not fresh,
            signed_up=not new_user,
        )

    def _traits(self, person: Person) -> dict[str, Any]:
        rng = self._rng
        city = person.city
        fake = self._fakers[city.country]
        roll = rng.random()
        gender = "female" if roll < 0.51 else "male" if roll < 0.985 else "non_binary"
        first = fake.first_name_female() if gender == "female" else fake.first_name_male()
        last = fake.last_name()
        low, high, _ = rng.choices(_AGE_BANDS, [band[2] for band in _AGE_BANDS])[0]
        local = _NOT_EMAIL.sub("", first.lower()) + rng.choice((".", "_", ""))
        local += _NOT_EMAIL.sub("", last.lower())
        if rng.random() < 0.6:
            local += str(rng.randrange(1, 1000))
        phone = geo.phone_number(rng, city)
        traits: dict[str, Any] = {
            "name": f"{first} {last}",
            "first_name": first,
            "last_name": last,
            "email": f"{local}@{fake.free_email_domain()}",
            "phone": phone,
            "age": rng.randint(low, high),
            "gender": gender,
            "city": city.name,
            "state": city.state,
            "country": city.country,
            "postal_code": geo.postal_code(rng, city),
            "latitude": round(city.latitude + rng.uniform(-0.08, 0.08), 4),
            "longitude": round(city.longitude + rng.uniform(-0.08, 0.08), 4),
            "marketing_opt_in": rng.random() < 0.62,
        }
        if rng.random() < (0.85 if city.country == "IN" else 0.35):
            traits["whatsapp_number"] = phone
        app = next((s.device for s in person.devices if s.device.is_app), None)
        if app is not None and rng.random() < 0.8:
            traits["push_token"] = _push_token(rng, app.os)
        return traits


def _push_token(rng: random.Random, os: str) -> str:
    if os == "iOS":  # APNs device token: 32 bytes, hex
        return f"{rng.getrandbits(256):064x}"
    # FCM registration token: instance id, ':APA91b', then a long base64url body.
    head = "".join(rng.choices(_TOKEN_ALPHABET, k=22))
    body = "".join(rng.choices(_TOKEN_ALPHABET, k=134))
    return f"{head}:APA91b{body}"
