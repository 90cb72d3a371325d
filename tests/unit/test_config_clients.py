"""librdkafka properties per client: consumer-only keys of ``kafka.client`` never reach the producer."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import Producer

from forwarder.config import (
    CONSUMER_ONLY_KEYS,
    RESERVED_CLIENT_KEYS,
    parse_config,
    producer_client_properties,
)
from forwarder.dead_letter import DeadLetterWriter

# A loopback port nothing listens on: the clients below are built, never connected.
NOWHERE = "127.0.0.1:1"
# A valid value for each consumer-only key (librdkafka checks the type of what it then ignores).
VALUES: dict[str, str | int | bool] = {
    "group.id": "g",
    "group.instance.id": "replica-0",
    "group.protocol": "classic",
    "group.protocol.type": "consumer",
    "group.remote.assignor": "uniform",
    "partition.assignment.strategy": "range",
    "auto.offset.reset": "latest",
    "offset.store.method": "broker",
    "offset.store.path": ".",
    "isolation.level": "read_committed",
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
    "check.crcs": True,
}
SHARED = {"socket.timeout.ms": 5000, "client.id": "forwarder-test", "reconnect.backoff.ms": 200}


def _value(key: str) -> str | int | bool:
    return VALUES.get(key, 1000)


def _client(extra: dict[str, str | int | bool]) -> dict[str, object]:
    return {
        "kafka": {"bootstrap_servers": NOWHERE, "topics": ["t"], "client": {**SHARED, **extra}},
        "personalize": {"tracking_id": "trk"},
        "dead_letter": {"topic": "dlq"},
    }


def _confwarn_lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and "CONFWARN" in r.getMessage()]


def test_producer_properties_keep_the_shared_keys_and_drop_the_consumer_only_ones() -> None:
    consumer_keys = {key: _value(key) for key in CONSUMER_ONLY_KEYS - RESERVED_CLIENT_KEYS}
    cfg = parse_config(_client(consumer_keys), environ={})
    assert producer_client_properties(cfg.kafka) == {"bootstrap.servers": NOWHERE, **SHARED}


@pytest.mark.parametrize("key", sorted(CONSUMER_ONLY_KEYS))
def test_librdkafka_calls_each_listed_key_a_consumer_property(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The list is librdkafka's own: a producer given the key says it ignores a consumer property."""
    logger = logging.getLogger(f"test.producer.{key}")
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        producer = Producer({"bootstrap.servers": NOWHERE, key: _value(key)}, logger=logger)
        deadline = time.monotonic() + 5
        while not _confwarn_lines(caplog, logger.name) and time.monotonic() < deadline:
            producer.poll(0.05)
    lines = _confwarn_lines(caplog, logger.name)
    assert any("is a consumer property and will be ignored" in line for line in lines), lines


def test_the_dead_letter_producer_gets_no_consumer_only_key(caplog: pytest.LogCaptureFixture) -> None:
    client: dict[str, str | int | bool] = {
        "session.timeout.ms": 10_000,
        "auto.offset.reset": "latest",
        "max.poll.interval.ms": 60_000,
    }
    cfg = parse_config(_client(client), environ={})
    with caplog.at_level(logging.DEBUG, logger="forwarder.kafka"):
        writer = DeadLetterWriter(cfg.dead_letter, cfg.kafka)
        # librdkafka hands its configuration warnings over on the first polls.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            writer.poll()
            time.sleep(0.05)
        writer.flush(0)
    assert _confwarn_lines(caplog, "forwarder.kafka") == []
