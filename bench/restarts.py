"""``python -m bench.restarts``: what static membership (``group.instance.id``) changes when a replica
restarts, with both group protocols. Figures go to docs/operations.md ("Restarts and static membership").

For each protocol (``classic`` cooperative-sticky, KIP-848 ``consumer``), with and without a
``group.instance.id``, and for SIGTERM and SIGKILL: two replicas share a 4-partition topic fed at a steady
rate; replica ``a`` is stopped and started again at once (well within the 6 s session timeout). Measured:

- ``callbacks``: rebalance callbacks the *other* replica saw (assign, revoke, lost) — a rebalance there
  means its partitions moved or it paused for the group;
- ``stall``: the longest delivery delay of an event produced around the restart (the emulator's
  ``delay_ms`` max: accepted time minus the time the event was produced), minus the steady-state one;
- ``repeats``: events accepted twice.

Everything runs on loopback: its own Kafka (``scripts/kafka-local``), the emulator, the replicas; every
process it starts is stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from tests.harness import (
    REPO,
    EmulatorProcess,
    ForwarderConfig,
    ForwarderProcess,
    LocalKafka,
    create_topic,
    free_port,
    scrape,
    start_emulator,
    start_forwarder,
    unique,
    wait_for,
)
from tests.harness.emulator import http

RATE = 300  # events per second, over 200 sessions


class _Feed(threading.Thread):
    """Produces ``RATE`` events/s with unique ids and ``sentAt`` = now, until stopped."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True, name="feed")
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.topic = topic
        self.halt = threading.Event()
        self.count = 0

    def run(self) -> None:
        start = time.monotonic()
        while not self.halt.is_set():
            n = self.count
            session = f"s-{n % 200}"
            ev = {
                "eventId": f"e-{n}",
                "sessionId": session,
                "eventType": "view",
                "sentAt": round(time.time(), 3),
            }
            self.producer.produce(self.topic, key=session.encode(), value=json.dumps(ev).encode())
            self.count += 1
            if n % 20 == 0:
                self.producer.poll(0)
                ahead = start + n / RATE - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        self.producer.flush(30)


def _callbacks(port: int) -> float:
    metrics = scrape(port)
    return sum(v for k, v in metrics.items() if k.startswith("forwarder_rebalances_total"))


def scenario(bootstrap: str, work: Path, protocol: str, static: bool, sig: signal.Signals) -> dict[str, Any]:
    """One restart; the figures."""
    topic = create_topic(bootstrap, unique("restart"), partitions=4)
    dlq = create_topic(bootstrap, unique("restart-dlq"))
    emulator: EmulatorProcess = start_emulator(work)
    group = unique("g")
    base = ForwarderConfig(bootstrap, [topic], group, dlq, emulator.url, client={})
    if protocol == "classic":
        base.client = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 2000}
    ports = {"a": free_port(), "b": free_port()}

    def start(name: str, generation: int) -> ForwarderProcess:
        client = dict(base.client)
        if static:
            client["group.instance.id"] = f"{group}-{name}"
        cfg = dataclasses.replace(
            base,
            client=client,
            extra={
                "kafka": {"group_protocol": protocol},
                "observability": {"port": ports[name]},
                "logging": {"level": "WARNING"},
            },
        )
        return start_forwarder(work, cfg, name=f"{protocol}-{static}-{sig.name}-{name}-{generation}")

    feed = _Feed(bootstrap, topic)
    a, b = start("a", 0), start("b", 0)
    started = [a, b]
    try:
        feed.start()
        wait_for(lambda: emulator.stats()["accepted_events"] > RATE * 3, 60, what="traffic")
        time.sleep(8)  # both replicas settled with two partitions each
        steady = emulator.stats()["delay_ms"]["max"]
        reset = http(f"{emulator.url}/_emulator/reset", b"", method="POST")
        assert reset.status == 200, reset.body
        before = _callbacks(ports["b"])
        a.stop(sig, timeout=30)
        a = start("a", 1)
        started.append(a)
        time.sleep(20)  # past the session timeout: whatever rebalance comes, it has come
        stats = emulator.stats()
        callbacks = _callbacks(ports["b"]) - before
    finally:
        feed.halt.set()
        feed.join(30)
        for proc in started:
            proc.stop(signal.SIGTERM, timeout=30)
        emulator.stop()
    ids = Counter(str(ev.get("eventId")) for ev in emulator.events())
    return {
        "protocol": protocol,
        "static": static,
        "signal": sig.name,
        "callbacks": int(callbacks),
        "stall_ms": max(0, int(stats["delay_ms"]["max"] - steady)),
        "delay_max_ms": int(stats["delay_ms"]["max"]),
        "repeats": sum(c - 1 for c in ids.values() if c > 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.restarts", description=__doc__)
    parser.add_argument("--kafka-port", type=int, default=39192)
    parser.add_argument("--protocols", default="classic,consumer")
    args = parser.parse_args()
    data = REPO / ".local" / f"kafka-restarts-{args.kafka_port}"
    shutil.rmtree(data, ignore_errors=True)
    kafka = LocalKafka(args.kafka_port, data)
    bootstrap = kafka.start()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="restarts-") as work:
            for protocol in args.protocols.split(","):
                for static in (False, True):
                    for sig in (signal.SIGTERM, signal.SIGKILL):
                        row = scenario(bootstrap, Path(work), protocol, static, sig)
                        print(json.dumps(row), flush=True)
                        rows.append(row)
    finally:
        kafka.stop()
    print(
        "| protocol | group.instance.id | restart | other replica's rebalance callbacks | stall | repeats |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['protocol']} | {'set' if r['static'] else 'none'} | {r['signal']} | {r['callbacks']} "
            f"| {r['stall_ms'] / 1000:.1f} s | {r['repeats']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
