"""Consume: the Kafka consumer, driven from asyncio through one dedicated thread.

Every call on the librdkafka consumer happens in that one thread (its calls block, and rebalance
callbacks run inside ``consume``). Rebalance callbacks hand the event to the runtime's coroutines on the
event loop and block until they return: on revoke the runtime flushes and waits for the partitions' work,
and the positions it returns are committed synchronously *before* the partitions are let go.

Contract:
- auto commit and auto offset store are off; offsets move only through :meth:`KafkaConsumer.commit`.
- ``classic`` group protocol uses the ``cooperative-sticky`` assignor; ``consumer`` (KIP-848) lets the
  broker assign, incrementally as well.
- a commit may carry a metadata string per partition (the finished offsets above it, see
  :mod:`forwarder.commit_metadata`); a handler with ``reads_committed`` gets, on assignment, the
  committed offset and metadata of each new partition, read in the consumer thread before any message
  of it is returned.
- Topics in ``exclude_topics`` (the dead-letter topic, which a regex subscription such as ``^interactions.*``
  may match) are never consumed: their partitions, if assigned, are paused and kept from the handler, their
  messages are dropped unread, and nothing is ever committed for them. Neither librdkafka's regex nor the
  broker's (KIP-848, RE2) has a negative lookahead, so the subscription itself cannot leave them out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from forwarder.config import KafkaConfig
from forwarder.logs import kafka_logger
from forwarder.offsets import TopicPartitionKey
from forwarder.topic_ids import admin_client, lookup_topic_ids

log = logging.getLogger(__name__)

Partitions = list[TopicPartitionKey]

# Classic protocol only (under KIP-848 the broker's group.consumer.* settings decide). A crashed
# replica's partitions move after the session timeout: 6 s is the lowest a default broker accepts
# (group.min.session.timeout.ms) and what the chaos run measured failover with (issue #17); librdkafka's
# heartbeats come from its own thread, not the event loop, so a busy loop does not expire the member.
# A heartbeat a third of the session leaves two missed heartbeats before expiry, and lets a surviving
# member learn of a rebalance within 2 s.
DEFAULT_SESSION_TIMEOUT_MS = 6000
DEFAULT_HEARTBEAT_INTERVAL_MS = 2000


class Committed(NamedTuple):
    """A partition's committed offset (None if the group never committed it) and its metadata."""

    offset: int | None
    metadata: str


class RebalanceHandler:
    """What the runtime does when partitions come and go; coroutines run on the event loop."""

    # True: on assignment, read the new partitions' committed offsets and metadata (one request to the
    # group coordinator, in the consumer thread) and call assigned_committed() instead of assigned().
    reads_committed: bool = False

    async def assigned(self, partitions: Partitions) -> None:
        """Partitions were assigned."""

    async def assigned_committed(
        self, partitions: Partitions, committed: dict[TopicPartitionKey, Committed]
    ) -> None:
        """Partitions were assigned; ``committed`` has what the group committed for each that it could
        read (a partition missing from it could not be read: treat it as having no metadata)."""
        await self.assigned(partitions)

    async def revoking(self, partitions: Partitions) -> dict[TopicPartitionKey, int]:
        """Partitions are being taken away; finish their work and return positions to commit."""
        return {}

    async def revoking_metadata(
        self, positions: dict[TopicPartitionKey, int]
    ) -> dict[TopicPartitionKey, str]:
        """Metadata for the final commit of ``positions`` (after :meth:`revoking`); none by default."""
        return {}

    async def revoked(self, partitions: Partitions) -> None:
        """Partitions are gone (after their final commit)."""

    async def lost(self, partitions: Partitions) -> None:
        """Partitions were lost without a chance to commit (session timeout, fencing)."""


_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\{hostname\}")


def expand_instance_id(template: str, env: Mapping[str, str] | None = None) -> str:
    """A ``group.instance.id`` from a template: ``${VAR}`` is the environment variable (for example
    ``${HOSTNAME}``, or ``${POD_NAME}`` from Kubernetes' Downward API), ``{hostname}`` is the host name.

    Raises ``ValueError`` when a variable is unset or empty, or the result is empty: replicas sharing one
    id would fence each other, so a missing name is an error, never a default.
    """
    environ = os.environ if env is None else env

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            value = socket.gethostname()
            if not value:
                raise ValueError("group.instance.id: the host name is empty")
            return value
        value = environ.get(name, "")
        if not value:
            raise ValueError(f"group.instance.id: environment variable {name} is unset or empty")
        return value

    out = _TEMPLATE.sub(sub, template).strip()
    if not out:
        raise ValueError("group.instance.id is empty")
    return out


def consumer_config(cfg: KafkaConfig) -> dict[str, Any]:
    """librdkafka properties of the consumer: the user's pass-through, then the ones the commit rule needs.

    ``group.instance.id`` (static membership) comes from ``kafka.group_instance_id`` or the pass-through
    ``kafka.client``, with its template expanded (:func:`expand_instance_id`).
    """
    conf: dict[str, Any] = {
        "auto.offset.reset": "earliest",
        # librdkafka prefetches up to 64 MB by default; 8 MB is seconds of input at full quota, and
        # the forwarder's own buffer (backpressure.max_buffered_events) is what smooths the flow.
        "queued.max.messages.kbytes": 8192,
        **cfg.client,
        "bootstrap.servers": cfg.bootstrap_servers,
        "group.id": cfg.group_id,
        "group.protocol": cfg.group_protocol,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    }
    if cfg.group_protocol == "classic":
        conf.setdefault("partition.assignment.strategy", "cooperative-sticky")
        conf.setdefault("session.timeout.ms", DEFAULT_SESSION_TIMEOUT_MS)
        conf.setdefault("heartbeat.interval.ms", DEFAULT_HEARTBEAT_INTERVAL_MS)
    # The named key is added to the schema separately; until then only the pass-through carries it.
    instance_id = getattr(cfg, "group_instance_id", None) or conf.get("group.instance.id")
    if instance_id:
        conf["group.instance.id"] = expand_instance_id(str(instance_id))
    return conf


class KafkaConsumer:
    """An asyncio face on ``confluent_kafka.Consumer``; every call goes through one thread.

    Over 200 lines on purpose: the rebalance callbacks, the consume, commit, committed and watermark
    calls all run in the consumer's one thread and share its assignment state (excluded, paused,
    seeded partitions); split across classes, that state would be shared across them instead."""

    def __init__(
        self,
        cfg: KafkaConfig,
        handler: RebalanceHandler,
        loop: asyncio.AbstractEventLoop,
        rebalance_timeout_s: float,
        on_error: Callable[[KafkaError], None] | None = None,
        exclude_topics: frozenset[str] = frozenset(),
        topic_ids: dict[str, str] | None = None,
    ) -> None:
        """``topic_ids`` (topic → the id Kafka gave it) is filled in at each assignment, before the handler
        hears of it, for the topics assigned; a topic whose id cannot be had is logged and left out."""
        self._cfg = cfg
        self._topic_ids = topic_ids
        self._admin: Any = None
        self._exclude = exclude_topics
        self._exclude_pending: list[TopicPartition] = []  # assigned, to pause at the next poll
        self._excluded: set[TopicPartitionKey] = set()  # assigned and paused for good
        self._handler = handler
        self._loop = loop
        self._rebalance_timeout = rebalance_timeout_s
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")
        conf = consumer_config(cfg)
        conf["error_cb"] = on_error or self._log_error
        self._consumer = Consumer(conf, logger=kafka_logger())
        self.rebalancing = False  # True while a rebalance callback runs (the consumer thread is busy)
        self._paused = False
        self.paused_partitions = 0

    @staticmethod
    def _log_error(err: KafkaError) -> None:
        kafka_logger().warning("kafka: %s", err.str())

    def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return self._loop.run_in_executor(self._thread, fn, *args)

    def _call_handler(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a handler coroutine on the loop and block this (consumer) thread until it returns."""
        future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=self._rebalance_timeout + 30)

    def _kept(self, partitions: list[TopicPartition]) -> Partitions:
        """The partitions the handler hears about: all but those of excluded topics."""
        return [(p.topic, p.partition) for p in partitions if p.topic not in self._exclude]

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = self._kept(partitions)
        excluded = [p for p in partitions if p.topic in self._exclude]
        if excluded:
            # Paused at the next poll, once the assignment is in force; meanwhile _consume drops their messages.
            self._exclude_pending += excluded
            log.info(
                "not consuming %s: the dead-letter topic (matched by the subscription)",
                _fmt([(p.topic, p.partition) for p in excluded]),
            )
        log.info("assigned %s", _fmt(keys))
        if self._topic_ids is not None and keys:
            self._refresh_topic_ids({topic for topic, _ in keys})
        if self._handler.reads_committed and keys:
            committed = self._committed_now(keys, self._rebalance_timeout)
            self._call_handler(self._handler.assigned_committed(keys, committed))
        else:
            self._call_handler(self._handler.assigned(keys))

    def _refresh_topic_ids(self, topics: set[str]) -> None:
        # At every assignment, not once: a topic deleted and created again comes back with another id.
        assert self._topic_ids is not None
        if self._admin is None:
            self._admin = admin_client(self._cfg)
        ids, problems = lookup_topic_ids(self._admin, topics)
        self._topic_ids.update(ids)
        for topic, why in sorted(problems.items()):
            self._topic_ids.pop(topic, None)
            log.error(
                "cannot describe topic %s (%s): its messages without eventId get topic:partition:offset ids, "
                "which repeat if the topic is created again",
                topic,
                why,
            )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget_excluded(partitions)
        keys = self._kept(partitions)
        log.info("revoking %s", _fmt(keys))
        self.rebalancing = True
        try:
            positions = self._call_handler(self._handler.revoking(keys))
            if positions:
                self._commit_now(positions, self._call_handler(self._handler.revoking_metadata(positions)))
            self._call_handler(self._handler.revoked(keys))
        finally:
            self.rebalancing = False

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget_excluded(partitions)
        keys = self._kept(partitions)
        log.warning("lost %s (no commit: another member may own them already)", _fmt(keys))
        self._call_handler(self._handler.lost(keys))

    def _forget_excluded(self, partitions: list[TopicPartition]) -> None:
        gone = {(p.topic, p.partition) for p in partitions}
        self._excluded -= gone
        self._exclude_pending = [p for p in self._exclude_pending if (p.topic, p.partition) not in gone]

    async def subscribe(self) -> None:
        """Join the group and subscribe to the configured topics."""
        await self._in_thread(
            self._consumer.subscribe,
            self._cfg.topics,
            self._on_assign,
            self._on_revoke,
            self._on_lost,
        )

    def _consume(self, max_messages: int, timeout: float, paused: bool) -> list[Message]:
        # Pause or resume right before consuming, in this thread: a pause takes effect for this very
        # call (librdkafka drops what it prefetched for paused partitions), so memory stays bounded.
        # While paused, the whole assignment is paused again each time, to catch newly assigned ones.
        if self._exclude_pending:
            self._consumer.pause(self._exclude_pending)
            self._excluded.update((p.topic, p.partition) for p in self._exclude_pending)
            self._exclude_pending = []
        if paused or self._paused:
            assignment = self._consumer.assignment()
            if not paused and self._excluded:
                assignment = [tp for tp in assignment if tp.topic not in self._exclude]  # stay paused
            if assignment:
                (self._consumer.pause if paused else self._consumer.resume)(assignment)
            self._paused = paused
            self.paused_partitions = len(assignment) if paused else 0
        # consume(n, timeout) waits out the whole timeout unless n messages come (measured: 1 message,
        # consume(1000, 1.0) returned after 1000 ms). poll() returns on the first message; what is queued
        # behind it is then drained without waiting. So a live event is not held back by the poll timeout.
        first = self._consumer.poll(timeout)
        if first is None:
            return []
        messages = [first, *self._consumer.consume(max_messages - 1, 0)] if max_messages > 1 else [first]
        if self._excluded or self._exclude_pending:
            exclude = self._exclude
            messages = [m for m in messages if m.topic() not in exclude]  # fetched before the pause
        return messages

    async def consume(self, max_messages: int, timeout: float, paused: bool = False) -> list[Message]:
        """Take up to ``max_messages``, waiting at most ``timeout`` seconds; this also serves rebalances.

        With ``paused`` every assigned partition is paused first (and resumed on the first call without);
        polling goes on meanwhile, so the group keeps this member.
        """
        result: list[Message] = await self._in_thread(self._consume, max_messages, timeout, paused)
        return result

    def _commit_now(
        self,
        positions: dict[TopicPartitionKey, int],
        metadata: Mapping[TopicPartitionKey, str] | None = None,
    ) -> dict[TopicPartitionKey, int]:
        # Only partitions still assigned: a commit queued behind a rebalance must not overwrite what the
        # partition's new owner committed.
        owned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        meta = metadata or {}
        offsets = [
            TopicPartition(t, p, o, metadata=meta[t, p]) if (t, p) in meta else TopicPartition(t, p, o)
            for (t, p), o in positions.items()
            if (t, p) in owned
        ]
        if not offsets:
            return {}
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() == KafkaError.OFFSET_METADATA_TOO_LARGE and metadata:
                # The whole call fails (measured), though the other partitions' offsets were stored:
                # commit the plain offsets, so every partition still moves.
                log.warning("commit metadata refused (%s); committing the offsets without it", err.str())
                return self._commit_now(positions)
            if err.code() != KafkaError._NO_OFFSET:
                log.warning("commit failed: %s", err.str())
            return {}
        done: dict[TopicPartitionKey, int] = {}
        for tp in result or []:
            if tp.error is None:
                done[(tp.topic, tp.partition)] = tp.offset
            else:
                log.warning("commit of %s[%d] failed: %s", tp.topic, tp.partition, tp.error.str())
        return done

    async def commit(
        self,
        positions: dict[TopicPartitionKey, int],
        metadata: Mapping[TopicPartitionKey, str] | None = None,
    ) -> dict[TopicPartitionKey, int]:
        """Commit the positions synchronously; return those the broker accepted.

        ``metadata`` (optional, per partition) is stored with the offset and read back by
        :meth:`committed`. The broker refuses metadata of ``offset.metadata.max.bytes`` characters or
        more (the client adds a NUL; 4,096 by default, so 4,095 is the most); then these positions are
        committed again without metadata (logged), so offsets move all the same.
        """
        done: dict[TopicPartitionKey, int] = await self._in_thread(self._commit_now, positions, metadata)
        return done

    def _committed_now(self, partitions: Partitions, timeout: float) -> dict[TopicPartitionKey, Committed]:
        try:
            result = self._consumer.committed(
                [TopicPartition(t, p) for t, p in partitions], timeout=max(timeout, 1.0)
            )
        except KafkaException as exc:
            log.warning("reading committed offsets of %s failed: %s", _fmt(partitions), exc.args[0].str())
            return {}
        out: dict[TopicPartitionKey, Committed] = {}
        for tp in result:
            if tp.error is not None:
                log.warning(
                    "reading the committed offset of %s[%d] failed: %s",
                    tp.topic,
                    tp.partition,
                    tp.error.str(),
                )
                continue
            out[(tp.topic, tp.partition)] = Committed(
                tp.offset if tp.offset >= 0 else None, tp.metadata or ""
            )
        return out

    async def committed(
        self, partitions: Partitions, timeout: float = 10.0
    ) -> dict[TopicPartitionKey, Committed]:
        """The group's committed offset and metadata of each partition that could be read (not from a
        rebalance callback: those run in the consumer thread; use ``reads_committed`` there)."""
        result: dict[TopicPartitionKey, Committed] = await self._in_thread(
            self._committed_now, partitions, timeout
        )
        return result

    def _watermarks(self, partitions: Partitions) -> dict[TopicPartitionKey, int]:
        out: dict[TopicPartitionKey, int] = {}
        for topic, partition in partitions:
            try:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                out[(topic, partition)] = high
        return out

    async def watermarks(self, partitions: Partitions) -> dict[TopicPartitionKey, int]:
        """High watermarks the client knows (from fetch responses), for lag."""
        result: dict[TopicPartitionKey, int] = await self._in_thread(self._watermarks, partitions)
        return result

    def _reachable(self) -> bool:
        try:
            return bool(self._consumer.list_topics(timeout=2).brokers)
        except KafkaException:
            return False

    async def reachable(self) -> bool:
        """Whether a broker answers a metadata request (only asked while brokers seem down)."""
        result: bool = await self._in_thread(self._reachable)
        return result

    async def close(self) -> None:
        """Leave the group (a final revoke commits what is finished) and stop the thread."""
        await self._in_thread(self._consumer.close)
        self._thread.shutdown(wait=True)


def _fmt(keys: Partitions) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in sorted(keys)) or "nothing"
