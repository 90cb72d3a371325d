"""Which dead-letter records a replay takes, and the original message it rebuilds from each."""

from __future__ import annotations

from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from forwarder.dead_letter import (
    HEADER_AT,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_STAGE,
    HEADER_TOPIC,
    HEADER_VALUE_DROPPED,
)
from forwarder.replay import ReplaySelection, original_message

GOOD = {HEADER_TOPIC: "events", HEADER_PARTITION: "3", HEADER_OFFSET: "41", HEADER_STAGE: "api"}


def _record(
    headers: dict[str, str], extra: list[tuple[str, bytes]] | None = None, ts: int = 5_000
) -> Message:
    return Message(
        topic="dlq",
        partition=0,
        offset=9,
        key=b"session-1",
        value=b'{"sessionId": "session-1"}',
        headers=[*(extra or []), *[(k, v.encode()) for k, v in headers.items()]],
        timestamp=(TIMESTAMP_CREATE_TIME, ts),
    )


def test_the_original_is_rebuilt_with_its_coordinates_and_its_own_headers() -> None:
    original = original_message(_record(GOOD, extra=[("trace", b"abc")]))
    assert original is not None
    assert (original.topic(), original.partition(), original.offset()) == ("events", 3, 41)
    assert original.key() == b"session-1"
    assert original.headers() == [("trace", b"abc")]
    assert original.timestamp() == (TIMESTAMP_CREATE_TIME, 5_000)


def test_records_that_cannot_be_rebuilt_are_counted_not_raised() -> None:
    broken = [
        {**GOOD, HEADER_PARTITION: "three"},
        {**GOOD, HEADER_OFFSET: "-1"},
        {**GOOD, HEADER_OFFSET: "\u00b2"},  # a digit to str.isdigit, not to int()
        {k: v for k, v in GOOD.items() if k != HEADER_TOPIC},
        {**GOOD, HEADER_VALUE_DROPPED: "1048577"},
    ]
    selection = ReplaySelection(stages=None, since_ms=None)
    assert [selection.pick(_record(headers)) for headers in broken] == [None] * len(broken)
    assert selection.counts["not replayable (no original coordinates or value)"] == len(broken)


def test_stage_and_since_select() -> None:
    selection = ReplaySelection(stages=["api"], since_ms=10_000)
    assert selection.pick(_record({**GOOD, HEADER_STAGE: "decode", HEADER_AT: "20000"})) is None
    assert selection.pick(_record({**GOOD, HEADER_AT: "9999"})) is None
    assert selection.pick(_record({**GOOD, HEADER_AT: "10000"})) is not None
    # Without the dead-letter time header, the record's own timestamp decides.
    assert selection.pick(_record(GOOD, ts=9_000)) is None
    assert selection.pick(_record(GOOD, ts=11_000)) is not None
    assert selection.counts == {"read": 5, "other stage": 1, "before --since": 2, "replayed": 2}
