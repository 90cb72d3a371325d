"""The broker the tests use is a real Kafka: group assignment and committed offsets behave as Kafka's do."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Message, TopicPartition

from tests.support import committed, create_topic, produce, unique


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
        }
    )


def test_two_consumers_of_one_group_get_disjoint_assignments(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique("broker-assign"), partitions=4)
    group = unique("group")
    a, b = _consumer(bootstrap, group), _consumer(bootstrap, group)
    try:
        a.subscribe([topic])
        b.subscribe([topic])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            a.poll(0.1)
            b.poll(0.1)
            got_a = {tp.partition for tp in a.assignment()}
            got_b = {tp.partition for tp in b.assignment()}
            if got_a and got_b and len(got_a) + len(got_b) == 4:
                break
        assert got_a, "first consumer got no partition"
        assert got_b, "second consumer got no partition"
        assert got_a.isdisjoint(got_b)
        assert got_a | got_b == {0, 1, 2, 3}
    finally:
        a.close()
        b.close()


def test_committed_offset_survives_a_consumer_restart(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique("broker-commit"), partitions=1)
    group = unique("group")
    produce(bootstrap, topic, [(None, f"m{i}".encode()) for i in range(10)])

    first = _consumer(bootstrap, group)
    first.subscribe([topic])
    taken: list[Message] = []
    deadline = time.monotonic() + 30
    while len(taken) < 4 and time.monotonic() < deadline:
        taken += [m for m in first.consume(4 - len(taken), 0.5) if m.error() is None]
    assert [m.value() for m in taken] == [b"m0", b"m1", b"m2", b"m3"]
    first.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    first.close()

    assert committed(bootstrap, group, topic) == {0: 4}

    second = _consumer(bootstrap, group)
    second.subscribe([topic])
    try:
        resumed: list[Message] = []
        deadline = time.monotonic() + 30
        while not resumed and time.monotonic() < deadline:
            resumed = [m for m in second.consume(1, 0.5) if m.error() is None]
        assert resumed, "the restarted consumer got nothing"
        assert resumed[0].offset() == 4
        assert resumed[0].value() == b"m4"
    finally:
        second.close()
