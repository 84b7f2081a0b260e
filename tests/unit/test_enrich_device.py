"""DeviceParser over a table of real, current user agents (browsers, apps, bots, libraries)."""

from __future__ import annotations

import pickle

import pytest
from ua_parser import Domain, PartialResult

from stream.enrich.device import MAX_USER_AGENT_LENGTH, Device, DeviceParser

IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1"
)

# (user agent, device_type, os, os_version, browser, device_model)
CASES = [
    (IPHONE_SAFARI, "mobile", "iOS", "18.5", "Mobile Safari", "iPhone"),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/138.0.7204.119 Mobile/15E148 Safari/604.1",
        "mobile", "iOS", "18.5", "Chrome Mobile iOS", "iPhone",
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/138.0.0.0 Mobile Safari/537.36",
        "mobile", "Android", "10", "Chrome Mobile", "",  # reduced UA hides the model
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/138.0.7204.63 Mobile Safari/537.36",
        "mobile", "Android", "14", "Chrome Mobile", "SM-S918B",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/138.0.7204.63 Mobile Safari/537.36",
        "mobile", "Android", "14", "Chrome Mobile WebView", "Pixel 8",
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.5 Mobile/15E148 Safari/604.1",
        "tablet", "iOS", "18.5", "Mobile Safari", "iPad",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/138.0.0.0 Safari/537.36",
        "tablet", "Android", "14", "Chrome", "SM-X710",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/138.0.0.0 Safari/537.36",
        "desktop", "Windows", "10", "Chrome", "",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/138.0.0.0 Safari/537.36 Edg/138.0.0.0",
        "desktop", "Windows", "10", "Edge", "",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.5 Safari/605.1.15",
        "desktop", "Mac OS X", "10.15.7", "Safari", "Mac",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
        "desktop", "Linux", "", "Firefox", "",
    ),
    (
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
        "desktop", "Ubuntu", "", "Firefox", "",
    ),
    (
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/138.0.0.0 Safari/537.36",
        "desktop", "Chrome OS", "14541.0.0", "Chrome", "",
    ),
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "bot", "", "", "Googlebot", "",
    ),
    (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/138.0.7204.92 Mobile Safari/537.36 "
        "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "bot", "Android", "6.0.1", "Googlebot", "",
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
        "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
        "bot", "", "", "bingbot", "",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/138.0.0.0 Safari/537.36",
        "bot", "Mac OS X", "10.15.7", "HeadlessChrome", "Mac",
    ),
    (
        "MoreRetail/5.2.1 (iPhone; iOS 17.4; Scale/3.00)",
        "mobile", "iOS", "17.4", "MoreRetail", "iPhone",
    ),
    (
        "MoreRetail/5.2.1 (iPad; iOS 17.4; Scale/2.00)",
        "tablet", "iOS", "17.4", "MoreRetail", "iPad",
    ),
    (
        "MoreRetail/5.2.1 (com.moreretail.app; build:521; iOS 17.4.1) Alamofire/5.9.1",
        "mobile", "iOS", "17.4.1", "MoreRetail", "",
    ),
    (
        "Dalvik/2.1.0 (Linux; U; Android 14; SM-S918B Build/UP1A.231005.007)",
        "mobile", "Android", "14", "Dalvik", "SM-S918B",
    ),
    ("okhttp/4.12.0", "other", "", "", "okhttp", ""),
    ("curl/8.5.0", "other", "", "", "curl", ""),
    (
        "Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/5.0 Chrome/94.0.4606.31 TV Safari/537.36",
        "other", "Tizen", "7.0", "Samsung Internet", "SMART-TV",
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def parser() -> DeviceParser:
    return DeviceParser()


@pytest.mark.parametrize(
    ("ua", "device_type", "os", "os_version", "browser", "model"),
    CASES,
    ids=[f"{case[1]}-{case[4] or case[0][:20]}" for case in CASES],
)
def test_real_user_agents(
    parser: DeviceParser,
    ua: str,
    device_type: str,
    os: str,
    os_version: str,
    browser: str,
    model: str,
) -> None:
    device = parser.parse(ua)
    assert (device.device_type, device.os, device.os_version) == (device_type, os, os_version)
    assert (device.browser, device.device_model) == (browser, model)


def test_versions_are_dotted(parser: DeviceParser) -> None:
    assert parser.parse(IPHONE_SAFARI).browser_version == "18.5"
    assert parser.parse("MoreRetail/5.2.1 (iPhone; iOS 17.4; Scale/3.00)") == Device(
        device_type="mobile",
        os="iOS",
        os_version="17.4",
        browser="MoreRetail",
        browser_version="5.2.1",
        device_model="iPhone",
    )
    assert parser.parse("okhttp/4.12.0").browser_version == "4.12.0"


@pytest.mark.parametrize("ua", [None, "", "   ", "\x00\x01garbage ~~~"])
def test_missing_or_unrecognisable_agent_gives_empty_device(
    parser: DeviceParser, ua: str | None
) -> None:
    assert parser.parse(ua) == Device()


def test_unknown_product_token_is_other(parser: DeviceParser) -> None:
    device = parser.parse("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)")
    assert (device.device_type, device.browser, device.browser_version) == (
        "other",
        "node-fetch",
        "1.0",
    )


def test_non_string_gives_empty_device(parser: DeviceParser) -> None:
    assert parser.parse(42) == Device()  # type: ignore[arg-type]


def test_overlong_agent_is_cut_before_parsing() -> None:
    parser = DeviceParser()
    device = parser.parse(IPHONE_SAFARI + " x" * 10_000)
    assert (device.device_type, device.os) == ("mobile", "iOS")
    assert parser.parse(IPHONE_SAFARI + " x" * 10_000 + "tail") is device  # same first 1024
    assert len(IPHONE_SAFARI) < MAX_USER_AGENT_LENGTH


def test_results_are_cached() -> None:
    parser = DeviceParser(cache_size=2)
    first = parser.parse(IPHONE_SAFARI)
    assert parser.parse(IPHONE_SAFARI) is first
    info = parser.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (1, 1, 2)


def test_resolver_failure_gives_empty_device() -> None:
    def broken(ua: str, domains: Domain, /) -> PartialResult:
        raise RuntimeError("regex engine exploded")

    assert DeviceParser(resolver=broken).parse(IPHONE_SAFARI) == Device()


def test_pickled_parser_still_parses(parser: DeviceParser) -> None:
    copy = pickle.loads(pickle.dumps(parser))  # noqa: S301 - our own object
    assert copy.parse(IPHONE_SAFARI) == parser.parse(IPHONE_SAFARI)
