"""Logs: JSON lines carry a dead letter's coordinates as fields; the body only when include_payloads is set."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from confluent_kafka import Message

from forwarder.config import parse_config
from forwarder.dead_letter import DeadLetterWriter
from forwarder.logs import JsonFormatter, RepeatFilter
from forwarder.outcome import Reason, Stage

SECRET_BODY = b'{"sessionId": "s", "email": "someone@example.com"}'


def _dead_letter_log(include_payloads: bool) -> dict[str, object]:
    cfg = parse_config(
        {
            "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"]},
            "personalize": {"tracking_id": "trk"},
            "dead_letter": {"topic": "dlq"},
            "logging": {"format": "json", "include_payloads": include_payloads},
        },
        environ={},
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("forwarder.dead_letter")
    logger.addHandler(handler)
    try:

        async def go() -> None:
            writer = DeadLetterWriter(cfg.dead_letter, cfg.kafka, cfg.logging.include_payloads)
            message = Message(topic="events", partition=3, offset=42, value=SECRET_BODY)
            writer.write(
                message, Reason(Stage.VALIDATE, "InvalidField", "eventType: is required"), lambda: None, "s"
            )

        asyncio.run(go())
    finally:
        logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    record: dict[str, object] = json.loads(line)
    return record


def test_json_lines_carry_coordinates_and_no_body_by_default() -> None:
    record = _dead_letter_log(include_payloads=False)
    assert record["level"] == "WARNING"
    assert record["topic"] == "events"
    assert record["partition"] == 3
    assert record["offset"] == 42
    assert record["stage"] == "validate"
    assert record["session_id"] == "s"
    assert "eventType" in str(record["message"])
    assert "someone@example.com" not in json.dumps(record)


def test_payloads_only_when_asked_for() -> None:
    record = _dead_letter_log(include_payloads=True)
    assert record["payload"] == SECRET_BODY.decode()


@pytest.mark.parametrize("repeats", [5])
def test_repeated_kafka_messages_are_dropped(repeats: int) -> None:
    flt = RepeatFilter(window_s=60)
    records = [logging.makeLogRecord({"msg": "broker down"}) for _ in range(repeats)]
    assert [flt.filter(r) for r in records] == [True] + [False] * (repeats - 1)
    assert flt.filter(logging.makeLogRecord({"msg": "another"}))
