"""Kafka for the tests, the chaos run and the bench: a local broker run by scripts/kafka-local, topics,
producing and reading. Every wait is bounded; every client is closed."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.harness.processes import run_script, unique, wait_for


def local_script(name: str, command: str, env: dict[str, str], timeout: float = 600) -> str:
    """Run ``scripts/NAME COMMAND`` with ``env`` (kafka-local, schema-registry-local); its stdout, or an
    error with its stderr's tail."""
    return run_script(name, [command], env, timeout)


def kafka_script(command: str, env: dict[str, str], timeout: float = 600) -> str:
    """Run ``scripts/kafka-local COMMAND`` with ``env``."""
    return local_script("kafka-local", command, env, timeout)


def registry_script(command: str, env: dict[str, str]) -> str:
    """Run ``scripts/schema-registry-local COMMAND`` with ``env`` (the first run builds the registry from
    Maven Central, hence the long timeout)."""
    return local_script("schema-registry-local", command, env, timeout=900)


@dataclass
class LocalKafka:
    """A broker run by scripts/kafka-local on its own port and data directory, stopped by its pid.

    ``sasl_port`` adds a SASL/PLAIN listener. :meth:`stop` stops only a broker this object started (or
    one marked ``started_here``), and never raises: it runs on the way out of a test session or a run.
    """

    port: int
    data_dir: Path
    sasl_port: int | None = None
    started_here: bool = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment scripts/kafka-local runs with for this broker."""
        env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_DATA_DIR": str(self.data_dir),
            "PYTHON": sys.executable,
        }
        if self.sasl_port is not None:
            env["KAFKA_SASL_PORT"] = str(self.sasl_port)
        return env

    def start(self, timeout: float = 600) -> str:
        """Start it (bounded by ``timeout`` seconds); the bootstrap address the script printed."""
        out = kafka_script("start", self.env(), timeout)
        self.started_here = True
        return out.splitlines()[-1]

    def restart(self) -> None:
        """Stop and start on the same data directory (for fault injection)."""
        kafka_script("stop", self.env())
        kafka_script("start", self.env())

    def stop(self) -> None:
        if self.started_here:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                kafka_script("stop", self.env(), 60)
            self.started_here = False

    @property
    def pid(self) -> int | None:
        """The broker's pid while it runs."""
        try:
            pid = int((self.data_dir / "kafka.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def version(self) -> str:
        """The broker's version, from its log (``Kafka version: x.y.z``), else KAFKA_VERSION/default."""
        log = self.data_dir / "kafka.log"
        if log.exists():
            found: list[str] = re.findall(r"Kafka version: (\S+)", log.read_text(errors="replace"))
            if found:
                return found[-1]
        return os.environ.get("KAFKA_VERSION", "4.1.1")


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> str:
    """Create a topic and wait until its metadata shows every partition."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(30)

    def ready() -> bool:
        md = admin.list_topics(name, timeout=5).topics.get(name)
        return md is not None and md.error is None and len(md.partitions) == partitions

    wait_for(ready, 30, what=f"topic {name}")
    return name


def delete_topic(bootstrap: str, name: str) -> None:
    """Delete a topic and wait until it is gone."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([name])[name].result(30)
    wait_for(lambda: name not in admin.list_topics(timeout=5).topics, 30, what=f"{name} deleted")


Record = (
    tuple[bytes | None, bytes | None]
    | tuple[bytes | None, bytes | None, int]
    | tuple[bytes | None, bytes | None, int, list[tuple[str, str | bytes | None]]]
)


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[Record],
    headers: list[tuple[str, str | bytes | None]] | None = None,
) -> int:
    """Produce (key, value[, partition[, headers]]) records, wait for every acknowledgement; return the count."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    count = 0
    for record in records:
        kwargs: dict[str, Any] = {"key": record[0], "value": record[1], "on_delivery": delivered}
        if len(record) >= 3:
            kwargs["partition"] = record[2]
        own_headers = record[3] if len(record) == 4 else None
        if own_headers or headers:
            kwargs["headers"] = own_headers or headers
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    assert remaining == 0, f"{remaining} records not acknowledged"
    assert not failures, failures[:3]
    return count


def read_topic(bootstrap: str, topic: str, expect: int | None = None, timeout: float = 30) -> list[Any]:
    """Read a topic from the start, without a group commit: until ``expect`` messages, or until idle."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("reader"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in md.partitions])
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        idle_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.consume(1000, 0.2)
            got = [m for m in batch if m.error() is None]
            messages += got
            if got:
                idle_since = time.monotonic()
            if expect is not None and len(messages) >= expect:
                break
            if expect is None and time.monotonic() - idle_since > 2.0:
                break
        return messages
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset of each partition of a topic (-1001 when none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        tps = consumer.committed([TopicPartition(topic, p) for p in md.partitions], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def committed_metadata(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int, str]]:
    """The group's committed offset and commit metadata of each partition of a topic."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        tps = consumer.committed([TopicPartition(topic, p) for p in md.partitions], timeout=10)
        return {tp.partition: (tp.offset, tp.metadata or "") for tp in tps}
    finally:
        consumer.close()


def fully_committed(bootstrap: str, group: str, topic: str) -> bool:
    """Whether the group committed every partition to its end (an empty partition needs no commit)."""
    ends = end_offsets(bootstrap, topic)
    done = committed(bootstrap, group, topic)
    return all(max(done.get(p, 0), 0) == end for p, end in ends.items())


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The high watermark of each partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("wm")})
    try:
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions
        }
    finally:
        consumer.close()


def headers_dict(message: Any) -> dict[str, str]:
    """A message's headers as text."""
    return {k: (v or b"").decode("utf-8", "replace") for k, v in (message.headers() or [])}


def kafka_error_code(exc: KafkaException) -> int:
    """The librdkafka error code inside a KafkaException."""
    code: int = exc.args[0].code()
    return code
