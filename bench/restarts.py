"""``python -m bench.restarts``: what static membership (``group.instance.id``) changes when a replica
restarts, with both group protocols. Figures go to docs/operations.md ("Restarts and static membership").

For each protocol (``classic`` cooperative-sticky, KIP-848 ``consumer``), with and without a
``group.instance.id``, and for SIGTERM and SIGKILL: two replicas share a 4-partition topic fed at a steady
rate; replica ``a`` is stopped and started again at once (well within the 6 s session timeout). With
``--mode crash`` (issue #17, "What a crash costs"), ``a`` is SIGKILLed and *not* started again: the
other replica takes its partitions after the session timeout. Every replica runs the shipped defaults (no
session-timeout override; under KIP-848 the broker's ``group.consumer.session.timeout.ms``, which
scripts/kafka-local sets to 6 s). Measured:

- ``callbacks``: rebalance callbacks the *other* replica saw (assign, revoke, lost) — a rebalance there
  means its partitions moved or it paused for the group;
- ``stall``: the longest delivery delay of an event produced around the restart (the emulator's
  ``delay_ms`` max: accepted time minus the time the event was produced), minus the steady-state one;
  for a crash, ``worst_after_kill``: the longest produce-to-acceptance delay of the events produced after
  the kill (what an event stream sees);
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
import time
from collections import Counter
from pathlib import Path
from typing import Any

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
from tests.harness.stream import AcceptanceWatch, SteadyFeed, max_delay

RATE = 300  # events per second, over 200 sessions


def _callbacks(port: int) -> float:
    metrics = scrape(port)
    return sum(v for k, v in metrics.items() if k.startswith("forwarder_rebalances_total"))


class _Replicas:
    """Replicas ``a`` and ``b`` of one group, each with its metrics port; every one started is stopped."""

    def __init__(self, work: Path, base: ForwarderConfig, protocol: str, static: bool, label: str) -> None:
        self.work, self.base, self.protocol, self.static, self.label = work, base, protocol, static, label
        self.ports = {"a": free_port(), "b": free_port()}
        self.started: list[ForwarderProcess] = []

    def start(self, name: str, generation: int) -> ForwarderProcess:
        client = dict(self.base.client)
        if self.static:
            client["group.instance.id"] = f"{self.base.group}-{name}"
        cfg = dataclasses.replace(
            self.base,
            client=client,
            extra={
                "kafka": {"group_protocol": self.protocol},
                "observability": {"port": self.ports[name]},
                "logging": {"level": "WARNING"},
            },
        )
        proc = start_forwarder(self.work, cfg, name=f"{self.label}-{name}-{generation}")
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            proc.stop(signal.SIGTERM, timeout=30)


def scenario(
    bootstrap: str, work: Path, protocol: str, static: bool, sig: signal.Signals, crash: bool = False
) -> dict[str, Any]:
    """One restart (or, with ``crash``, one SIGKILL without a restart); the figures."""
    topic = create_topic(bootstrap, unique("restart"), partitions=4)
    dlq = create_topic(bootstrap, unique("restart-dlq"))
    emulator: EmulatorProcess = start_emulator(work)
    base = ForwarderConfig(bootstrap, [topic], unique("g"), dlq, emulator.url, client={})  # shipped defaults
    replicas = _Replicas(work, base, protocol, static, f"{protocol}-{static}-{sig.name}-{crash}")
    feed = SteadyFeed(bootstrap, topic, rate=RATE)
    watch = AcceptanceWatch(emulator.record)
    a = replicas.start("a", 0)
    replicas.start("b", 0)
    port_b = replicas.ports["b"]
    try:
        watch.start()
        feed.start()
        wait_for(lambda: emulator.stats()["accepted_events"] > RATE * 3, 60, what="traffic")
        time.sleep(8)  # both replicas settled with two partitions each
        steady = emulator.stats()["delay_ms"]["max"]
        reset = http(f"{emulator.url}/_emulator/reset", b"", method="POST")
        assert reset.status == 200, reset.body
        before = _callbacks(port_b)
        settled_at = time.time()
        a.stop(sig, timeout=30)
        stopped_at = time.time()
        if not crash:
            replicas.start("a", 1)
        time.sleep(20)  # past the session timeout: whatever rebalance comes, it has come
        stats = emulator.stats()
        callbacks = _callbacks(port_b) - before
        feed.stop()
        wait_for(lambda: set(feed.produced) <= set(watch.accepted), 60, interval=0.5, what="every event")
    finally:
        feed.stop()
        watch.stop()
        replicas.stop_all()
        emulator.stop()
    ids = Counter(str(ev.get("eventId")) for ev in emulator.events())
    return {
        "protocol": protocol,
        "static": static,
        "signal": sig.name,
        "restarted": not crash,
        "callbacks": int(callbacks),
        "stall_ms": max(0, int(stats["delay_ms"]["max"] - steady)),
        "delay_max_ms": int(stats["delay_ms"]["max"]),
        "worst_after_kill_ms": int(max_delay(feed, watch, stopped_at) * 1000),
        # events produced 7 to 2 s before the kill (all accepted before it): the stream without a crash
        "steady_max_ms": int(max_delay(feed, watch, settled_at - 7, settled_at - 2) * 1000),
        "repeats": sum(c - 1 for c in ids.values() if c > 1),
    }


def _table(rows: list[dict[str, Any]], crash: bool) -> str:
    if crash:
        lines = [
            "| protocol | group.instance.id | worst delay after the kill | steady worst delay | other "
            "replica's rebalance callbacks | repeats |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['protocol']} | {'set' if r['static'] else 'none'} | {r['worst_after_kill_ms'] / 1000:.1f} s "
            f"| {r['steady_max_ms'] / 1000:.1f} s | {r['callbacks']} | {r['repeats']} |"
            for r in rows
        ]
        return "\n".join(lines)
    lines = [
        "| protocol | group.instance.id | restart | other replica's rebalance callbacks | stall | repeats |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['protocol']} | {'set' if r['static'] else 'none'} | {r['signal']} | {r['callbacks']} "
        f"| {r['stall_ms'] / 1000:.1f} s | {r['repeats']} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.restarts", description=__doc__)
    parser.add_argument("--kafka-port", type=int, default=39192)
    parser.add_argument("--protocols", default="classic,consumer")
    parser.add_argument(
        "--mode",
        choices=["restart", "crash"],
        default="restart",
        help="restart: stop a replica and start it again (SIGTERM and SIGKILL); crash: SIGKILL it for good",
    )
    args = parser.parse_args()
    data = REPO / ".local" / f"kafka-restarts-{args.kafka_port}"
    shutil.rmtree(data, ignore_errors=True)
    kafka = LocalKafka(args.kafka_port, data)
    bootstrap = kafka.start()
    rows = []
    crash = args.mode == "crash"
    signals = (signal.SIGKILL,) if crash else (signal.SIGTERM, signal.SIGKILL)
    try:
        with tempfile.TemporaryDirectory(prefix="restarts-") as work:
            for protocol in args.protocols.split(","):
                for static in (False, True):
                    for sig in signals:
                        row = scenario(bootstrap, Path(work), protocol, static, sig, crash)
                        print(json.dumps(row), flush=True)
                        rows.append(row)
    finally:
        kafka.stop()
    print(_table(rows, crash))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
