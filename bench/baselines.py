"""Baselines the forwarder is compared with, each run as its own process like the forwarder.

- ``batched`` (baseline A): the plain way with the same batches. confluent-kafka consumer, JSON decode,
  group per (trackingId, userId, sessionId), a group leaves when it holds 10 events or its first event
  has waited ``--linger-ms``; ``client.put_events`` from a ThreadPoolExecutor of ``--concurrency`` threads
  (boto3's default retries, its pool as large as the executor). Offsets are auto-committed.
- ``single`` (baseline B): one event per call, the way public connectors do it; same pool.
- ``transit``: the Kafka path alone, no PutEvents: consumes as the forwarder does (a poll, then what is
  queued behind it) and notes each event's delay from its ``sentAt`` to its arrival here; the ``done``
  line carries those delays (``delay_ms``, as the emulator reports them).
- ``ceiling``: no Kafka at all. Pre-built 10-event bodies, each request signed with botocore's
  ``SigV4Auth`` (signing name ``personalize``, a full ``AWSRequest``) and sent by ``--concurrency`` tasks
  over a pool of keep-alive connections — aiohttp's, or (``--client lean``) the forwarder's own HTTP/1.1
  client — on asyncio's loop or uvloop (the forwarder's).

All run until SIGTERM/SIGINT; the harness measures them from the outside (/proc, emulator counters).
At the end each prints one line to stderr: ``done: {...}`` with its own counts. Each mode imports only the
libraries it uses, so that its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from bench.workloads import CatchupTrace, session_key, wire_event

Key = tuple[str, str | None, str]


class Stop:
    """Set by SIGTERM/SIGINT."""

    def __init__(self) -> None:
        self.event = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.event.set())

    @property
    def requested(self) -> bool:
        return self.event.is_set()


def _client(endpoint: str, concurrency: int) -> Any:
    import boto3  # noqa: PLC0415 - not needed by the ceiling
    from botocore.config import Config  # noqa: PLC0415

    return boto3.session.Session().client(
        "personalize-events",
        region_name="us-east-1",
        endpoint_url=endpoint,
        config=Config(max_pool_connections=concurrency),
    )


def _consumer(args: argparse.Namespace) -> Any:
    from confluent_kafka import Consumer  # noqa: PLC0415

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
        }
    )

    def assigned(_consumer: Any, partitions: list[Any]) -> None:
        print(f"assigned {len(partitions)} partitions", file=sys.stderr, flush=True)

    consumer.subscribe([args.topic], on_assign=assigned)
    return consumer


def run_kafka_loop(args: argparse.Namespace, batched: bool) -> int:
    """Baseline A (``batched``) or B (one event per call) until stopped; then flush and wait."""
    stop = Stop()
    client = _client(args.endpoint, args.concurrency)
    pool = ThreadPoolExecutor(max_workers=args.concurrency)
    consumer = _consumer(args)
    max_events = args.max_events if batched else 1
    linger = args.linger_ms / 1000
    groups: dict[Key, list[dict[str, Any]]] = {}
    first_at: dict[Key, float] = {}
    pending: set[Future[None]] = set()
    counts = {"consumed": 0, "calls": 0, "failed_calls": 0}
    lock = threading.Lock()

    def put(key: Key, events: list[dict[str, Any]]) -> None:
        params: dict[str, Any] = {"trackingId": key[0], "sessionId": key[2], "eventList": events}
        if key[1] is not None:
            params["userId"] = key[1]
        try:
            client.put_events(**params)
        except Exception:
            with lock:
                counts["failed_calls"] += 1

    def submit(key: Key, events: list[dict[str, Any]]) -> None:
        while len(pending) >= 2 * args.concurrency:  # bound what is held in memory
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            pending.difference_update(done)
        pending.add(pool.submit(put, key, events))
        counts["calls"] += 1

    last_linger_check = 0.0
    while not stop.requested:
        messages = consumer.consume(1000, 0.05)
        now = time.monotonic()
        for msg in messages:
            if msg.error() is not None:
                continue
            counts["consumed"] += 1
            message = json.loads(msg.value())
            key = session_key(message, args.tracking_id)
            event = wire_event(message, f"{msg.topic()}:{msg.partition()}:{msg.offset()}")
            group = groups.get(key)
            if group is None:
                group = groups[key] = []
                first_at[key] = now
            group.append(event)
            if len(group) >= max_events:
                del groups[key], first_at[key]
                submit(key, group)
        if now - last_linger_check >= 0.01:
            last_linger_check = now
            for key in [k for k, t in first_at.items() if now - t >= linger]:
                del first_at[key]
                submit(key, groups.pop(key))
        pending.difference_update({f for f in pending if f.done()})
    for key, group in groups.items():
        submit(key, group)
    wait(pending, timeout=5)
    consumer.close()
    pool.shutdown(wait=False, cancel_futures=True)
    print(f"done: {json.dumps(counts)}", file=sys.stderr, flush=True)
    return 0


def run_transit(args: argparse.Namespace) -> int:
    """Produce→consume delays of a live topic, until stopped; nothing is sent anywhere."""
    from forwarder.emulator.service import DelayHistogram  # noqa: PLC0415 - the emulator's own quantiles

    stop = Stop()
    consumer = _consumer(args)
    delays = DelayHistogram()
    consumed = 0
    while not stop.requested:
        first = consumer.poll(0.05)
        if first is None:
            continue
        now_ms = time.time() * 1000
        for msg in [first, *consumer.consume(999, 0)]:
            if msg.error() is None:
                consumed += 1
                delays.add(now_ms - json.loads(msg.value())["sentAt"] * 1000)
    # Reported before closing: leaving the group may outlast the harness's grace period.
    print(
        f"done: {json.dumps({'consumed': consumed, 'delay_ms': delays.as_json()})}",
        file=sys.stderr,
        flush=True,
    )
    consumer.close()
    return 0


async def _ceiling(args: argparse.Namespace, stop: Stop) -> dict[str, int]:
    import aiohttp  # noqa: PLC0415
    from botocore.auth import SigV4Auth  # noqa: PLC0415
    from botocore.awsrequest import AWSRequest  # noqa: PLC0415
    from botocore.credentials import Credentials  # noqa: PLC0415

    bodies = CatchupTrace(1000, seed=args.seed).sample_bodies(args.bodies, args.tracking_id)
    url = args.endpoint.rstrip("/") + "/events"
    signer = SigV4Auth(Credentials("AKIDBENCHCEILING", "bench-secret-not-real"), "personalize", "us-east-1")
    counts = {"calls": 0, "failed_calls": 0}
    post: Callable[[bytes, dict[str, str]], Awaitable[int]]
    if args.client == "lean":  # the forwarder's own HTTP/1.1 client (forwarder/personalize/http.py)
        from forwarder.personalize.http import HttpClient  # noqa: PLC0415

        lean = HttpClient(args.endpoint, max_connections=args.concurrency, timeout_s=10.0)

        async def post_lean(body: bytes, headers: dict[str, str]) -> int:
            return (await lean.post("/events", body, headers)).status

        post = post_lean
    else:
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.concurrency), skip_auto_headers=("User-Agent",)
        )

        async def post_aiohttp(body: bytes, headers: dict[str, str]) -> int:
            async with http.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status

        post = post_aiohttp

    async def worker(first: int) -> None:
        i = first
        while not stop.requested:
            body = bodies[i % len(bodies)]
            i += args.concurrency
            request = AWSRequest(
                method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
            )
            signer.add_auth(request)
            counts["calls"] += 1
            try:
                if await post(body, dict(request.headers.items())) != 200:
                    counts["failed_calls"] += 1
            except (aiohttp.ClientError, OSError, TimeoutError):
                counts["failed_calls"] += 1

    await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
    if args.client != "lean":
        await http.close()
    return counts


def run_ceiling(args: argparse.Namespace) -> int:
    """Signed 10-event calls over a pooled aiohttp connection, no Kafka, until stopped."""
    stop = Stop()
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if args.loop == "uvloop":
        import uvloop  # noqa: PLC0415

        factory = uvloop.new_event_loop
    print("assigned (no Kafka)", file=sys.stderr, flush=True)
    with asyncio.Runner(loop_factory=factory) as runner:
        counts = runner.run(_ceiling(args, stop))
    print(f"done: {json.dumps(counts)}", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines", description=__doc__)
    parser.add_argument("mode", choices=("batched", "single", "transit", "ceiling"))
    parser.add_argument("--endpoint", required=True, help="the emulator, http://127.0.0.1:PORT")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tracking-id", default="bench-tracking")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (batched, single)")
    parser.add_argument("--topic")
    parser.add_argument("--group")
    parser.add_argument("--linger-ms", type=int, default=200)
    parser.add_argument("--max-events", type=int, default=10)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="ceiling's loop")
    parser.add_argument(
        "--client",
        choices=("aiohttp", "lean"),
        default="aiohttp",
        help="ceiling's HTTP client (lean: the forwarder's)",
    )
    parser.add_argument("--bodies", type=int, default=1000, help="distinct bodies the ceiling cycles through")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.mode == "ceiling":
        return run_ceiling(args)
    if not (args.bootstrap and args.topic and args.group):
        parser.error("--bootstrap, --topic and --group are needed for batched, single and transit")
    if args.mode == "transit":
        return run_transit(args)
    return run_kafka_loop(args, batched=args.mode == "batched")


if __name__ == "__main__":
    sys.exit(main())
