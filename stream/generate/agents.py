"""Curated, current (2025/2026) devices and user agents for the demo stream.

Faker's user agents describe browsers from years ago; these strings are what the
MoreRetail apps and today's browsers actually send, so ``ua-parser`` gives the device,
OS and browser an analyst would expect:

- iOS/iPadOS app: the Alamofire/URLSession default, ``MoreRetail/5.2.1 (iPhone; iOS 18.6;
  Scale/3.00)``.
- Android app: the system HTTP agent with the app's token appended,
  ``Dalvik/2.1.0 (Linux; U; Android 15; SM-S921B Build/AP3A.240905.015.A2) MoreRetail/5.2.1``.
- Safari 26 on iOS 26 freezes the OS token at ``iPhone OS 18_6``; Chrome on Android sends
  the reduced ``Android 10; K`` token; Samsung Internet still names the model; desktop
  Chrome and Edge report ``Windows NT 10.0`` also on Windows 11.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Newest first; the weights say how many devices still run each release.
APP_VERSIONS: tuple[str, ...] = ("5.2.1", "5.2.0", "5.1.4", "5.0.3")
APP_VERSION_WEIGHTS: tuple[float, ...] = (0.55, 0.25, 0.15, 0.05)

SOURCE_IOS = "ios-app"
SOURCE_ANDROID = "android-app"
SOURCE_WEB = "web"


@dataclass(frozen=True, slots=True)
class Device:
    """One physical device (or browser profile) of a user, fixed for the whole stream."""

    device_id: str
    device_type: str  # mobile | tablet | desktop
    os: str
    os_version: str
    model: str
    source_id: str  # ios-app | android-app | web
    app_version: str  # "" for the web
    user_agent: str
    browser: str  # "" for the native apps

    @property
    def is_app(self) -> bool:
        return self.source_id != SOURCE_WEB


# iPhones sold or still common in 2025/2026.
_IPHONES: tuple[str, ...] = (
    "iPhone 17 Pro",
    "iPhone 17",
    "iPhone Air",
    "iPhone 16 Pro",
    "iPhone 16",
    "iPhone 16e",
    "iPhone 15",
    "iPhone 14",
    "iPhone 13",
)
_IPADS: tuple[str, ...] = ("iPad Air (M3)", "iPad (A16)", "iPad Pro (M4)", "iPad mini (A17 Pro)")
_IOS_VERSIONS: tuple[str, ...] = ("26.1", "26.2", "26.3", "26.0.1", "18.7", "18.6.2")
_IOS_WEIGHTS: tuple[float, ...] = (0.2, 0.25, 0.2, 0.1, 0.15, 0.1)

# (model code, Android versions it runs, India-only?) — popular 2024-2026 phones.
_ANDROID_PHONES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("SM-S931B", ("15", "16"), False),  # Galaxy S25
    ("SM-S921B", ("15", "16"), False),  # Galaxy S24
    ("SM-A556E", ("15", "16"), True),  # Galaxy A55
    ("SM-A166P", ("15",), True),  # Galaxy A16 5G
    ("Pixel 10", ("16",), False),
    ("Pixel 9", ("15", "16"), False),
    ("Pixel 8a", ("15", "16"), False),
    ("CPH2653", ("15", "16"), False),  # OnePlus 13
    ("24117RN76I", ("15",), True),  # Redmi Note 14 5G
    ("V2405", ("15",), True),  # vivo V40
    ("RMX3990", ("15",), True),  # realme 13 Pro
)
_ANDROID_TABLETS: tuple[str, ...] = ("SM-X520", "SM-X216B", "Lenovo TB-J716F")
_ANDROID_BUILDS: dict[str, tuple[str, ...]] = {
    "15": ("AP4A.250205.002", "AP3A.240905.015.A2", "AP4A.250405.002"),
    "16": ("BP2A.250605.031", "BP3A.250905.014", "BP4A.251205.006"),
}
_CHROME_MAJORS: tuple[int, ...] = (141, 142, 143, 144, 145, 146)
_FIREFOX_MAJORS: tuple[int, ...] = (144, 145, 146, 147)
_SAFARI_MAC: tuple[str, ...] = ("26.1", "26.2", "26.0", "18.6")

_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64"
_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"


def _ios_app_agent(app: str, ios: str, tablet: bool) -> str:
    # Alamofire's default says "iOS" on iPads too, and names the family, not the model.
    kind = "iPad" if tablet else "iPhone"
    scale = "2.00" if tablet else "3.00"
    return f"MoreRetail/{app} ({kind}; iOS {ios}; Scale/{scale})"


def _android_app_agent(app: str, model: str, android: str, build: str) -> str:
    return f"Dalvik/2.1.0 (Linux; U; Android {android}; {model} Build/{build}) MoreRetail/{app}"


def _ios_safari_agent(ios: str) -> str:
    # Safari 26 freezes the OS token at 18_6; Safari 18 reports the real release.
    version = ".".join(ios.split(".")[:2])
    token = "18_6" if ios.startswith("26") else ios.replace(".", "_")
    return (
        f"Mozilla/5.0 (iPhone; CPU iPhone OS {token} like Mac OS X) AppleWebKit/605.1.15 "
        f"(KHTML, like Gecko) Version/{version} Mobile/15E148 Safari/604.1"
    )


def _android_chrome_agent(chrome: int) -> str:
    return (
        f"Mozilla/5.0 (Linux; Android 10; K) {_WEBKIT} Chrome/{chrome}.0.0.0 Mobile Safari/537.36"
    )


def _samsung_internet_agent(model: str, android: str) -> str:
    return (
        f"Mozilla/5.0 (Linux; Android {android}; {model}) {_WEBKIT} SamsungBrowser/28.0 "
        "Chrome/130.0.0.0 Mobile Safari/537.36"
    )


def _pick_ios(rng: random.Random) -> str:
    return rng.choices(_IOS_VERSIONS, _IOS_WEIGHTS)[0]


def _app_version(rng: random.Random) -> str:
    return rng.choices(APP_VERSIONS, APP_VERSION_WEIGHTS)[0]


def _android_phone(rng: random.Random, country: str) -> tuple[str, str, str]:
    choices = [p for p in _ANDROID_PHONES if country == "IN" or not p[2]]
    model, versions, _ = rng.choice(choices)
    android = rng.choice(versions)
    return model, android, rng.choice(_ANDROID_BUILDS[android])


# Platform mix per country: (iOS app, Android app, iPad app, Android tablet app,
# iOS Safari, Android Chrome, Samsung Internet, desktop web).
_MIX: dict[str, tuple[float, ...]] = {
    "IN": (0.10, 0.58, 0.01, 0.02, 0.02, 0.13, 0.04, 0.10),
    "US": (0.40, 0.20, 0.05, 0.01, 0.08, 0.06, 0.01, 0.19),
    "GB": (0.37, 0.22, 0.05, 0.02, 0.07, 0.07, 0.02, 0.18),
}
_PLATFORMS = tuple(range(8))


def new_device(rng: random.Random, device_id: str, country: str) -> Device:
    """Draw a device a user of ``country`` plausibly owns, with its user agent."""
    platform = rng.choices(_PLATFORMS, _MIX.get(country, _MIX["US"]))[0]
    if platform in (0, 2):  # iPhone / iPad app
        tablet = platform == 2
        app, ios = _app_version(rng), _pick_ios(rng)
        name = rng.choice(_IPADS) if tablet else rng.choice(_IPHONES)
        return Device(
            device_id=device_id.upper(),  # identifierForVendor is an upper-case UUID
            device_type="tablet" if tablet else "mobile",
            os="iOS",
            os_version=ios,
            model=name,
            source_id=SOURCE_IOS,
            app_version=app,
            user_agent=_ios_app_agent(app, ios, tablet),
            browser="",
        )
    if platform in (1, 3):  # Android phone / tablet app
        app = _app_version(rng)
        if platform == 3:
            model, android = rng.choice(_ANDROID_TABLETS), "15"
            build = rng.choice(_ANDROID_BUILDS[android])
        else:
            model, android, build = _android_phone(rng, country)
        return Device(
            device_id=device_id.replace("-", "")[:16],  # ANDROID_ID: 16 hex digits
            device_type="tablet" if platform == 3 else "mobile",
            os="Android",
            os_version=android,
            model=model,
            source_id=SOURCE_ANDROID,
            app_version=app,
            user_agent=_android_app_agent(app, model, android, build),
            browser="",
        )
    if platform == 4:
        ios = _pick_ios(rng)
        name = rng.choice(_IPHONES)
        return _web(device_id, "mobile", "iOS", ios, name, _ios_safari_agent(ios), "Mobile Safari")
    if platform in (5, 6):
        model, android, _ = _android_phone(rng, country)
        if platform == 6:
            agent = _samsung_internet_agent(model, android)
            return _web(device_id, "mobile", "Android", android, model, agent, "Samsung Internet")
        agent = _android_chrome_agent(rng.choice(_CHROME_MAJORS))
        return _web(device_id, "mobile", "Android", android, model, agent, "Chrome Mobile")
    return _desktop(rng, device_id)


def _web(
    device_id: str, kind: str, os: str, version: str, model: str, agent: str, browser: str
) -> Device:
    return Device(device_id, kind, os, version, model, SOURCE_WEB, "", agent, browser)


def _desktop(rng: random.Random, device_id: str) -> Device:
    roll = rng.random()
    chrome = rng.choice(_CHROME_MAJORS)
    if roll < 0.62:  # Windows 10/11: Chrome, Edge, Firefox
        which = rng.random()
        if which < 0.65:
            agent = f"{_WINDOWS}) {_WEBKIT} Chrome/{chrome}.0.0.0 Safari/537.36"
            browser = "Chrome"
        elif which < 0.9:
            agent = (
                f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {_WEBKIT} Chrome/{chrome}.0.0.0 "
                f"Safari/537.36 Edg/{chrome}.0.0.0"
            )
            browser = "Edge"
        else:
            fx = rng.choice(_FIREFOX_MAJORS)
            agent = f"{_WINDOWS}; rv:{fx}.0) Gecko/20100101 Firefox/{fx}.0"
            browser = "Firefox"
        return _web(device_id, "desktop", "Windows", "11", "PC", agent, browser)
    if roll < 0.97:  # macOS: the OS token is frozen at 10_15_7 by every browser
        which = rng.random()
        if which < 0.5:
            safari = rng.choice(_SAFARI_MAC)
            agent = (
                f"{_MAC} AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{safari} Safari/605.1.15"
            )
            browser = "Safari"
        elif which < 0.9:
            agent = f"{_MAC} {_WEBKIT} Chrome/{chrome}.0.0.0 Safari/537.36"
            browser = "Chrome"
        else:
            fx = rng.choice(_FIREFOX_MAJORS)
            # Firefox writes the frozen macOS version with dots.
            agent = (
                f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:{fx}.0) "
                f"Gecko/20100101 Firefox/{fx}.0"
            )
            browser = "Firefox"
        return _web(device_id, "desktop", "macOS", "26", "Mac", agent, browser)
    agent = f"Mozilla/5.0 (X11; Linux x86_64) {_WEBKIT} Chrome/{chrome}.0.0.0 Safari/537.36"
    return _web(device_id, "desktop", "Linux", "", "PC", agent, "Chrome")
