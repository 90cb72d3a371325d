"""Sample interaction events: realistic sessions for demos, local runs and the compose file.

``forwarder sample`` creates the topics if they do not exist, then produces events over many users and
sessions (as JSON, or with ``--format avro|protobuf|json_schema`` as records of the sample schemas, their
schema registered in the registry), with explicit impression lists and recommendationIds, keyed by session id so that a
session's events share a partition and keep their order.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

EVENT_TYPES = ("view", "click", "add-to-cart", "purchase")


def sample_events(
    count: int, sessions: int, seed: int = 42, start: float | None = None
) -> Iterator[dict[str, Any]]:
    """``count`` events over ``sessions`` sessions; about a third anonymous (no userId)."""
    rng = random.Random(seed)
    now = time.time() if start is None else start
    for i in range(count):
        s = rng.randrange(sessions)
        event: dict[str, Any] = {
            "sessionId": f"session-{s:05d}",
            "eventType": rng.choices(EVENT_TYPES, weights=(60, 25, 10, 5))[0],
            "itemId": f"item-{rng.randrange(1000):04d}",
            "sentAt": round(now + i * 0.01, 3),
            # String values: the sample schemas type properties as a map of strings, so a JSON run and an
            # Avro/Protobuf/JSON Schema run of the same seed deliver the same events.
            "properties": {"device": rng.choice(("web", "ios", "android")), "n": str(i)},
        }
        if s % 3:
            event["userId"] = f"user-{s:05d}"
        kind = rng.random()
        if kind < 0.3:
            event["impression"] = [f"item-{rng.randrange(1000):04d}" for _ in range(rng.randint(2, 25))]
        elif kind < 0.55:
            event["recommendationId"] = f"RID-{rng.getrandbits(48):012x}"
        elif kind < 0.65:
            event["impression"] = "|".join(f"item-{rng.randrange(1000):04d}" for _ in range(5))
            event["recommendationId"] = f"RID-{rng.getrandbits(48):012x}"
        if event["eventType"] == "purchase":
            event["eventValue"] = round(rng.uniform(5, 200), 2)
        yield event


def ensure_topics(bootstrap: str, topics: dict[str, int], timeout: float = 30) -> None:
    """Create the topics that do not exist yet (replication factor 1: for local use)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=timeout).topics
    missing = [
        NewTopic(name, num_partitions=n, replication_factor=1)
        for name, n in topics.items()
        if name not in existing
    ]
    if not missing:
        return
    for name, future in admin.create_topics(missing).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
        print(f"created topic {name}", file=sys.stderr)


def record_encoder(fmt: str, registry_url: str | None, topic: str) -> Callable[[dict[str, Any]], bytes]:
    """How a sample event becomes a message value: JSON, or a record of the sample schema serialized
    (and its schema registered) with confluent-kafka's serializer for ``fmt``.
    """
    if fmt == "json":
        return orjson.dumps
    if not registry_url:
        raise ValueError(f"--format {fmt} needs --schema-registry-url")
    from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415 - registry formats only
    from confluent_kafka.schema_registry.avro import AvroSerializer  # noqa: PLC0415
    from confluent_kafka.schema_registry.json_schema import JSONSerializer  # noqa: PLC0415
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer  # noqa: PLC0415
    from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: PLC0415

    from forwarder import sample_schemas  # noqa: PLC0415

    client = SchemaRegistryClient({"url": registry_url, "timeout": 10})
    serializer: Any
    if fmt == "avro":
        serializer = AvroSerializer(client, sample_schemas.avro_schema())
    elif fmt == "json_schema":
        serializer = JSONSerializer(sample_schemas.json_schema(), client)
    elif fmt == "protobuf":
        serializer = ProtobufSerializer(
            sample_schemas.proto_class(), client, {"use.deprecated.format": False}
        )
    else:
        raise ValueError(f"unknown format {fmt}")
    ctx = SerializationContext(topic, MessageField.VALUE)

    def encode(event: dict[str, Any]) -> bytes:
        value: bytes = serializer(sample_schemas.to_record(event, fmt), ctx)
        return value

    return encode


def produce_samples(
    bootstrap: str,
    topic: str,
    count: int,
    sessions: int,
    seed: int,
    encode: Callable[[dict[str, Any]], bytes] = orjson.dumps,
) -> int:
    """Produce the sample events (``encode`` makes each value); return how many the broker acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "enable.idempotence": True})
    acked = 0

    def delivered(err: object, _msg: object) -> None:
        nonlocal acked
        if err is None:
            acked += 1

    for event in sample_events(count, sessions, seed):
        while True:
            try:
                producer.produce(
                    topic, key=event["sessionId"].encode(), value=encode(event), on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    producer.flush(60)
    return acked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``forwarder sample``."""
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="interactions")
    parser.add_argument("--partitions", type=int, default=4, help="when the topic is created (default: 4)")
    parser.add_argument("--dead-letter-topic", help="also create this topic if missing")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--format",
        choices=("json", "avro", "protobuf", "json_schema"),
        default="json",
        help="json (default), or a record of the sample schema (forwarder/schemas/) through the registry",
    )
    parser.add_argument(
        "--schema-registry-url",
        help="Confluent-compatible registry for --format avro|protobuf|json_schema "
        "(scripts/schema-registry-local url)",
    )


def run(args: argparse.Namespace) -> int:
    """Create the topics and produce; exit 1 if not every event was acknowledged."""
    topics = {args.topic: args.partitions}
    if args.dead_letter_topic:
        topics[args.dead_letter_topic] = 1
    try:
        encode = record_encoder(args.format, args.schema_registry_url, args.topic)
    except ValueError as exc:
        print(f"forwarder sample: {exc}", file=sys.stderr)
        return 2
    ensure_topics(args.bootstrap_servers, topics)
    acked = produce_samples(args.bootstrap_servers, args.topic, args.events, args.sessions, args.seed, encode)
    kind = "" if args.format == "json" else f" {args.format}"
    print(f"produced {acked}{kind} sample events over {args.sessions} sessions to {args.topic}")
    return 0 if acked == args.events else 1
