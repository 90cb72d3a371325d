"""Derived event ids carry the topic's id: the same for a redelivered message, different once the topic is
created again; within the 256-character limit, and built from a prefix computed once per partition."""

from __future__ import annotations

import orjson
from confluent_kafka import Message

from forwarder.config import MappingConfig
from forwarder.decode import Decoder, Event, event_id_prefix
from forwarder.outcome import Envelope
from forwarder.personalize import limits

VALUE = orjson.dumps({"sessionId": "s", "eventType": "view", "sentAt": 1714566896})


def _id(decoder: Decoder, topic: str = "events", partition: int = 2, offset: int = 42) -> str:
    event = decoder.decode(Envelope(Message(topic=topic, partition=partition, offset=offset, value=VALUE)))
    assert isinstance(event, Event)
    event_id: str = event.wire["eventId"]
    return event_id


def test_an_id_names_the_topic_incarnation_partition_and_offset() -> None:
    decoder = Decoder(MappingConfig(), "trk")
    decoder.topic_ids["events"] = "WjCDzE4cTkahUYJ3cr2ahA"
    assert _id(decoder) == "events@WjCDzE4cTkahUYJ3cr2ahA:2:42"
    assert _id(decoder) == _id(decoder), "a redelivered message keeps its id"


def test_a_recreated_topic_gives_other_ids_at_the_same_offsets() -> None:
    decoder = Decoder(MappingConfig(), "trk")
    decoder.topic_ids["events"] = "WjCDzE4cTkahUYJ3cr2ahA"
    before = {_id(decoder, offset=o) for o in range(5)}
    decoder.topic_ids["events"] = "Xq3mY1m7S7a2w1s6pGv0kQ"  # deleted and created again
    after = {_id(decoder, offset=o) for o in range(5)}
    assert before.isdisjoint(after)


def test_without_a_topic_id_the_id_is_the_old_one_so_old_dead_letters_replay_alike() -> None:
    assert _id(Decoder(MappingConfig(), "trk")) == "events:2:42"


def test_ids_of_the_longest_topic_partition_and_offset_fit_the_limit() -> None:
    topic = "t" * 249
    prefix = event_id_prefix(topic, 2147483647, "WjCDzE4cTkahUYJ3cr2ahA")
    longest = prefix + str(2**63 - 1)
    assert len(longest) <= limits.MAX_ID_LENGTH
    assert prefix != event_id_prefix(topic, 2147483647, "Xq3mY1m7S7a2w1s6pGv0kQ")
    decoder = Decoder(MappingConfig(), "trk")
    decoder.topic_ids[topic] = "WjCDzE4cTkahUYJ3cr2ahA"
    assert len(_id(decoder, topic=topic, partition=2147483647, offset=2**63 - 1)) <= limits.MAX_ID_LENGTH
