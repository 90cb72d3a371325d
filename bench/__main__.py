"""``python -m bench`` (or ``bench/run``): every system side by side in one run, one table.

Starts a dedicated Kafka (scripts/kafka-local on ``--kafka-port``, data under .local/bench-kafka),
produces the catch-up backlog once (kept between invocations: same seed, same topic), then measures, each
against a fresh emulator at 0 and 30 ms: the ceiling (signed calls, no Kafka), the forwarder with the
``fast`` and ``boto3`` transports, baseline A (boto3, same batches) and baseline B (one event per call),
on the catch-up backlog and on a live trace produced at a set rate. Prints the table and the target checks,
writes docs/benchmarks.md, and stops every process it started (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version
from pathlib import Path
from types import FrameType

import orjson
import yaml
from confluent_kafka import Producer, libversion

from bench.procs import BenchError, Registry
from bench.report import Row, bounds, targets, text_table, write_doc
from bench.runs import Bench, System
from bench.workloads import CatchupTrace, LiveTrace
from forwarder.config import Config
from forwarder.consume import consumer_config
from tests.harness import REPO, LocalKafka

FORWARDER_FAST = System("forwarder fast", "forwarder", transport="fast")
FORWARDER_BOTO3 = System("forwarder boto3", "forwarder", transport="boto3")
# The same backlog as Avro records of the sample schema through a local schema registry (issue #12).
FORWARDER_AVRO = System("forwarder avro", "forwarder", transport="fast", input="avro")
BASELINE_A = System("baseline A", "batched")
BASELINE_B = System("baseline B", "single")
TRANSIT = System("Kafka path alone", "transit")
CEILING = System("ceiling aiohttp+uvloop", "ceiling", loop="uvloop")  # the forwarder's loop and client
CEILING_ASYNCIO = System("ceiling aiohttp", "ceiling")
CEILING_LEAN = System("ceiling lean+uvloop", "ceiling", loop="uvloop", client="lean")
TRACKING_ID = "bench-tracking"
DEAD_LETTER = "bench-dead-letter"


@dataclass(frozen=True)
class Plan:
    """Sizes and durations of one invocation."""

    backlog: int  # catch-up backlog; the forwarder (fast, 30 ms) goes through all of it: the RSS run
    active_sessions: int
    cap_s: float  # window of the other catch-up runs
    cap_b_s: float  # baseline B's window
    live_rate: float
    live_s: float
    live_low_rate: float  # a second live run of the forwarder (fast) at a rate this machine sustains
    live_low_s: float
    ceiling_s: float
    latencies: tuple[float, ...]
    target_latency: float  # the latency the targets are checked at
    full_latency: float  # the latency of the whole-backlog run (the forwarder, fast transport)
    full_cap_s: float  # the whole-backlog run stops here if it has not finished
    warmup_s: float  # catch-up windows open this long after the first accepted event
    warmup_live_s: float  # Kafka's warm-up: a live trace produced and consumed before any run


FULL = Plan(1_000_000, 256, 15, 8, 5000, 30, 2000, 20, 8, (0, 30), 30, 0, 200, 3, 10)
QUICK = Plan(60_000, 256, 4, 3, 5000, 6, 2000, 6, 3, (30,), 30, 30, 60, 2, 4)


class Progress:
    """One line per phase, with the time since the start."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {message}", flush=True)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def avro_encoder(registry_url: str, topic: str) -> Callable[[bytes], bytes]:
    """A trace message's JSON value as an Avro record of the sample schema (property values as strings,
    as the schema types them), its schema registered: the Avro twin of the JSON backlog."""
    from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415 - Avro rows only
    from confluent_kafka.schema_registry.avro import AvroSerializer  # noqa: PLC0415
    from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: PLC0415

    from forwarder import sample_schemas  # noqa: PLC0415

    serializer = AvroSerializer(SchemaRegistryClient({"url": registry_url}), sample_schemas.avro_schema())
    ctx = SerializationContext(topic, MessageField.VALUE)

    def encode(value: bytes) -> bytes:
        out: bytes = serializer(sample_schemas.to_record(orjson.loads(value), "avro"), ctx)
        return out

    return encode


def produce_backlog(
    bench: Bench, trace: CatchupTrace, topic: str, encode: Callable[[bytes], bytes] | None = None
) -> str:
    """The backlog topic: reused when it already holds exactly this trace, else (re)created and filled
    (``encode`` turns each JSON value into another format)."""
    size = bench.topic_size(topic)
    if size == trace.events:
        return f"reused topic {topic} ({size:,} events)"
    if size is not None:
        bench.delete_topics([topic])
        time.sleep(1)
    bench.create_topic(topic)
    producer = Producer(
        {
            "bootstrap.servers": bench.kafka.bootstrap,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    produce = producer.produce
    for n, (key, value) in enumerate(trace.messages(), 1):
        while True:
            try:
                produce(
                    topic, key=key, value=value if encode is None else encode(value), on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.05)
        if n % 20_000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    if left or failures:
        raise BenchError(f"producing the backlog failed: {left} unacknowledged, {failures[:3]}")
    return f"produced {trace.events:,} events over {trace.sessions:,} sessions into {topic}"


def _frame(frame: str) -> tuple[str, str]:
    """(function, module path) of one py-spy frame ``name (path:line)``, paths shortened."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return name, path.replace(str(REPO) + "/", "")


# Stages of the forwarder, by a frame that marks them (the first rule that matches a stack wins).
PROFILE_STAGES = (
    ("consumer thread: librdkafka consume", "KafkaConsumer._consume"),
    ("take: decode + validate", "Decoder.decode"),
    ("take: batch + offset tracking", "Pump.take"),
    ("send: SigV4 signing", "botocore/auth.py"),
    ("send: SigV4 signing", "forwarder/personalize/signing.py"),
    ("send: HTTP client (request, response callbacks)", "forwarder/personalize/http.py"),
    ("send: HTTP client (request, response callbacks)", "aiohttp/"),
    ("send: retries, limiter, bookkeeping", "forwarder/send.py"),
    ("send: after the call (offsets, metrics)", "Dispatcher._send"),
    ("ticker: due batches, commits, metrics", "Ticker.tick"),
    ("event loop itself (uvloop, C)", "event loop itself"),
    ("executor threads", "concurrent/futures"),
)


def summarize_profile(raw: Path, top: int = 15) -> str:
    """From py-spy's ``raw`` output (collapsed stacks): the top functions by own time, own time by
    module, and samples by stage of the forwarder."""
    own: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        name, path = frames[-1]
        if (name, path) == ("Runner.run", "asyncio/runners.py"):  # below it only uvloop's C code runs
            name, path = "event loop itself", "uvloop, C"
        leaf = f"{name} ({path})"
        own[leaf] += n
        modules[path.split("/")[0] if "/" in path and not path.startswith("forwarder") else path] += n
        text = ";".join(f"{fn} ({p})" for fn, p in frames[:-1]) + ";" + leaf
        stages[next((stage for stage, mark in PROFILE_STAGES if mark in text), "other")] += n
        total += n
    if not total:
        return "(no samples)"

    def pct(samples: int) -> str:
        return f"{100 * samples / total:5.1f}%"

    lines = [f"{total:,} samples (100 Hz; threads waiting in C or on I/O are not sampled)", ""]
    lines.append("samples by stage:")
    lines += [f"{pct(n)}  {name}" for name, n in stages.most_common()]
    lines += ["", f"top {top} functions by own time:"]
    lines += [f"{pct(n)}  {name}" for name, n in own.most_common(top)]
    lines += ["", "own time by module (packages folded):"]
    lines += [f"{pct(n)}  {name}" for name, n in modules.most_common(12)]
    return "\n".join(lines)


def forwarder_revision() -> str:
    """The commit the measured code is at, and whether forwarder/ had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "forwarder"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + (" (forwarder/ has uncommitted changes)" if dirty else "")


def machine_facts(kafka: LocalKafka) -> list[tuple[str, str]]:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("nproc", str(os.cpu_count())),
        ("CPU", model),
        ("memory", f"{mem_gib:.0f} GiB"),
        ("kernel", platform.release()),
        ("python", platform.python_version()),
        ("Kafka", f"{kafka.version()} (scripts/kafka-local, KRaft, one JVM)"),
        (
            "clients",
            f"confluent-kafka {version('confluent-kafka')} (librdkafka {libversion()[0]}), "
            f"boto3 {version('boto3')}, botocore {version('botocore')}, aiohttp {version('aiohttp')}, "
            f"uvloop {version('uvloop')}",
        ),
        ("forwarder code", forwarder_revision()),
        ("load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, 30 ms only (~1–2 minutes)")
    parser.add_argument("--kafka-port", type=int, default=int(os.environ.get("KAFKA_PORT", "29092")))
    parser.add_argument(
        "--kafka-data-dir",
        type=Path,
        default=Path(os.environ.get("KAFKA_DATA_DIR", REPO / ".local" / "bench-kafka")),
    )
    parser.add_argument("--fresh", action="store_true", help="wipe the bench Kafka's data directory first")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="PutEvents calls at once, for every system"
    )
    parser.add_argument(
        "--linger-ms", type=int, default=200, help="batching.linger_ms (forwarder, baseline A)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the forwarder (fast) in the whole-backlog run"
    )
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md", help="where to write")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    parser.add_argument(
        "--only", metavar="REGEX", help="only the runs whose tag matches (e.g. 'live|ceiling')"
    )
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="forwarder configuration for every forwarder run, dotted (backpressure.max_buffered_events=5000, "
        "kafka.client.fetch.wait.max.ms=100); VALUE is YAML",
    )
    parser.add_argument(
        "--forwarder-launcher",
        type=Path,
        metavar="SCRIPT",
        help="run SCRIPT instead of `-m forwarder` (same arguments), to measure a change before making it",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RUN_DIR",
        help="measure nothing: print and write the results of an earlier run (.local/bench/<time>)",
    )
    parser.add_argument("--keep-kafka", action="store_true", help="leave the bench Kafka running at the end")
    parser.add_argument(
        "--schema-registry-port",
        type=int,
        default=18091,
        help="port of the schema registry the Avro row starts (scripts/schema-registry-local)",
    )
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Planned:
    """One run of the plan: its tag (for --only), what the progress line says, and how to run it."""

    tag: str
    title: str
    run: Callable[[], Row]


def start_schema_registry(bench: Bench, port: int) -> tuple[str, dict[str, str]]:
    """scripts/schema-registry-local on ``port`` (data under the run directory): its URL and env."""
    env = {
        **os.environ,
        "SCHEMA_REGISTRY_PORT": str(port),
        "SCHEMA_REGISTRY_DATA_DIR": str(bench.run_dir / "registry"),
    }
    out = subprocess.run(
        [str(REPO / "scripts" / "schema-registry-local"), "start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if out.returncode != 0:
        raise BenchError(f"the schema registry did not start: {out.stderr[-500:]}")
    return out.stdout.strip().splitlines()[-1], env


def plan_runs(
    bench: Bench, plan: Plan, topic: str, backlog: CatchupTrace, live: list[LiveTrace], avro_topic: str
) -> list[Planned]:
    """Every run, in the order they go: ceilings, catch-up (whole-backlog run first), live."""
    runs: list[Planned] = []
    for latency in plan.latencies:
        extra = (CEILING_ASYNCIO, CEILING_LEAN) if latency == plan.target_latency else ()
        for system in (CEILING, *extra):
            runs.append(
                Planned(
                    f"ceiling-{latency:g}ms-{system.slug}",
                    f"ceiling at {latency:g} ms: {system.name}, {plan.ceiling_s:g}s",
                    partial(bench.ceiling_run, system, latency, plan.ceiling_s, 10.0),
                )
            )
    for latency in sorted(plan.latencies, key=lambda lat: lat != plan.full_latency):
        for system in (FORWARDER_FAST, FORWARDER_AVRO, FORWARDER_BOTO3, BASELINE_A, BASELINE_B):
            whole = system == FORWARDER_FAST and latency == plan.full_latency
            cap = plan.full_cap_s if whole else plan.cap_b_s if system == BASELINE_B else plan.cap_s
            what = f"whole backlog (≤{cap:g}s)" if whole else f"{cap:g}s window"
            source = avro_topic if system.input == "avro" else topic
            run = partial(
                bench.catchup_run,
                system,
                latency,
                source,
                plan.backlog,
                backlog.best_mean,
                cap,
                plan.warmup_s,
            )
            runs.append(
                Planned(
                    f"catchup-{latency:g}ms-{system.slug}",
                    f"catch-up at {latency:g} ms: {system.name}, {what}",
                    run,
                )
            )
    latency = plan.target_latency
    for trace in live:
        live_systems = (
            [FORWARDER_FAST, FORWARDER_BOTO3, BASELINE_A, TRANSIT] if trace is live[0] else [FORWARDER_FAST]
        )
        for system in live_systems:
            runs.append(
                Planned(
                    f"live{trace.rate:g}-{latency:g}ms-{system.slug}",
                    f"live at {latency:g} ms: {system.name}, {trace.rate:,.0f} events/s for {trace.duration:g}s",
                    partial(bench.live_run, system, latency, trace, 5.0),
                )
            )
    return runs


def describe(args: argparse.Namespace, plan: Plan, backlog: CatchupTrace, live: list[LiveTrace]) -> list[str]:
    """The workloads, for docs/benchmarks.md."""
    linger = args.linger_ms / 1000
    out = [
        f"catch-up: {plan.backlog:,} events over {backlog.sessions:,} sessions of {backlog.min_len}–"
        f"{backlog.max_len} events, {plan.active_sessions} sessions open at a time (a session of 30 events "
        f"spans ~{30 * plan.active_sessions:,} positions of the stream), keyed by session id over 8 partitions, "
        f"seed {backlog.seed}; best possible {backlog.best_mean:.2f} events/call (Σ events ÷ Σ ⌈session ÷ 10⌉). "
        f"The forwarder (fast) at {plan.full_latency:g} ms reads all of it: that run is also the memory run "
        "((a) and (c) combined, to stay within 10 minutes). The other catch-up runs measure a "
        f"{plan.cap_s:g}s window (baseline B {plan.cap_b_s:g}s); every window opens {plan.warmup_s:g}s after "
        "the first accepted event.",
    ]
    for trace in live:
        best = trace.best_mean(linger)
        out.append(
            f"live {trace.rate / 1000:g}k/s: {len(trace.events):,} events at {trace.rate:,.0f}/s for "
            f"{trace.duration:g}s, in bursts of {trace.burst_min}–{trace.burst_max} events ~{trace.burst_gap_ms:g} "
            f"ms apart, over {trace.sessions:,} sessions (~{trace.events_per_minute:g} events per session per "
            f"minute), seed {trace.seed}, sentAt = produce time; best possible {best:.2f} events/call for linger "
            f"{args.linger_ms} ms (≈{trace.rate / best:,.0f} calls/s)."
        )
    out.append(
        "live, both rates: the window runs from 2s into production to its end; ev/call and latency count every "
        "event of the run (the harness waits up to 5s for the rest to arrive). ev/call can pass 100% of best: "
        "the forwarder's effective wait is linger plus its tick and Kafka's fetch batching. The 5k/s rate is "
        "the issue's (half the event quota, about the call quota); 2k/s is one this machine sustains with room "
        "to spare, to show latency without CPU contention."
    )
    defaults = Config.model_validate(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"]},
            "personalize": {"tracking_id": "t"},
            "dead_letter": {"topic": "d"},
        }
    )
    librdkafka = consumer_config(defaults.kafka)
    own = {k: v for k, v in librdkafka.items() if "." in k and k not in {"bootstrap.servers", "group.id"}}
    out.append(
        f"concurrency {args.concurrency} for every system; batching.linger_ms {args.linger_ms}; the forwarder "
        f"otherwise at its defaults (backpressure.max_buffered_events {defaults.backpressure.max_buffered_events:,}, "
        f"kafka.poll_batch_size {defaults.kafka.poll_batch_size:,}, consumer properties it sets: "
        + ", ".join(f"{k}={v}" for k, v in own.items())
        + ")"
        + (f"; overrides: {', '.join(args.set)}" if args.set else "")
        + "."
    )
    return out


METHOD = [
    "Each run gets a fresh emulator process (`forwarder emulator`) and a fresh consumer group. Rates are "
    "deltas of the emulator's `accepted_*` counters over the window; CPU is utime+stime of the process (all threads) from /proc/<pid>/stat over "
    "the window; peak RSS is VmHWM at the end of the window.",
    "Latency p50/p99: the emulator's `delay_ms` (time the call was accepted, after its injected latency, "
    "− the event's sentAt; 1 ms buckets, a quantile is its bucket's upper edge) over the whole live run.",
    "emulator/Kafka cores: average cores those processes used during the window. other cores: busy CPU of "
    "the machine that no process of the run used (other users' tests, py-spy, the kernel). The two cores are "
    "shared by Kafka, the emulator, the harness and the measured process, so compare rows of one run (the "
    "× A column) rather than absolute numbers; rows with other cores above ~0.3 were disturbed.",
    "Repeatability, observed while building the harness: on a quiet machine (other cores ~0) CPU per "
    "event moved by up to ~25% between runs an hour apart, and so did the ceiling, which runs no project "
    "code (0.30–0.41 s/10k events at 0 ms): this VM's host varies. Runs during other users' test suites "
    "moved by up to 40% more (other cores shows it; steal is noted when the host takes ≥0.05 cores). So "
    "read the × A column and rows of one run against each other; treat a target within ~10% as unsettled.",
    "Baselines (`bench/baselines.py`): stdlib json decode, a boto3 client with max_pool_connections = "
    "concurrency and its default retries, a ThreadPoolExecutor of that size, auto-commit. Ceiling: "
    "pre-built 10-event bodies signed per request with botocore's SigV4Auth (a full AWSRequest) and sent "
    "by aiohttp, or by the forwarder's own HTTP client (`lean`), no Kafka. Kafka path alone: the live "
    "trace read by a plain consumer that polls as the forwarder does and sends nothing; its p50/p99 are "
    "its arrival time − sentAt, so they bound what any consumer of that topic can do on this machine.",
]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    progress = Progress()
    if args.render is not None:
        render(args.render, None if args.no_doc else args.doc, progress)
        return 0
    for signum in (signal.SIGTERM, signal.SIGINT):  # also when started with SIGINT ignored (`cmd &`)
        signal.signal(signum, _interrupt)
    run_dir = REPO / ".local" / "bench" / datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry()
    kafka = LocalKafka(args.kafka_port, args.kafka_data_dir)
    if args.fresh and args.kafka_data_dir.exists():
        kafka.started_here = True  # a broker left running on the bench's own data (--keep-kafka)
        kafka.stop()
        shutil.rmtree(args.kafka_data_dir)
    bench = Bench(
        registry=registry,
        kafka=kafka,
        run_dir=run_dir,
        concurrency=args.concurrency,
        linger_ms=args.linger_ms,
        tracking_id=TRACKING_ID,
        dead_letter=DEAD_LETTER,
        progress=progress,
        overrides={k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.set)},
        launcher=args.forwarder_launcher,
    )
    if args.profile:
        bench.profile_for = f"catchup-{plan.full_latency:g}ms-{FORWARDER_FAST.slug}"
        bench.profile_out = run_dir / "profile.txt"
    backlog = CatchupTrace(plan.backlog, active=plan.active_sessions)
    topic = f"bench-catchup-{plan.backlog}-seed{backlog.seed}-a{plan.active_sessions}"
    live = [LiveTrace(plan.live_rate, plan.live_s), LiveTrace(plan.live_low_rate, plan.live_low_s)]
    rows: list[Row] = []
    facts: list[tuple[str, str]] = []
    registry_env: dict[str, str] | None = None
    avro = f"{topic}-avro-{run_dir.name}"  # the backlog as Avro records, for the Avro row
    avro_made = False
    try:
        progress(f"starting Kafka on {kafka.bootstrap} (data {kafka.data_dir}); logs in {run_dir}")
        try:
            kafka.start(timeout=240)
        except RuntimeError as exc:
            raise BenchError(str(exc)) from None
        facts = machine_facts(kafka)
        progress(f"Kafka {kafka.version()} ready (pid {kafka.pid})")
        bench.create_topic(DEAD_LETTER, 1)
        progress(produce_backlog(bench, backlog, topic))
        progress(bench.warm_up(topic, plan.backlog, plan.live_rate, plan.warmup_live_s))
        planned_runs = [
            p
            for p in plan_runs(bench, plan, topic, backlog, live, avro)
            if not args.only or re.search(args.only, p.tag)
        ]
        if any(FORWARDER_AVRO.slug in p.tag for p in planned_runs):
            url, registry_env = start_schema_registry(bench, args.schema_registry_port)
            bench.schema_registry_url = url
            progress(f"schema registry at {url}")
            # A registry keeps nothing between starts: this run's own Avro topic, deleted at the end.
            avro_made = True
            progress(produce_backlog(bench, backlog, avro, avro_encoder(url, avro)))
        for planned in planned_runs:
            progress(planned.title)
            row = planned.run()
            rows.append(row)
            progress(
                f"  {row.events_per_s:,.0f} events/s, {row.calls_per_s:,.0f} calls/s, "
                f"{row.mean_batch or 0:.2f} ev/call, CPU {row.cpu_per_10k or 0:.2f} s/10k ev, "
                f"other load {row.other_cores or 0:.2f} cores"
            )
    except KeyboardInterrupt:
        progress("interrupted: stopping everything")
        return 130
    except BenchError as exc:
        progress(f"failed: {exc}")
        return 1
    finally:
        registry.stop_all()
        if avro_made:
            with contextlib.suppress(Exception):
                bench.delete_topics([avro])
        if registry_env is not None:
            with contextlib.suppress(Exception):
                subprocess.run(
                    [str(REPO / "scripts" / "schema-registry-local"), "stop"],
                    env=registry_env,
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
        if not args.keep_kafka:
            with contextlib.suppress(Exception):
                kafka.stop()
        progress("stopped every process started")

    kinds = {"catch-up": 0, "live": 1, "ceiling": 2}
    rows.sort(key=lambda r: (kinds[r.workload.split()[0]], r.latency_ms))  # stable: live keeps run order
    results = {
        "command": "python -m bench"
        + (" " + shlex.join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "facts": facts,
        "parameters": describe(args, plan, backlog, live),
        "rows": [asdict(row) for row in rows],
        "linger_ms": args.linger_ms,
        "target_latency": plan.target_latency,
        "live_workload": f"live {plan.live_rate / 1000:g}k/s",
        "backlog": plan.backlog,
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    render(run_dir, None if args.no_doc or args.only else args.doc, progress)
    return 0


def render(run_dir: Path, doc: Path | None, progress: Callable[[str], None]) -> None:
    """Print the table, the targets and the profile of a run (``results.json``, ``profile.txt``) and
    write them to ``doc``; ``--render`` redoes this for an earlier run without measuring again."""
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    rows = [Row(**row) for row in results["rows"]]
    checks = targets(
        rows, results["linger_ms"], results["target_latency"], results["live_workload"], results["backlog"]
    )
    print()
    print(text_table(rows))
    print()
    for check in checks:
        print(check.line())
    misses = bounds(rows, results["linger_ms"], results["target_latency"], results["live_workload"])
    for miss in misses:
        print(f"\n{miss}")
    raw = run_dir / "profile.txt"
    profile = summarize_profile(raw) if raw.exists() else None
    if profile:
        print()
        print(profile)
    if doc is not None:
        write_doc(
            doc,
            command=results["command"],
            facts=[tuple(fact) for fact in results["facts"]],
            parameters=results["parameters"],
            rows=rows,
            checks=checks,
            misses=misses,
            method=METHOD,
            profile=profile,
        )
        progress(f"wrote {doc}")


if __name__ == "__main__":
    sys.exit(main())
