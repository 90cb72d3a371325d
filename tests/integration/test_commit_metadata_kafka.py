"""Commit metadata against the real broker: stored with the offset, read back on assignment, and the size edge.

These pin what the codec's budget and the consumer's fallback rely on: confluent-kafka sends the metadata
string with its NUL terminator, so a default broker (``offset.metadata.max.bytes`` 4,096) takes at most
4,095 characters, and refuses more by failing the whole commit call.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from forwarder.commit_metadata import DEFAULT_BUDGET, FinishedOffsets, UnreadableMetadata, decode, encode
from forwarder.config import KafkaConfig
from forwarder.consume import Committed, KafkaConsumer, Partitions, RebalanceHandler
from forwarder.offsets import OffsetTracker, PartitionOffsets, TopicPartitionKey
from tests.support import create_topic, produce, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def plain(bootstrap: str) -> Iterator[tuple[Consumer, str]]:
    """A consumer of a fresh group, assigned (not subscribed) to a fresh 2-partition topic."""
    topic = create_topic(bootstrap, unique("meta"), partitions=2)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique("meta-group"), "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    try:
        yield consumer, topic
    finally:
        consumer.close()


def _committed(consumer: Consumer, topic: str) -> dict[int, tuple[int, str]]:
    got = consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
    return {tp.partition: (tp.offset, tp.metadata or "") for tp in got}


def _scattered(base: int, n: int, hole_rate: float, seed: int) -> FinishedOffsets:
    rng = random.Random(seed)
    return FinishedOffsets.from_sorted(o for o in range(base + 1, base + 1 + n) if rng.random() >= hole_rate)


def test_the_broker_stores_and_returns_the_codecs_metadata(plain: tuple[Consumer, str]) -> None:
    consumer, topic = plain
    runs = _scattered(1000, 10_000, 0.01, seed=1)
    bitset = _scattered(5000, 10_000, 0.5, seed=2)
    runs_text, bitset_text = encode(1000, runs), encode(5000, bitset)
    assert runs_text is not None
    assert bitset_text is not None
    assert runs_text[:4] == "fw1R"
    assert bitset_text[:4] == "fw1B"
    consumer.commit(
        offsets=[
            TopicPartition(topic, 0, 1000, metadata=runs_text),
            TopicPartition(topic, 1, 5000, metadata=bitset_text),
        ],
        asynchronous=False,
    )
    got = _committed(consumer, topic)
    assert got == {0: (1000, runs_text), 1: (5000, bitset_text)}
    assert decode(got[0][1], got[0][0]) == runs
    assert decode(got[1][1], got[1][0]) == bitset


def test_metadata_up_to_the_budget_is_kept_and_one_character_more_is_refused(
    plain: tuple[Consumer, str],
) -> None:
    consumer, topic = plain
    # The largest set the codec encodes within the default budget: every other offset, as a bitset.
    biggest = None
    for n in range(24_600, 24_000, -8):
        candidate = encode(7, FinishedOffsets.of(range(8, 8 + n, 2)))
        if candidate is not None:
            biggest = candidate
            break
    assert biggest is not None
    assert DEFAULT_BUDGET - 4 < len(biggest) <= DEFAULT_BUDGET
    at_limit = "m" * DEFAULT_BUDGET
    consumer.commit(
        offsets=[
            TopicPartition(topic, 0, 7, metadata=biggest),
            TopicPartition(topic, 1, 3, metadata=at_limit),
        ],
        asynchronous=False,
    )
    assert _committed(consumer, topic) == {0: (7, biggest), 1: (3, at_limit)}

    past = "p" * (DEFAULT_BUDGET + 1)  # 4,096 characters + the client's NUL: past offset.metadata.max.bytes
    with pytest.raises(KafkaException) as raised:
        consumer.commit(
            offsets=[TopicPartition(topic, 0, 9, metadata=past), TopicPartition(topic, 1, 4, metadata="x")],
            asynchronous=False,
        )
    assert raised.value.args[0].code() == KafkaError.OFFSET_METADATA_TOO_LARGE
    # The refused partition keeps its previous commit; the other one of the same call was stored.
    assert _committed(consumer, topic) == {0: (7, biggest), 1: (4, "x")}


class _Recorder(RebalanceHandler):
    reads_committed = True

    def __init__(self) -> None:
        self.committed: dict[TopicPartitionKey, Committed] = {}
        self.assigned_partitions: Partitions = []

    async def assigned_committed(
        self, partitions: Partitions, committed: dict[TopicPartitionKey, Committed]
    ) -> None:
        self.assigned_partitions += partitions
        self.committed.update(committed)


async def _assigned(consumer: KafkaConsumer, handler: _Recorder, want: int) -> None:
    await consumer.subscribe()
    deadline = time.monotonic() + 60
    while len(handler.assigned_partitions) < want:
        assert time.monotonic() < deadline, "no assignment within 60 s"
        await consumer.consume(100, 0.2)


def test_the_consumer_commits_metadata_and_the_next_owner_reads_it_on_assignment(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique("meta-owner"), partitions=2)
    produce(bootstrap, topic, [(None, b"{}", p) for p in (0, 1) for _ in range(5)])
    cfg = KafkaConfig(bootstrap_servers=bootstrap, topics=[topic], group_id=unique("meta-owner-group"))
    finished = FinishedOffsets.of([3, 4])
    text = encode(1, finished)
    assert text is not None

    async def first_owner() -> dict[TopicPartitionKey, int]:
        handler = _Recorder()
        consumer = KafkaConsumer(cfg, handler, asyncio.get_running_loop(), rebalance_timeout_s=10)
        try:
            await _assigned(consumer, handler, 2)
            # a group that never committed: no offset, no metadata
            assert handler.committed == {(topic, 0): Committed(None, ""), (topic, 1): Committed(None, "")}
            done = await consumer.commit({(topic, 0): 1, (topic, 1): 2}, {(topic, 0): text})
            # metadata past the limit: the positions are committed without it, not dropped
            too_big = {(topic, 1): "z" * (DEFAULT_BUDGET + 1)}
            done_plain = await consumer.commit({(topic, 1): 5}, too_big)
            return {**done, **done_plain}
        finally:
            await consumer.close()

    async def next_owner() -> dict[TopicPartitionKey, Committed]:
        handler = _Recorder()
        consumer = KafkaConsumer(cfg, handler, asyncio.get_running_loop(), rebalance_timeout_s=10)
        try:
            await _assigned(consumer, handler, 2)
            assert await consumer.committed([(topic, 0), (topic, 1)]) == handler.committed
            return handler.committed
        finally:
            await consumer.close()

    assert asyncio.run(first_owner()) == {(topic, 0): 1, (topic, 1): 5}
    seen = asyncio.run(next_owner())
    assert seen == {(topic, 0): Committed(1, text), (topic, 1): Committed(5, "")}
    assert decode(seen[(topic, 0)].metadata, 1) == finished


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_a_static_member_from_a_template_joins_with_either_protocol(
    bootstrap: str, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = create_topic(bootstrap, unique("static"), partitions=2)
    monkeypatch.setenv("FORWARDER_TEST_POD", unique("pod"))
    cfg = KafkaConfig(
        bootstrap_servers=bootstrap,
        topics=[topic],
        group_id=unique("static-group"),
        group_protocol=protocol,  # type: ignore[arg-type]
        client={"group.instance.id": "${FORWARDER_TEST_POD}-{hostname}"},
    )

    async def join() -> int:
        handler = _Recorder()
        consumer = KafkaConsumer(cfg, handler, asyncio.get_running_loop(), rebalance_timeout_s=10)
        try:
            await _assigned(consumer, handler, 2)
            return len(handler.assigned_partitions)
        finally:
            await consumer.close()

    assert asyncio.run(join()) == 2


class _Owner(RebalanceHandler):
    """What the runtime will do: seed the tracker from the commit metadata, commit it on revoke."""

    reads_committed = True

    def __init__(self) -> None:
        self.tracker = OffsetTracker()
        self.unreadable: list[str] = []

    async def assigned_committed(
        self, partitions: Partitions, committed: dict[TopicPartitionKey, Committed]
    ) -> None:
        for tp in partitions:
            seed = None
            got = committed.get(tp)
            if got is not None and got.offset is not None:
                try:
                    seed = decode(got.metadata, got.offset)
                except UnreadableMetadata as exc:
                    self.unreadable.append(str(exc))
            self.tracker.assign(tp, seed)

    async def revoking(self, partitions: Partitions) -> dict[TopicPartitionKey, int]:
        # Every position, moved or not: the finished set above an unmoved one may have grown.
        out: dict[TopicPartitionKey, int] = {}
        for tp in partitions:
            state = self.tracker.get(tp)
            if state is not None and state.position is not None:
                out[tp] = state.position
        return out

    async def revoking_metadata(
        self, positions: dict[TopicPartitionKey, int]
    ) -> dict[TopicPartitionKey, str]:
        return self.metadata(positions)

    async def revoked(self, partitions: Partitions) -> None:
        for tp in partitions:
            self.tracker.drop(tp)

    def metadata(self, positions: dict[TopicPartitionKey, int]) -> dict[TopicPartitionKey, str]:
        out: dict[TopicPartitionKey, str] = {}
        for tp, pos in positions.items():
            state = self.tracker.get(tp)
            assert state is not None
            assert state.position == pos
            text = encode(pos, state.finished_above())
            if text is not None:
                out[tp] = text
        return out


async def _take_all(
    consumer: KafkaConsumer, owner: _Owner, topic: str, until: int
) -> tuple[list[int], PartitionOffsets]:
    """Consume partition 0 up to offset ``until``; return the offsets the tracker did not skip."""
    await consumer.subscribe()
    taken: list[int] = []
    deadline = time.monotonic() + 60
    last = -1
    while last < until:
        assert time.monotonic() < deadline, f"consumed up to {last} of {until} within 60 s"
        for msg in await consumer.consume(500, 0.2):
            if msg.error() is not None:
                continue
            state = owner.tracker.get((topic, 0))
            assert state is not None
            offset = msg.offset() or 0
            last = offset
            if not state.track(offset):
                taken.append(offset)
    state = owner.tracker.get((topic, 0))
    assert state is not None
    return taken, state


def test_the_next_owner_takes_only_what_the_previous_one_left_unfinished(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique("meta-skip"), partitions=1)
    produce(bootstrap, topic, [(None, b"{}", 0) for _ in range(300)])
    cfg = KafkaConfig(bootstrap_servers=bootstrap, topics=[topic], group_id=unique("meta-skip-group"))
    held_at_commit = {50, 120, 121, 199, 250}
    held_at_end = {50, 121, 250}  # 120 and 199 finish between the periodic commit and the hand-over

    async def first_owner() -> list[int]:
        owner = _Owner()
        consumer = KafkaConsumer(cfg, owner, asyncio.get_running_loop(), rebalance_timeout_s=10)
        try:
            taken, state = await _take_all(consumer, owner, topic, 299)
            rng = random.Random(4)
            order = [o for o in taken if o not in held_at_commit]
            rng.shuffle(order)
            for o in order:
                state.finish(o)
            positions = owner.tracker.commit_positions()
            assert positions == {(topic, 0): 50}
            assert await consumer.commit(positions, owner.metadata(positions)) == positions
            owner.tracker.mark_committed(positions)
            for o in held_at_commit - held_at_end:
                state.finish(o)
            return taken
        finally:
            await consumer.close()  # the revoke commits position 50 again, with the newer finished set

    assert asyncio.run(first_owner()) == list(range(300)), "a group without metadata takes every message"
    taken, unreadable = _new_owner(cfg, topic, 299)
    assert unreadable == []
    assert taken == sorted(held_at_end)


def _new_owner(cfg: KafkaConfig, topic: str, last: int) -> tuple[list[int], list[str]]:
    """A new owner in ``cfg``'s group takes ``topic``'s partition up to offset ``last``: the offsets it
    took, and the commit metadata it could not read."""

    async def run() -> tuple[list[int], list[str]]:
        owner = _Owner()
        consumer = KafkaConsumer(cfg, owner, asyncio.get_running_loop(), rebalance_timeout_s=10)
        try:
            taken, _state = await _take_all(consumer, owner, topic, last)
            return taken, owner.unreadable
        finally:
            await consumer.close()

    return asyncio.run(run())


def test_metadata_of_another_tool_is_not_trusted(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique("meta-foreign"), partitions=1)
    produce(bootstrap, topic, [(None, b"{}", 0) for _ in range(40)])
    group = unique("meta-foreign-group")
    other = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        other.commit(offsets=[TopicPartition(topic, 0, 10, metadata="checkpoint=17")], asynchronous=False)
    finally:
        other.close()
    cfg = KafkaConfig(bootstrap_servers=bootstrap, topics=[topic], group_id=group)

    taken, unreadable = _new_owner(cfg, topic, 39)
    assert taken == list(range(10, 40))
    assert len(unreadable) == 1
    assert "not this codec" in unreadable[0]
