"""Rules turning a ua-parser result into CEP's device fields.

ua-parser names the browser, OS and device; it does not say what *kind* of device it is,
and it knows nothing about the native-app user agents our SDK customers send. These pure
functions add both. Known limits, inherent to user agents: iPadOS Safari sends a Mac user
agent by default (→ ``desktop``); Windows 11 reports ``Windows NT 10.0`` (→ ``10``); macOS
is frozen at ``10.15.7``; reduced Chrome user agents hide the Android model (``K``).
"""

from __future__ import annotations

import re
from typing import Final

from ua_parser import OS, Result
from ua_parser import Device as UaDevice

MOBILE: Final = "mobile"
TABLET: Final = "tablet"
DESKTOP: Final = "desktop"
BOT: Final = "bot"
OTHER: Final = "other"
UNKNOWN: Final = ""

_DESKTOP_OS: Final = frozenset(
    {
        "Windows", "Mac OS X", "Linux", "Ubuntu", "Fedora", "Debian", "Red Hat", "SUSE",
        "openSUSE", "Mint", "Linux Mint", "Arch Linux", "Gentoo", "Kubuntu", "Mandriva",
        "Slackware", "CentOS", "Chrome OS", "FreeBSD", "OpenBSD", "NetBSD", "Solaris",
    }
)  # fmt: skip
_MOBILE_OS: Final = frozenset(
    {
        "iOS", "Windows Phone", "KaiOS", "BlackBerry OS", "BlackBerry Tablet OS", "Symbian OS",
        "Firefox OS", "HarmonyOS", "Sailfish", "Tizen", "webOS", "Bada", "MeeGo", "Maemo",
    }
)  # fmt: skip
_OTHER_DEVICES: Final = re.compile(
    r"SMART-?TV|SmartTV|\bTV\b|AndroidTV|GoogleTV|AppleTV|CrKey|BRAVIA|Roku|\bAFT[A-Z]|"
    r"Web0S|NetCast|HbbTV|PlayStation|Xbox|Nintendo|Oculus|\bWatch\b",
    re.IGNORECASE,
)
_TABLET_MODELS: Final = re.compile(
    r"iPad|Tablet|\bTab(?:\b|[ _-]?[A-Z0-9])|\bPad\b|MatePad|Lenovo TB|^SM-[TPX]\d|^GT-P\d|"
    r"^TB-|Kindle|\bKF[A-Z]{2,}|Nexus (?:7|9|10)\b"
)
_AUTOMATION: Final = re.compile(r"Headless|PhantomJS|Lighthouse|Puppeteer|Playwright", re.I)
_APP_TOKEN: Final = re.compile(r"^([A-Za-z][\w.-]*(?: [A-Za-z][\w.-]*)?)/(\d[\w.-]*)")
_GENERIC_BROWSERS: Final = frozenset({"Other", "Mobile Safari UI/WKWebView", "Android"})
_PLACEHOLDER_MODELS: Final = frozenset(
    {"", "K", "Other", "Smartphone", "Feature Phone", "Desktop", "iOS-Device", "Tablet"}
)


def device_type(result: Result, ua: str) -> str:
    """``mobile``/``tablet``/``desktop``/``bot``/``other``, or ``""`` when nothing matched.

    ``other`` is a recognised client that is not a person's phone, tablet or computer: TVs,
    consoles, watches, HTTP libraries (``okhttp``, ``curl``) and unknown OSes.
    """
    device, os = result.device, result.os
    if (device is not None and device.family == "Spider") or _AUTOMATION.search(ua):
        return BOT
    model = (device.model or "") if device is not None else ""
    if _OTHER_DEVICES.search(ua) or (device is not None and _OTHER_DEVICES.search(device.family)):
        return OTHER
    if "iPad" in ua or _TABLET_MODELS.search(model) or _is_android_tablet(device, os, ua):
        return TABLET
    if os is None:
        return OTHER if result.user_agent is not None or device is not None else UNKNOWN
    if os.family == "Android" or os.family in _MOBILE_OS:
        return MOBILE
    if os.family in _DESKTOP_OS:
        return DESKTOP
    return OTHER


def _is_android_tablet(device: UaDevice | None, os: OS | None, ua: str) -> bool:
    if os is None or os.family != "Android":
        return False
    if device is not None and device.brand == "Generic_Android_Tablet":
        return True
    # Android browsers put "Mobile" in phone user agents only (Chrome's documented rule);
    # native-app agents (Dalvik, okhttp, SDKs) never do, so they stay phones.
    return ua.startswith("Mozilla/") and "Mobile" not in ua


def browser(result: Result, ua: str) -> tuple[str, str]:
    """Browser or app name and version.

    For native-app agents (``MoreRetail/5.2.1 (iPhone; iOS 17.4; Scale/3.00)``, Dalvik) ua-parser
    reports a generic webview or the OS; the leading ``Name/version`` token names the app.
    """
    agent = result.user_agent
    if agent is not None and agent.family not in _GENERIC_BROWSERS:
        return agent.family, _version(agent.major, agent.minor, agent.patch)
    if not ua.startswith("Mozilla/") and (token := _APP_TOKEN.match(ua)):
        return token.group(1), token.group(2)
    if agent is not None and agent.family != "Other":
        return agent.family, _version(agent.major, agent.minor, agent.patch)
    return "", ""


def operating_system(result: Result) -> tuple[str, str]:
    """OS family (``iOS``, ``Android``, ``Windows``, ``Mac OS X``…) and dotted version."""
    os = result.os
    if os is None or os.family == "Other":
        return "", ""
    return os.family, _version(os.major, os.minor, os.patch)


def device_model(result: Result) -> str:
    """Model as ua-parser names it (``iPhone``, ``SM-S918B``, ``Pixel 8``), or ``""``.

    Placeholders (Chrome's reduced ``K``, ``iOS-Device``, crawler pseudo-devices) become ``""``.
    """
    device = result.device
    if device is None or device.brand == "Spider":
        return ""
    model = device.model or ""
    return "" if model in _PLACEHOLDER_MODELS else model


def _version(*parts: str | None) -> str:
    present: list[str] = []
    for part in parts:
        if not part:
            break
        present.append(part)
    return ".".join(present)
