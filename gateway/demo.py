"""Demo data: a seeded grocery-app data set loaded through the normal ingest path, once."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import msgspec

from gateway.platform import Platform

if TYPE_CHECKING:
    from gateway.distributed import DistributedPlatform

DEMO_FILE = "demo.json"


def load_demo(platform: Platform | DistributedPlatform, *, seed: int = 1, users: int = 200,
              days: int = 14) -> dict[str, Any]:
    """Create the demo project and ingest its data (skipped when already loaded).

    Returns the demo project's keys; they are also kept in ``<data>/demo.json`` so the
    person who ran ``make run`` can sign in to the dashboard.
    """
    marker = platform.settings.data_dir / DEMO_FILE
    if marker.exists():
        return dict(json.loads(marker.read_text()))
    from stream.generate import generate

    keys = platform.control.create_project("Demo grocery app")
    dataset = generate(seed=seed, users=users, days=days, end_ms=int(time.time() * 1000))

    async def ingest() -> None:
        project = keys["project"]
        profiles = [msgspec.Raw(msgspec.json.encode(p)) for p in dataset.profiles]
        for start in range(0, len(profiles), 500):
            await platform.ingestor.profiles(project, profiles[start:start + 500], "demo")
        events = [msgspec.Raw(msgspec.json.encode(e)) for e in dataset.events]
        for start in range(0, len(events), 500):
            await platform.ingestor.events(project, events[start:start + 500], "demo")

    async def run() -> None:
        await platform.start()
        try:
            await ingest()
        finally:
            await platform.stop()

    asyncio.run(run())
    platform.wait_processed(timeout=600)
    marker.write_text(json.dumps(keys, indent=2))
    marker.chmod(0o600)
    return keys
