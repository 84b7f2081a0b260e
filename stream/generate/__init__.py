"""``cep generate``: a realistic, deterministic event stream of a grocery app.

    dataset = generate(seed=1, users=200, days=14, end_ms=now_ms)
    write_ndjson(dataset, "demo.ndjson")  # and demo.profiles.ndjson beside it
    result = await send(dataset, "http://127.0.0.1:8000", write_key, progress=True)

Users, devices, sessions with evening and weekend peaks, search-to-purchase journeys,
crashes, server-side delivery events, logged-out devices that sign in later, SDK
retries (same insert_id), late uploads, and optionally broken records.
"""

from stream.generate.files import ndjson_lines, profiles_path, write_ndjson
from stream.generate.generator import DEFAULT_DAYS, DEFAULT_USERS, generate
from stream.generate.model import Dataset, SessionTruth, Stats
from stream.generate.sender import Rejection, SendError, SendResult, send

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_USERS",
    "Dataset",
    "Rejection",
    "SendError",
    "SendResult",
    "SessionTruth",
    "Stats",
    "generate",
    "ndjson_lines",
    "profiles_path",
    "send",
    "write_ndjson",
]
