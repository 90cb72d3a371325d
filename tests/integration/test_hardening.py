"""Issue #10 hardening through the real daemon, the real broker and the emulator: what leaves the process,
how it fails to start, and what it does with its own dead-letter topic."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.cimpl import NewTopic

from tests.harness import (
    ForwarderConfig,
    committed,
    create_topic,
    delete_topic,
    free_port,
    headers_dict,
    produce,
    read_topic,
    running,
    scrape,
    start_emulator,
    start_forwarder,
    unique,
    wait_for,
)
from tests.harness.pipeline import create_topics, pipeline, wait_committed

pytestmark = pytest.mark.integration

# What botocore's chain hands the signer from the environment: a session token like STS's.
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEOr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6" + "Zm9yd2FyZGVyLXRlc3Q" * 12
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _event(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "eventId": f"ev-{i}",
        "sessionId": f"s-{i % 3}",
        "eventType": "click",
        "sentAt": 1714566896 + i,
        **extra,
    }


def _readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_signature_error_quoting_the_session_token_is_redacted_from_logs_and_readyz(
    bootstrap: str, tmp_path: Path
) -> None:
    p = pipeline(
        bootstrap,
        tmp_path,
        "redact",
        metrics=True,
        extra={"observability": {"host": "127.0.0.1"}, "retry": {"outage_retry_interval_s": 1}},
    )
    emulator, port = p.emulator, p.port
    assert port is not None
    p.produce_events((_event(i) for i in range(5)), key=b"k")
    emulator.set_faults(signature_mismatch=True)
    env = {"AWS_SESSION_TOKEN": SESSION_TOKEN, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    with p.run(env=env) as replica:
        wait_for(lambda: "refuses every call" in replica.log_text(), 60, what="the outage line")
        wait_for(lambda: _readyz(port)[0] == 503, 30, what="readyz to fail")
        _status, body = _readyz(port)
        assert "InvalidSignatureException" in body
        assert "x-amz-security-token:<redacted>" in body, body
        assert SESSION_TOKEN[:40] not in body
        assert SECRET_KEY not in body
        # Let it probe a few times: each probe logs the service's text again.
        wait_for(lambda: emulator.stats()["unauthenticated"] >= 3, 30, what="probes")
        assert replica.stop() == 0
    text = replica.log_text()
    assert "x-amz-security-token:<redacted>" in text, "the service's text is logged, redacted"
    assert SESSION_TOKEN[:40] not in text
    assert SECRET_KEY not in text
    assert "Signature=<redacted>" in text


def test_a_metrics_port_in_use_is_one_line_naming_the_port_and_the_key_and_exit_2(
    bootstrap: str, tmp_path: Path
) -> None:
    topic, dlq = create_topics(bootstrap, "port")
    emulator = start_emulator(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        replica = start_forwarder(tmp_path, _observed(bootstrap, topic, dlq, emulator.url, port))
        with running([replica, emulator]):
            code = replica.proc.wait(60)
    text = replica.log_text()
    assert code == 2, text
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if str(port) in line]
    assert len(lines) == 1, text
    assert "observability.port" in lines[0]
    assert "FORWARDER__OBSERVABILITY__PORT" in lines[0]


def _observed(bootstrap: str, topic: str, dlq: str, endpoint: str, port: int) -> ForwarderConfig:
    """A configuration whose metrics and probes listen on ``port`` of the loopback interface."""
    observability = {"observability": {"port": port, "host": "127.0.0.1"}}
    return ForwarderConfig(bootstrap, [topic], unique("g"), dlq, endpoint, extra=observability)


def _metric(port: int, name: str) -> float | None:
    try:
        return scrape(port).get(name)
    except OSError:
        return None  # not serving yet


def _create_topic_with(bootstrap: str, name: str, config: dict[str, str]) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1, config=config)])[name].result(
        30
    )
    wait_for(lambda: name in admin.list_topics(timeout=5).topics, 30, what=f"topic {name}")
    return name


def _produce_big(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list[tuple[str, str | bytes | None]]]]
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 5_000_000})
    for key, value, headers in records:
        producer.produce(topic, key=key, value=value, headers=headers)
    assert producer.flush(30) == 0


def test_a_dead_letter_too_large_without_its_value_is_written_without_its_key_too(
    bootstrap: str, tmp_path: Path
) -> None:
    topic = _create_topic_with(bootstrap, unique("big-key"), {"max.message.bytes": "5000000"})
    dlq = _create_topic_with(bootstrap, unique("big-key-dlq"), {"max.message.bytes": "10000"})
    big_key = b"k" * 20_000
    _produce_big(
        bootstrap,
        topic,
        [
            (big_key, b"not json " * 2000, []),
            *((b"ok", json.dumps(_event(i)).encode(), []) for i in range(5)),
        ],
    )
    emulator = start_emulator(tmp_path)
    cfg = ForwarderConfig(bootstrap, [topic], unique("g"), dlq, emulator.url)
    replica = start_forwarder(tmp_path, cfg)
    with running([replica, emulator]):
        dead = read_topic(bootstrap, dlq, expect=1, timeout=60)
        wait_committed(bootstrap, cfg.group, topic)
        assert len(read_topic(bootstrap, dlq, timeout=3)) == 1, "one dead letter, written once"
        assert replica.stop() == 0
    assert len(dead) == 1
    record = dead[0]
    assert record.key() is None
    assert record.value() is None
    headers = headers_dict(record)
    assert headers["forwarder.value.dropped"] == str(len(b"not json " * 2000))
    assert headers["forwarder.key.dropped"] == str(len(big_key))
    assert headers["forwarder.original.topic"] == topic
    assert headers["forwarder.original.offset"] == "0"
    assert headers["forwarder.error.stage"] == "decode"
    text = replica.log_text()
    assert "without its value" in text
    assert "without its key" in text
    assert re.search(r"too large for topic \S+ \((\d+) bytes", text)
    sizes = [int(n) for n in re.findall(r"too large for topic \S+ \((\d+) bytes", text)]
    assert sizes[0] > len(big_key) + 18_000, f"the size logged is the record's, key included: {sizes}"


def test_a_dead_letter_too_large_even_shrunk_is_held_with_an_error_and_a_metric(
    bootstrap: str, tmp_path: Path
) -> None:
    topic = create_topic(bootstrap, unique("held"))
    dlq = _create_topic_with(bootstrap, unique("held-dlq"), {"max.message.bytes": "200"})
    produce(
        bootstrap,
        topic,
        [(b"bad", b"not json"), *((b"ok", json.dumps(_event(i)).encode()) for i in range(5))],
    )
    emulator = start_emulator(tmp_path)
    port = free_port()
    cfg = _observed(bootstrap, topic, dlq, emulator.url, port)
    replica = start_forwarder(tmp_path, cfg)
    with running([replica, emulator]):
        wait_for(lambda: _metric(port, "forwarder_dead_letters_held") == 1, 60, what="the held metric")
        wait_for(lambda: len(emulator.events()) == 5, 30, what="the valid events")
        assert "cannot be written to topic" in replica.log_text()
        assert "max.message.bytes" in replica.log_text()
        time.sleep(2)
        assert committed(bootstrap, cfg.group, topic)[0] <= 0, "nothing committed past the held message"
        errors = replica.log_text().count("cannot be written to topic")
        assert errors == 1, "one error line per try, tries far apart: not a silent endless retry"
        # The operator raises the topic's limit: the held record goes through at its next try.
        admin = AdminClient({"bootstrap.servers": bootstrap})
        resource = ConfigResource(
            ConfigResource.Type.TOPIC,
            dlq,
            incremental_configs=[
                ConfigEntry("max.message.bytes", "1000000", incremental_operation=AlterConfigOpType.SET)
            ],
        )
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(30)
        dead = read_topic(bootstrap, dlq, expect=1, timeout=90)
        wait_committed(bootstrap, cfg.group, topic, 30)
        assert scrape(port)["forwarder_dead_letters_held"] == 0
        assert replica.stop() == 0
    assert len(dead) == 1
    assert headers_dict(dead[0])["forwarder.error.stage"] == "decode"


def test_a_regex_subscription_never_consumes_the_dead_letter_topic(bootstrap: str, tmp_path: Path) -> None:
    prefix = unique("regex")
    topic = create_topic(bootstrap, f"{prefix}.interactions", partitions=2)
    dlq = create_topic(bootstrap, f"{prefix}.interactions.dead-letter")
    produce(
        bootstrap,
        topic,
        [(b"bad", b"not json", 0), *((b"ok", json.dumps(_event(i)).encode(), i % 2) for i in range(6))],
    )
    emulator = start_emulator(tmp_path)
    cfg = ForwarderConfig(
        bootstrap, [f"^{re.escape(prefix)}\\.interactions.*"], unique("g"), dlq, emulator.url
    )
    replica = start_forwarder(tmp_path, cfg)
    with running([replica, emulator]):
        wait_committed(bootstrap, cfg.group, topic)
        wait_for(lambda: len(emulator.events()) == 6, 30, what="the valid events")
        time.sleep(3)  # ample time for a loop to show: it made hundreds of records in seconds
        dead = read_topic(bootstrap, dlq, timeout=3)
        assert len(dead) == 1, f"{len(dead)} dead-letter records from one poison message"
        assert f"not consuming {dlq}[0]" in replica.log_text()
        assert replica.stop() == 0
    assert headers_dict(dead[0])["forwarder.original.topic"] == topic
    assert committed(bootstrap, cfg.group, dlq)[0] < 0, "nothing committed on the dead-letter topic"


def _ids_delivered(bootstrap: str, tmp_path: Path, topic: str, dlq: str, count: int, name: str) -> list[str]:
    """Run a replica of a fresh group over ``topic`` until ``count`` events arrived; their ids by offset."""
    emulator = start_emulator(tmp_path)
    cfg = ForwarderConfig(bootstrap, [topic], unique("g"), dlq, emulator.url)
    replica = start_forwarder(tmp_path, cfg, name=name)
    with running([replica, emulator]):
        wait_for(lambda: len(emulator.events()) >= count, 60, what=f"{count} events")
        assert replica.stop() == 0
    events = emulator.events()
    return [ev["eventId"] for ev in sorted(events, key=lambda ev: ev["properties"])]


def test_derived_event_ids_stay_for_redelivery_and_change_when_the_topic_is_created_again(
    bootstrap: str, tmp_path: Path
) -> None:
    topic, dlq = create_topics(bootstrap, "incarnation")

    def fill(tag: str) -> None:
        # No eventId: the forwarder derives one. properties tell the events apart in the emulator's record.
        values = [
            {
                "sessionId": f"s-{i}",
                "eventType": "view",
                "sentAt": 1714566896,
                "properties": {"n": f"{tag}-{i}"},
            }
            for i in range(3)
        ]
        produce(bootstrap, topic, [(b"k", json.dumps(v).encode()) for v in values])

    fill("first")
    first = _ids_delivered(bootstrap, tmp_path, topic, dlq, 3, "first")
    again = _ids_delivered(bootstrap, tmp_path, topic, dlq, 3, "redelivery")
    assert again == first, "a message delivered again keeps its id"
    assert all(len(i) <= 256 for i in first)

    delete_topic(bootstrap, topic)
    create_topic(bootstrap, topic)
    fill("second")  # the same offsets 0, 1, 2 in the new topic
    second = _ids_delivered(bootstrap, tmp_path, topic, dlq, 3, "recreated")
    assert [i.rsplit(":", 1)[1] for i in second] == [i.rsplit(":", 1)[1] for i in first] == ["0", "1", "2"]
    assert set(second).isdisjoint(first), f"new events reuse old ids: {first} / {second}"
