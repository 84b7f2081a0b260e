"""Bootstrap of the data lifecycle (issue 10) for both platforms: the Parquet archive, the
forgotten list, and the user-data service with each profile's erasure hooks.

Settings: ``archive_uri`` (``CEP_ARCHIVE_URI``; empty: ``DATA/archive``),
``cassandra_ttl_days`` and ``redis_ttl_seconds`` (applied where the stores are opened);
``CEP_ARCHIVE_ROLL_ROWS`` / ``CEP_ARCHIVE_ROLL_SECONDS`` size the archive's files, as for
the PyFlink job's archive sink.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from gateway.settings import Settings
from gateway.user_data import ErasureHooks, UserDataService
from storage.archive import ParquetArchive
from storage.archive_stage import ArchiveStage
from storage.suppression import SuppressionStore

if TYPE_CHECKING:
    from gateway.distributed import DistributedPlatform
    from gateway.platform import Platform

FORGOTTEN_FILE = "forgotten.sqlite"


def archive_uri(settings: Settings) -> str:
    """Where the archive lives: ``archive_uri``, else the data dir's ``archive`` folder."""
    return settings.archive_uri or str((settings.data_dir / "archive").resolve())


def open_archive(settings: Settings) -> ParquetArchive:
    return ParquetArchive(archive_uri(settings))


def open_forgotten(settings: Settings) -> SuppressionStore:
    return SuppressionStore(settings.data_dir / FORGOTTEN_FILE)


def open_lifecycle(settings: Settings, checkpoint: int
                   ) -> tuple[SuppressionStore, ArchiveStage]:
    """The embedded runner's forgotten list and archive writer (``checkpoint``: the store's
    log offset, which decides what staged events are committed)."""
    stage = ArchiveStage(settings.data_dir / "archive-staging", open_archive(settings),
                         roll_rows=int(os.environ.get("CEP_ARCHIVE_ROLL_ROWS") or 100_000),
                         roll_seconds=float(os.environ.get("CEP_ARCHIVE_ROLL_SECONDS") or 300),
                         fsync=settings.fsync)
    stage.recover(checkpoint)
    return open_forgotten(settings), stage


def embedded_user_data(platform: Platform) -> UserDataService:
    from storage.duckdb_user_data import DuckDBUserData

    assert platform.forgotten is not None
    assert platform.archive is not None
    runner, stage = platform.runner, platform.archive
    hooks = ErasureHooks(exclusive=runner.exclusive,
                         forget_keys=lambda _p, keys: runner.forget_sessions(keys),
                         flush_archive=stage.flush)
    return UserDataService(DuckDBUserData(platform.store), platform.graph, platform.live,
                           platform.campaigns, stage.archive, platform.forgotten, hooks)


def close_lifecycle(platform: Platform) -> None:
    """After the runner stopped: roll what is staged, close the forgotten list."""
    if platform.archive is not None:
        platform.archive.close()
    if platform.forgotten is not None:
        platform.forgotten.close()


# -- the distributed profile ---------------------------------------------------------------

def publish_forgotten(client: Any, forgotten: SuppressionStore,
                      projects: list[str] | None = None) -> int:
    """Mirror the forgotten list into Redis (``cep:suppressed``) for the PyFlink job."""
    from stream.flink.suppress import SUPPRESSED_KEY

    ids = projects if projects is not None else forgotten.projects()
    mapping = {p: forgotten.forgotten(p).to_json().decode() for p in ids}
    if mapping:
        client.hset(SUPPRESSED_KEY, mapping=mapping)
    return len(mapping)


def distributed_user_data(platform: DistributedPlatform, forgotten: SuppressionStore
                          ) -> UserDataService:
    from storage.cassandra_user_data import CassandraUserData
    from storage.redis_firings import forget_firings
    from stream.flink.suppress import SETTLE_SECONDS

    client = platform.redis
    hooks = ErasureHooks(
        publish=lambda p: publish_forgotten(client, forgotten, [p]),
        settle=lambda: asyncio.sleep(SETTLE_SECONDS),
        forget_more=lambda p, ids: {"campaign_firings": forget_firings(client, p, ids)})
    return UserDataService(CassandraUserData(platform.store), platform.graph, platform.live,
                           platform.campaigns, open_archive(platform.settings), forgotten,
                           hooks)


def job_env(settings: Settings) -> dict[str, str]:
    """Where the PyFlink job archives (``cep flink run``; the TTLs travel with the other
    ``CEP_*`` settings in ``Settings.service_env``)."""
    uri = archive_uri(settings)
    env = {"CEP_ARCHIVE_URI": uri}
    if "://" in uri:  # a remote archive stages locally
        env["CEP_ARCHIVE_STAGING"] = str((settings.data_dir / "archive-staging").resolve())
    return env
