"""The committed schema.graphql is exactly what the code generates."""

from __future__ import annotations

from pathlib import Path

from resolvers.schema import schema

ROOT = Path(__file__).resolve().parents[2]


def test_committed_sdl_matches_the_code() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed.strip() == schema.as_str().strip(), (
        "schema.graphql is stale: run `make schema` and commit it")


def test_required_names_exist() -> None:
    sdl = schema.as_str()
    for name in ("pipelineStatus", "sessions(", "session(", "sessionMetrics(", "track(",
                 "identify(", "topLandingPages(", "perDay", "purchaseSessionRate",
                 "bounceRate", "averageDurationSeconds", "averageEventsPerSession",
                 "input TimeWindow", "last: String", "from: String", "to: String"):
        assert name in sdl, name
