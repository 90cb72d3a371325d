"""Sample records: realistic sessions for demos, local runs and the compose file.

``forwarder sample`` creates the topics if they do not exist, then produces events over many users and
sessions (as JSON, or with ``--format avro|protobuf|json_schema`` as records of the sample schemas, their
schema registered in the registry), with explicit impression lists and recommendationIds, keyed by session id so that a
session's events share a partition and keep their order.

With ``--operation items|users|actions|action_interactions`` it produces what those routes read instead:
catalogue records (items, users, actions) keyed by their id, with snake_case metadata fields as a
producer's own schema would have them (the decoders write them camelCase), some ids updated more than
once so per-id order matters; or action interactions over sessions, keyed by session id.
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
OPERATIONS = ("events", "items", "users", "actions", "action_interactions")
ACTION_EVENT_TYPES = ("Viewed", "Taken", "Not Taken")


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


def _revisions(count: int, rng: random.Random) -> Iterator[tuple[int, int]]:
    """``count`` (record number, catalogue entry) pairs over ``max(1, count * 4 // 5)`` entries: the first
    ones each once, the last fifth updates of entries drawn from ``rng`` (drawn when the pair is taken, so
    the caller's own draws interleave the same way)."""
    distinct = max(1, count * 4 // 5)
    for i in range(count):
        yield i, (i if i < distinct else rng.randrange(distinct))


def sample_items(count: int, seed: int = 42, start: float | None = None) -> Iterator[dict[str, Any]]:
    """``count`` item updates over ``max(1, count * 4 // 5)`` items: a fifth are later updates of an item."""
    rng = random.Random(seed)
    now = time.time() if start is None else start
    for i, n in _revisions(count, rng):
        yield {
            "itemId": f"item-{n:04d}",
            "category_l1": rng.choice(("shoes", "shirts", "books", "games")),
            "genres": rng.sample(("Horror", "Action", "Comedy", "Drama", "Kids"), rng.randint(1, 3)),
            "price": round(rng.uniform(2, 300), 2),
            "in_stock": rng.random() < 0.9,
            "creation_timestamp": int(now) - rng.randrange(86400 * 365),
            "description": f"Sample item {n}, revision {i}",
        }


def sample_users(count: int, seed: int = 42) -> Iterator[dict[str, Any]]:
    """``count`` user profile updates over ``max(1, count * 4 // 5)`` users."""
    rng = random.Random(seed)
    for _, n in _revisions(count, rng):
        yield {
            "userId": f"user-{n:05d}",
            "membership_level": rng.choice(("free", "silver", "gold")),
            "age_band": rng.choice(("18-24", "25-34", "35-44", "45-64", "65+")),
            "country": rng.choice(("FR", "DE", "US", "JP", "BR")),
        }


def sample_actions(count: int, seed: int = 42, start: float | None = None) -> Iterator[dict[str, Any]]:
    """``count`` action updates over ``max(1, count * 4 // 5)`` actions (Next-Best-Action offers)."""
    rng = random.Random(seed)
    now = time.time() if start is None else start
    for _, n in _revisions(count, rng):
        yield {
            "actionId": f"action-{n:03d}",
            "category": rng.choice(("membership", "app", "newsletter", "loyalty")),
            "value": rng.choice((10, 50, 100, 500)),
            "repeat_frequency": rng.choice((1, 7, 30)),
            "action_expiration_timestamp": int(now) + 86400 * rng.randint(7, 90),
        }


def sample_action_interactions(
    count: int, sessions: int, seed: int = 42, start: float | None = None
) -> Iterator[dict[str, Any]]:
    """``count`` action interactions over ``sessions`` sessions and 50 actions; some with an impression
    list and a recommendationId (the actions a recommendation showed)."""
    rng = random.Random(seed)
    now = time.time() if start is None else start
    for i in range(count):
        s = rng.randrange(sessions)
        record: dict[str, Any] = {
            "actionId": f"action-{rng.randrange(50):03d}",
            "sessionId": f"session-{s:05d}",
            "userId": f"user-{s:05d}",
            "eventType": rng.choices(ACTION_EVENT_TYPES, weights=(70, 20, 10))[0],
            "timestamp": round(now + i * 0.01, 3),
        }
        if rng.random() < 0.3:
            record["recommendationId"] = f"RID-{rng.getrandbits(48):012x}"
            record["impression"] = [f"action-{rng.randrange(50):03d}" for _ in range(rng.randint(2, 5))]
        yield record


def sample_records(
    operation: str, count: int, sessions: int, seed: int, start: float | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(Kafka key, value) of ``count`` sample records for the route ``operation`` (one of :data:`OPERATIONS`).

    ``start`` (default: now) is the time the records' timestamps derive from: the same seed and start give
    the same records."""
    if operation == "events":
        return ((ev["sessionId"], ev) for ev in sample_events(count, sessions, seed, start))
    if operation == "items":
        return ((r["itemId"], r) for r in sample_items(count, seed, start))
    if operation == "users":
        return ((r["userId"], r) for r in sample_users(count, seed))
    if operation == "actions":
        return ((r["actionId"], r) for r in sample_actions(count, seed, start))
    if operation == "action_interactions":
        return ((r["sessionId"], r) for r in sample_action_interactions(count, sessions, seed, start))
    raise ValueError(f"unknown operation {operation!r}; known: {', '.join(OPERATIONS)}")


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
    operation: str = "events",
) -> int:
    """Produce the sample records of ``operation`` (``encode`` makes each value); return how many the
    broker acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "enable.idempotence": True})
    acked = 0

    def delivered(err: object, _msg: object) -> None:
        nonlocal acked
        if err is None:
            acked += 1

    for key, value in sample_records(operation, count, sessions, seed):
        while True:
            try:
                producer.produce(topic, key=key.encode(), value=encode(value), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    producer.flush(60)
    return acked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``forwarder sample``."""
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument(
        "--operation",
        choices=OPERATIONS,
        default="events",
        help="what to produce: what a route of this operation reads (default: %(default)s)",
    )
    parser.add_argument("--topic", help="default: interactions for events, else the operation's name")
    parser.add_argument("--partitions", type=int, default=4, help="when the topic is created (default: 4)")
    parser.add_argument("--dead-letter-topic", help="also create this topic if missing")
    parser.add_argument(
        "--events", "--records", type=int, default=1000, dest="events", help="how many records"
    )
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
    topic = args.topic or ("interactions" if args.operation == "events" else args.operation)
    topics = {topic: args.partitions}
    if args.dead_letter_topic:
        topics[args.dead_letter_topic] = 1
    if args.format != "json" and args.operation != "events":
        print(
            "forwarder sample: --format applies to events only; use json for other operations",
            file=sys.stderr,
        )
        return 2
    try:
        encode = record_encoder(args.format, args.schema_registry_url, topic)
    except ValueError as exc:
        print(f"forwarder sample: {exc}", file=sys.stderr)
        return 2
    ensure_topics(args.bootstrap_servers, topics)
    acked = produce_samples(
        args.bootstrap_servers, topic, args.events, args.sessions, args.seed, encode, args.operation
    )
    kind = "" if args.format == "json" else f" {args.format}"
    what = "events" if args.operation == "events" else f"{args.operation} records"
    print(f"produced {acked}{kind} sample {what} over {args.sessions} sessions to {topic}")
    return 0 if acked == args.events else 1
