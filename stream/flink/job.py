"""The PyFlink job: raw events → de-duplicate → sessionize + enrich → sinks.

Run it with the Flink virtualenv's Python (``scripts/flink/setup.sh``)::

    PYTHONPATH=. .cache/flink-venv/bin/python -m stream.flink.job --kafka 127.0.0.1:9092 \\
        --sink print
    PYTHONPATH=. .cache/flink-venv/bin/python -m stream.flink.job --events events.jsonl \\
        --sink jsonl:out/

Sources: Kafka topics ``raw.<category>`` (a topic pattern, so new categories are picked up;
values are msgpack ``Event``s, see :mod:`stream.flink.records`) through the fat
``flink-sql-connector-kafka`` jar, or a bounded file of JSON-encoded events, one per line
(tests, replays). Watermarks: bounded out-of-orderness on event time, assigned after
parsing. The job runs in a local mini cluster in this process's JVM; Python functions run
in thread mode (inside the JVM, through pemja). All subtasks of one JVM share its Python
interpreter and so one GIL: parallelism in the mini cluster spreads state, not Python work —
more throughput takes more task-manager processes.

Topology: parse ─key (project, insert_id)→ Dedupe ─key (project, session key)→ Sessionize
─key (sink bucket)→ BufferOutputs → sinks; with campaigns (``cep:campaigns`` in Redis),
Sessionize's events also go ─key (project, user)→ CampaignTriggers, whose firings join the
sink buffers; with the ``stores`` sink, they also go ─key (sink bucket)→ PublishLive, the
Redis live views, on a branch of their own (not behind the Cassandra and Neo4j writes).
With Kafka, ``profiles.raw`` (traits, ties) and ``events.dead`` (dead letters,
settlements) are read too and join the sink buffers. Whatever belongs to a user erased by
``cep project delete`` (Redis ``cep:suppressed``) is dropped where it enters and where
outputs leave: ``stream.flink.suppress``.

Run against the dev stack's stores (settings: ``stream.flink.store_sink``)::

    CEP_CASSANDRA_HOSTS=127.0.0.1 CEP_REDIS_URL=redis://127.0.0.1:6379/0 \
    CEP_NEO4J_URI=bolt://127.0.0.1:7687 PYTHONPATH=. .cache/flink-venv/bin/python \
        -m stream.flink.job --kafka 127.0.0.1:9092 --sink stores --checkpoint-interval-ms 1000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# The repository's packages the job's functions and sinks import on the task managers
# (shipped with ``--remote``; copied into the Flink image of docker-compose.yml).
JOB_PACKAGES = ("stream", "storage", "graph")
DEFAULT_JARS = ROOT / ".cache" / "flink-jars"
DEFAULT_GEO_DIR = ROOT / ".cache" / "geo"
DEFAULT_CHECKPOINTS = ROOT / ".cache" / "flink-checkpoints"
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
MAX_PARALLELISM = 128  # Flink's default for small jobs; key groups, so never change it


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m stream.flink.job",
        description="CEP's PyFlink job: raw events -> dedupe -> sessions + enrichment -> sinks.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_argument_group("source (one of)")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument("--kafka", metavar="BOOTSTRAP", help="Kafka bootstrap servers")
    one.add_argument("--events", metavar="FILE", type=Path,
                     help="bounded source: a file of JSON-encoded events, one per line")
    src.add_argument("--topics", default=r"raw\..*",
                     help="Kafka topic pattern (a regex) or a comma-separated list")
    # Every source also reads the gateway's heartbeat topic (empty values, dropped): a
    # message ends an idle fetcher's 10 s poll so it commits the last checkpoint's offsets
    # (clients/kafka_topics.py). The raw pattern matches raw._heartbeat by itself.
    src.add_argument("--profiles-topic", default=r"profiles\.raw|raw\._heartbeat",
                     help="topic pattern of identify profiles ('' = do not read; with "
                          "--bounded it must match a topic, or the job never ends)")
    src.add_argument("--dead-topic", default=r"events\.dead|raw\._heartbeat",
                     help="topic pattern of dead letters and settlements ('' = do not read; "
                          "with --bounded it must match a topic)")
    src.add_argument("--format", choices=("msgpack", "json"), default="msgpack",
                     help="encoding of Kafka values")
    src.add_argument("--group-id", default="cep-flink")
    src.add_argument("--from", dest="start", choices=("committed", "earliest", "latest"),
                     default="committed",
                     help="Kafka start offsets (committed falls back to earliest)")
    src.add_argument("--bounded", action="store_true",
                     help="stop at the Kafka offsets that are latest at start (tests)")
    src.add_argument("--jar", action="append", type=Path, default=[],
                     help=f"connector jar(s); default: every jar in {DEFAULT_JARS}")

    t = p.add_argument_group("time and state")
    t.add_argument("--out-of-orderness-ms", type=int, default=10_000,
                   help="watermark lag behind the largest event time seen")
    t.add_argument("--idleness-ms", type=int, default=30_000,
                   help="a source split silent this long stops holding back the watermark")
    t.add_argument("--allowed-lateness-ms", type=int, default=DAY_MS,
                   help="late events within this of the watermark still re-fold exactly; "
                        "older ones are emitted as too_late")
    t.add_argument("--session-timeout-minutes", type=int, default=30,
                   help="default inactivity timeout (a --rules file overrides per project)")
    t.add_argument("--rules", type=Path,
                   help='JSON {"project" or "*": {session_timeout_minutes, '
                        'session_start_events, session_end_events, conversion_events}}; '
                        "the fallback for projects not in Redis' cep:project-settings")
    t.add_argument("--rules-redis", metavar="URL",
                   help="read each project's settings from hash cep:project-settings here "
                        "(default with --sink stores: $CEP_REDIS_URL); 'none' = off")
    t.add_argument("--rules-refresh-s", type=float, default=5.0,
                   help="re-read cep:project-settings at most this often per subtask")
    t.add_argument("--campaigns-redis", metavar="URL",
                   help="read active campaign triggers from hash cep:campaigns here (default "
                        "with --sink stores: $CEP_REDIS_URL); 'none' = no campaigns")
    t.add_argument("--campaigns-refresh-s", type=float, default=2.0,
                   help="re-read cep:campaigns at most this often per subtask")
    t.add_argument("--suppressions-redis", metavar="URL",
                   help="drop what forgotten (erased) users send, as listed in hash "
                        "cep:suppressed here (default with --sink stores: $CEP_REDIS_URL); "
                        "'none' = off")
    t.add_argument("--dedupe-ttl-ms", type=int, default=7 * DAY_MS,
                   help="how long an insert id is remembered (processing time)")
    t.add_argument("--checkpoint-interval-ms", type=int, default=30_000, help="0 = off")
    t.add_argument("--checkpoint-dir", default=DEFAULT_CHECKPOINTS.as_uri(),
                   help="checkpoint storage URI (the job manager's memory holds only 5 MB); "
                        "checkpoints are kept when the job stops or dies")
    t.add_argument("--restore", metavar="PATH|latest",
                   help="start from this checkpoint (a chk-N folder), or the newest complete "
                        "one under --checkpoint-dir ('latest'; none there: a fresh start)")
    t.add_argument("--state-backend", choices=("hashmap", "rocksdb"), default="hashmap",
                   help="rocksdb keeps state on disk: for a day of lateness at volume")

    r = p.add_argument_group("runtime")
    r.add_argument("--remote", metavar="HOST:PORT",
                   help="submit to a Flink cluster's REST endpoint (its task managers need "
                        "this repository's requirements; the code is shipped with the job) "
                        "instead of running a local mini cluster in this process")
    r.add_argument("--remote-python", default="python3",
                   help="with --remote: the Python the task managers run the functions with")
    r.add_argument("--parallelism", type=int, default=2)
    r.add_argument("--bundle-size", type=int, default=1000,
                   help="python.fn-execution.bundle.size (elements per Python bundle)")
    r.add_argument("--bundle-time-ms", type=int, default=1000,
                   help="python.fn-execution.bundle.time")
    r.add_argument("--buffer-timeout-ms", type=int, default=10,
                   help="execution.buffer-timeout.interval: how long a network buffer between "
                        "operators may wait to fill (each key_by hop adds up to this)")
    r.add_argument("--python-mode", choices=("thread", "process"), default="thread",
                   help="python.execution-mode (process mode is ~30x slower here)")
    r.add_argument("--cached-keys", type=int, default=10_000,
                   help="session keys whose state head each subtask keeps in memory too")
    r.add_argument("--no-enrich", action="store_true", help="skip geo / device enrichment")
    r.add_argument("--geo-db", action="append", default=[],
                   help=f"an .mmdb file (default: those in {DEFAULT_GEO_DIR})")
    r.add_argument("--sink", action="append", default=[],
                   help="print | discard | stores | jsonl:DIR | module:factory "
                        "(repeatable; default print)")
    r.add_argument("--buckets-per-subtask", type=int, default=1,
                   help="sink buffers (keys of BufferOutputs) per subtask: a flush writes "
                        "one, so more buckets make smaller batches")
    r.add_argument("--flush-ms", type=int, default=100,
                   help="a non-empty sink buffer is written at most this long after it "
                        "became non-empty")
    r.add_argument("--flush-items", type=int, default=1000,
                   help="a sink buffer holding this many items is written at once")
    r.add_argument("--live-flush-ms", type=int, default=10,
                   help="with --sink stores: new events reach the Redis live views at most "
                        "this long after Sessionize placed them")
    r.add_argument("--pending-redis", metavar="URL",
                   help="keep cep:pipeline:buffered:<subtask> here (default with --sink "
                        "stores: $CEP_REDIS_URL); 'none' = off")
    r.add_argument("--max-restarts", type=int,
                   help="fixed-delay restarts after a failure (default: none for --events, "
                        "Flink's exponential back-off for --kafka)")
    r.add_argument("--job-name", default="cep-sessions")
    return p.parse_args(argv)


def rules_from(args: argparse.Namespace) -> dict[str, Any]:
    """Per-project session rules: the file's entries over ``--session-timeout-minutes``."""
    from stream.operators.sessionize import (
        DEFAULT_CONVERSION_EVENTS,
        DEFAULT_END_EVENTS,
        DEFAULT_START_EVENTS,
        session_rules,
    )

    settings: dict[str, dict[str, Any]] = {}
    if args.rules is not None:
        settings = json.loads(args.rules.read_text())
    base = {"session_timeout_minutes": args.session_timeout_minutes}
    out = {}
    for project, own in {"*": {}, **settings}.items():
        merged = {**base, **settings.get("*", {}), **own}
        out[project] = session_rules(merged, DEFAULT_START_EVENTS, DEFAULT_END_EVENTS,
                                     DEFAULT_CONVERSION_EVENTS)
    return out


def redis_for(flag: str | None, sinks: Sequence[str]) -> str | None:
    """A Redis URL flag's value: explicit, else ``$CEP_REDIS_URL`` with the stores sink."""
    if flag is not None:
        return None if flag == "none" else flag
    if "stores" in sinks:
        return os.environ.get("CEP_REDIS_URL", "redis://127.0.0.1:6379/0")
    return None


def restore_path(choice: str | None, checkpoint_dir: str) -> str | None:
    """The checkpoint to start from: ``choice`` itself, or with ``latest`` the complete
    ``<job id>/chk-N`` (it has ``_metadata``) last written under a local ``checkpoint_dir``."""
    if choice is None or choice != "latest":
        return choice
    from urllib.parse import urlparse

    root = Path(urlparse(checkpoint_dir).path) if "://" in checkpoint_dir else Path(
        checkpoint_dir)
    done = [m for m in root.glob("*/chk-*/_metadata")]
    if not done:
        return None

    def newest(metadata: Path) -> tuple[int, float]:
        # By checkpoint number (a restored job continues the count), then by when its
        # metadata was written. Not by the folder's mtime: discarding a subsumed
        # checkpoint deletes files from its folder, which makes the older one look newer.
        number = metadata.parent.name.removeprefix("chk-")
        return (int(number) if number.isdigit() else -1, metadata.stat().st_mtime)

    return max(done, key=newest).parent.as_uri()


def geo_paths(args: argparse.Namespace) -> list[str]:
    if args.geo_db:
        return [str(Path(p).resolve()) for p in args.geo_db]
    from stream.enrich.fetch import default_geo_paths

    return [str(p) for p in default_geo_paths(DEFAULT_GEO_DIR)]


def prepare_process_env() -> None:
    """Thread mode runs Python inside the JVM (pemja), which only finds this venv's packages
    and the repository through ``PYTHONPATH``; the gateway JVM inherits it from here."""
    paths = [str(ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    current = os.environ.get("PYTHONPATH", "")
    paths += [p for p in current.split(os.pathsep) if p and p not in paths]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    os.environ.setdefault("JVM_ARGS", "-Xmx1g")
    # the mini cluster's log (its task failures are told there, not on stderr)
    os.environ.setdefault("FLINK_LOG_DIR", str(ROOT / ".cache" / "flink-logs"))


def build(args: argparse.Namespace) -> Any:
    """The configured ``StreamExecutionEnvironment`` with the job's graph on it."""
    from pyflink.common import Configuration, Duration, WatermarkStrategy
    from pyflink.common.typeinfo import Types
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.datastream.connectors.base import Sink
    from pyflink.java_gateway import get_gateway

    from stream.flink.buckets import bucket_keys
    from stream.flink.campaigns import CampaignRules
    from stream.flink.functions import (
        KEYED_EVENT,
        BufferOutputs,
        CampaignEvents,
        CampaignTriggers,
        Dedupe,
        EventTime,
        ParseDeadLetters,
        ParseEvents,
        ParseProfiles,
        PublishLive,
        Sessionize,
        campaign_key,
    )
    from stream.flink.pending import PendingMarker
    from stream.flink.rules import ProjectRules
    from stream.flink.suppress import JobSuppressions

    specs = args.sink or ["print"]
    forgotten = JobSuppressions(redis_for(args.suppressions_redis, specs))
    pending_url = redis_for(args.pending_redis, specs)
    rules = ProjectRules(rules_from(args), redis_for(args.rules_redis, specs),
                         args.rules_refresh_s)
    sinks = make_sinks(args, specs, rules)
    config = Configuration()
    config.set_string("python.execution-mode", args.python_mode)
    config.set_string("python.fn-execution.bundle.size", str(args.bundle_size))
    config.set_string("python.fn-execution.bundle.time", str(args.bundle_time_ms))
    config.set_string("execution.buffer-timeout.interval", f"{args.buffer_timeout_ms} ms")
    config.set_string("python.client.executable", sys.executable)
    if not os.environ.get("CEP_FLINK_SUBMITTED"):  # under `flink run` its flags decide
        config.set_string("python.executable", sys.executable)
    restarts = 0 if args.max_restarts is None and args.events else args.max_restarts
    if restarts == 0:
        config.set_string("restart-strategy.type", "none")
    elif restarts is not None:
        config.set_string("restart-strategy.type", "fixed-delay")
        config.set_string("restart-strategy.fixed-delay.attempts", str(restarts))
        config.set_string("restart-strategy.fixed-delay.delay", "5 s")
    if args.checkpoint_interval_ms > 0:
        config.set_string("execution.checkpointing.interval",
                          f"{args.checkpoint_interval_ms} ms")
        config.set_string("execution.checkpointing.dir", args.checkpoint_dir)
        config.set_string("execution.checkpointing.externalized-checkpoint-retention",
                          "RETAIN_ON_CANCELLATION")
    restore = restore_path(args.restore, args.checkpoint_dir)
    if restore is not None:
        config.set_string("execution.state-recovery.path", restore)
    config.set_string("state.backend.type", args.state_backend)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    if args.kafka:
        jars = args.jar or sorted(DEFAULT_JARS.glob("*.jar"))
        if not jars:
            raise SystemExit(f"no connector jar in {DEFAULT_JARS}: run scripts/flink/setup.sh")
        # Added to the job's jars, not set over them: under `flink run` they already hold
        # flink-python (from the distribution's opt/), which the job manager needs to
        # deserialize the Python operators (a cluster's lib/ does not have it).
        env.add_jars(*(Path(j).resolve().as_uri() for j in jars))
    env.set_parallelism(args.parallelism)
    # Fixed: restores and sink buckets rely on it. Stateful operators carry uids, so a
    # restore maps their state whatever else changed (a side topic turned on or off).
    env.set_max_parallelism(MAX_PARALLELISM)
    buckets = bucket_keys(args.parallelism, MAX_PARALLELISM, args.buckets_per_subtask)

    if args.kafka:
        raw = env.from_source(kafka_source(args, args.topics, args.format == "msgpack"),
                              WatermarkStrategy.no_watermarks(), "kafka raw").uid("kafka-raw")
        fmt = args.format
    else:
        raw = env.from_source(file_source(args.events), WatermarkStrategy.no_watermarks(),
                              "events file").uid("events-file")
        fmt = "json"
    # with_idleness first: PyFlink's with_idleness returns a new strategy without the Python
    # timestamp assigner, which would leave the sources' record timestamps (Kafka's: the
    # time of sending) driving event time.
    watermarks = (WatermarkStrategy
                  .for_bounded_out_of_orderness(Duration.of_millis(args.out_of_orderness_ms))
                  .with_idleness(Duration.of_millis(args.idleness_ms))
                  .with_timestamp_assigner(EventTime()))
    events = (raw.flat_map(ParseEvents(fmt, forgotten), output_type=KEYED_EVENT).name("parse")
              .assign_timestamps_and_watermarks(watermarks))
    unique = (events.key_by(dedupe_key, key_type=Types.STRING())
              .process(Dedupe(args.dedupe_ttl_ms), output_type=KEYED_EVENT)
              .name("dedupe").uid("dedupe"))
    outputs = (unique.key_by(session_group, key_type=Types.STRING())
               .process(Sessionize(rules, args.allowed_lateness_ms, geo_paths(args),
                                   enrich=not args.no_enrich, cached_keys=args.cached_keys,
                                   buckets=buckets, producer_memory_ms=args.dedupe_ttl_ms),
                        output_type=Types.PICKLED_BYTE_ARRAY()).name("sessionize")
               .uid("sessionize"))
    live_url = live_branch(sinks)
    if live_url:
        # Live views on their own branch: within milliseconds, not behind the store writes.
        ttl_ms = int(os.environ.get("CEP_REDIS_TTL_SECONDS") or 7200) * 1000
        published = (outputs.key_by(sink_bucket, key_type=Types.INT())
                     .process(PublishLive(live_url, args.live_flush_ms, ttl_ms=ttl_ms,
                                          suppressions=forgotten),
                              output_type=Types.BOOLEAN())
                     .name("live views").uid("live-views"))
        published.sink_to(Sink(get_gateway().jvm.org.apache.flink.streaming.api.functions
                               .sink.v2.DiscardingSink())).name("live end")
    campaigns_url = redis_for(args.campaigns_redis, specs)
    if campaigns_url:
        # Campaign triggers keyed by (project, user), on Sessionize's enriched events; their
        # firings join the sink buffers (the stores sink hands them to the gateway).
        campaigns = CampaignRules(campaigns_url, args.campaigns_refresh_s)
        fired = (outputs.flat_map(CampaignEvents(campaigns),
                                  output_type=Types.PICKLED_BYTE_ARRAY())
                 .name("campaign events")
                 .key_by(campaign_key, key_type=Types.STRING())
                 .process(CampaignTriggers(campaigns, args.out_of_orderness_ms, buckets),
                          output_type=Types.PICKLED_BYTE_ARRAY())
                 .name("campaign triggers").uid("campaign-triggers"))
        outputs = outputs.union(fired)
    if args.kafka:
        side = [(args.profiles_topic, ParseProfiles(buckets, forgotten), "profiles"),
                (args.dead_topic, ParseDeadLetters(buckets, forgotten), "dead letters")]
        for pattern, parse, name in side:
            if pattern:
                stream = env.from_source(kafka_source(args, pattern, msgpack=True),
                                         WatermarkStrategy.no_watermarks(), f"kafka {name}")
                stream = stream.uid(f"kafka-{name.replace(' ', '-')}")
                outputs = outputs.union(
                    stream.flat_map(parse, output_type=Types.PICKLED_BYTE_ARRAY()).name(name))
    buffer = BufferOutputs(sinks, args.flush_ms, args.flush_items,
                           PendingMarker(pending_url) if pending_url else None, forgotten)
    written = (outputs.key_by(sink_bucket, key_type=Types.INT())
               .process(buffer, output_type=Types.BOOLEAN()).name("sinks").uid("sinks"))
    discard = get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink()
    written.sink_to(Sink(discard)).name("end")
    return env


def live_branch(sinks: Sequence[Any]) -> str | None:
    """The Redis URL of the ``stores`` sink, whose live views the job then publishes on a
    branch of their own (the sink keeps only those of the too-late events it places)."""
    from stream.flink.store_sink import StoresSinkFactory

    for factory in sinks:
        if isinstance(factory, StoresSinkFactory):
            factory.live = False
            return factory.redis_url
    return None


def make_sinks(args: argparse.Namespace, specs: Sequence[str], rules: Any) -> list[Any]:
    """The sink factories; with ``stores``, its tables are created here, once, and its
    factory places too-late events with the job's session ``rules`` and enrichment."""
    from stream.flink.sinks import sink_factory

    sinks = [sink_factory(spec) for spec in specs]
    if "stores" in specs:
        from stream.flink.store_sink import (
            Placement,
            StoreSettings,
            StoresSinkFactory,
            prepare_stores,
        )

        prepare_stores(StoreSettings.from_env())
        for factory in sinks:
            if isinstance(factory, StoresSinkFactory):
                factory.placement = Placement(rules, tuple(geo_paths(args)),
                                              enrich=not args.no_enrich)
    return sinks


def dedupe_key(value: tuple[str, str, int, bytes]) -> str:
    return value[0]


def session_group(value: tuple[str, str, int, bytes]) -> str:
    return value[1]


def sink_bucket(value: tuple[int, Any]) -> int:
    return value[0]


def kafka_source(args: argparse.Namespace, topics: str, msgpack: bool) -> Any:
    from pyflink.common.serialization import ByteArraySchema, SimpleStringSchema
    from pyflink.datastream.connectors.kafka import (
        KafkaOffsetResetStrategy,
        KafkaOffsetsInitializer,
        KafkaSource,
    )

    start = {
        "committed": KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST),
        "earliest": KafkaOffsetsInitializer.earliest(),
        "latest": KafkaOffsetsInitializer.latest(),
    }[args.start]
    builder = (KafkaSource.builder()
               .set_bootstrap_servers(args.kafka)
               .set_group_id(args.group_id)
               .set_starting_offsets(start)
               .set_value_only_deserializer(ByteArraySchema() if msgpack
                                            else SimpleStringSchema())
               # new raw.<category> topics are found without a restart
               .set_property("partition.discovery.interval.ms", "10000")
               .set_property("commit.offsets.on.checkpoint", "true"))
    if "," in topics:  # a list; a single name is a pattern that matches itself
        builder = builder.set_topics(*[t.strip() for t in topics.split(",") if t.strip()])
    else:
        builder = builder.set_topic_pattern(topics)
    if args.bounded:
        builder = builder.set_bounded(KafkaOffsetsInitializer.latest())
    return builder.build()


def file_source(path: Path) -> Any:
    from pyflink.datastream.connectors.file_system import FileSource, StreamFormat

    if not path.is_file():
        raise SystemExit(f"no such events file: {path}")
    return (FileSource.for_record_stream_format(StreamFormat.text_line_format(),
                                                str(path.resolve()))
            .process_static_file_set().build())


def submit(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``--remote``: hand this job to a cluster through Flink's own client (``flink run``,
    from the apache-flink wheel), which ships the job's Python code (``-pyfs``) and runs
    this module again as the client. Attached: returns when the job ends."""
    import subprocess  # nosec B404 - Flink's CLI with our own module

    import pyflink

    host, _, port = args.remote.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--remote: expected HOST:PORT, got {args.remote!r}")
    home = Path(pyflink.__file__).parent
    rest = list(argv)
    for flag in ("--remote", "--remote-python"):
        while flag in rest:
            at = rest.index(flag)
            del rest[at:at + 2]
        rest = [a for a in rest if not a.startswith(flag + "=")]
    command = ["bash", str(home / "bin" / "flink"), "run", "--jobmanager", f"{host}:{port}",
               "--python", str(Path(__file__).resolve()),
               "--pyClientExecutable", sys.executable,
               "--pyExecutable", args.remote_python,
               "--pyFiles", ",".join(str(ROOT / p) for p in JOB_PACKAGES),
               *rest]
    env = {**os.environ, "FLINK_HOME": str(home), "CEP_FLINK_SUBMITTED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    return subprocess.call(command, env=env)  # nosec B603


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.remote:
        return submit(args, argv)
    prepare_process_env()
    env = build(args)
    env.execute(args.job_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
