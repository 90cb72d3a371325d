"""``python -m bench.commits``: what one offset commit costs, with and without the finished-offsets metadata.
Figures go to docs/operations.md ("Commit interval").

One consumer of a group commits 8 partitions synchronously (as the forwarder's committer does, in its
consumer thread), ``--commits`` times per metadata size: none, a typical finished set (~60 characters per
partition), and the largest the broker takes (4,095 characters per partition). Measured: the latency of a
commit call (p50, p99), and the broker's CPU time per commit (from /proc, Linux only). The broker load of
a deployment is then ``replicas / commit_interval`` commits per second.

Its own Kafka (``scripts/kafka-local``) on loopback; stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time

from confluent_kafka import Consumer, TopicPartition

from forwarder.commit_metadata import FinishedOffsets, encode
from tests.harness import REPO, LocalKafka, create_topic, unique

PARTITIONS = 8


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(kafka: LocalKafka, bootstrap: str, metadata: str, commits: int) -> dict[str, float]:
    """Synchronous commits of every partition with ``metadata``; latency and broker CPU per commit."""
    topic = create_topic(bootstrap, unique("commits"), partitions=PARTITIONS)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique("g"), "enable.auto.commit": False}
    )
    try:
        offsets = [TopicPartition(topic, p, 1, metadata=metadata) for p in range(PARTITIONS)]
        consumer.commit(offsets=offsets, asynchronous=False)  # the coordinator found, warmed up
        latencies = []
        cpu0, wall0 = _cpu_s(kafka.pid), time.perf_counter()
        for i in range(commits):
            offsets = [TopicPartition(topic, p, i + 2, metadata=metadata) for p in range(PARTITIONS)]
            start = time.perf_counter()
            consumer.commit(offsets=offsets, asynchronous=False)
            latencies.append(time.perf_counter() - start)
        wall, cpu = time.perf_counter() - wall0, _cpu_s(kafka.pid) - cpu0
    finally:
        consumer.close()
    latencies.sort()
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "commits_per_s": commits / wall,
        "broker_cpu_ms_per_commit": 1000 * cpu / commits,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.commits", description=__doc__)
    parser.add_argument("--kafka-port", type=int, default=39292)
    parser.add_argument("--commits", type=int, default=1000)
    args = parser.parse_args()
    data = REPO / ".local" / f"kafka-commits-{args.kafka_port}"
    shutil.rmtree(data, ignore_errors=True)
    kafka = LocalKafka(args.kafka_port, data)
    bootstrap = kafka.start()
    # A typical set: 40 finished offsets in 8 runs above the committed one; the largest: a bitset at the limit.
    typical = encode(1000, FinishedOffsets(tuple((1001 + 10 * i, 1006 + 10 * i) for i in range(8)))) or ""
    largest = "x" * 4095
    try:
        print(
            "| metadata per partition | commit p50 | commit p99 | commits/s (one client) | broker CPU per commit |"
        )
        print("|---|---|---|---|---|")
        for label, metadata in (("none", ""), (f"{len(typical)} chars", typical), ("4,095 chars", largest)):
            r = measure(kafka, bootstrap, metadata, args.commits)
            print(
                f"| {label} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['commits_per_s']:.0f} "
                f"| {r['broker_cpu_ms_per_commit']:.2f} ms |",
                flush=True,
            )
    finally:
        kafka.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
