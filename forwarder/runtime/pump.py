"""Pump: the consume loop. Poll the source, take each message, decode it, batch it, hand full batches to
dispatch, and re-apply flow control after every poll.

Every message taken is tracked (:meth:`forwarder.offsets.PartitionOffsets.track`) before anything else
happens to it, and travels in an :class:`~forwarder.outcome.Envelope` with its commit coordinates until it
is finished: accepted, dead-lettered and acknowledged, or skipped by a replay's filter. A message the
tracker says was finished before (seeded from the commit metadata at assignment) is counted as skipped
and goes no further. A message of a
partition no longer assigned here (revoked while the poll was served) is not taken: the new owner reads it.

Holding (registry formats, :mod:`forwarder.formats`): a message whose schema id was not read yet is decoded
in a worker thread (the registry client's first fetch of an id is a blocking HTTP call), so the loop, the
probes and the sends in flight go on meanwhile. Until it is decoded, the messages after it (of this poll
and of any poll while it waits) are held, in Kafka order. When the registry gives no answer
(``RegistryUnavailable``) the held message is an *input outage*, not bad data: flow control pauses
consumption, ``/readyz`` says so, nothing is dead-lettered, the held message stays unfinished (no commit
passes it), and the decode is tried again with a growing delay (:data:`RETRY_FIRST_S` doubling up to
:data:`RETRY_MAX_S`) until the registry answers; then the held messages go on in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, Message

from forwarder.batch import Batcher
from forwarder.decode import Decoder, Event
from forwarder.formats.base import RegistryUnavailable
from forwarder.metrics import Metrics
from forwarder.offsets import OffsetTracker, PartitionOffsets, TopicPartitionKey
from forwarder.outcome import Envelope, Reason
from forwarder.runtime.dispatch import Dispatcher
from forwarder.runtime.flow import FlowControl
from forwarder.runtime.health import Health
from forwarder.runtime.hooks import Hooks
from forwarder.runtime.source import Source
from forwarder.runtime.supervisor import Supervisor

POLL_TIMEOUT_S = 0.05
RETRY_FIRST_S = 0.25  # first wait before decoding a held message again, in an input outage
RETRY_MAX_S = 5.0  # the longest wait between two tries

log = logging.getLogger("forwarder.runtime")


class Pump:
    """Moves messages from the source into the batcher until the replica stops."""

    def __init__(
        self,
        source: Source,
        tracker: OffsetTracker,
        decoder: Decoder,
        dispatcher: Dispatcher,
        flow: FlowControl,
        health: Health,
        supervisor: Supervisor,
        metrics: Metrics,
        clock: Callable[[], float],
        poll_batch_size: int,
        hooks: Hooks | None = None,
    ) -> None:
        self._source = source
        self._tracker = tracker
        self._decoder = decoder
        self._dispatcher = dispatcher
        self._batcher: Batcher = dispatcher.batcher
        self._flow = flow
        self._health = health
        self._supervisor = supervisor
        self._metrics = metrics
        self._clock = clock
        self._poll_batch_size = poll_batch_size
        self._hooks = hooks
        # Hands a record route's message to its route; None without routes: the events path pays one check.
        self._route_of = None if dispatcher.routes is None else dispatcher.routes.take
        # Holding: the tracked message waiting for a decode, the messages polled after it (not yet
        # tracked) with the partition state they were polled under, and when to try the decode again.
        self._held: Envelope | None = None
        self._backlog: list[tuple[Message, PartitionOffsets | None]] = []
        self._retry_at = 0.0
        self._retry_wait = RETRY_FIRST_S
        self.input_outage: str | None = None  # why decoding waits on the registry, while it does

    async def run(self) -> None:
        """Poll and take until a stop is requested."""
        source, supervisor, flow = self._source, self._supervisor, self._flow
        while not supervisor.stopping:
            if self._held is not None:
                await self._release()
                if self._held is None:
                    continue
            messages = await source.consume(
                self._poll_batch_size, POLL_TIMEOUT_S, paused=flow.paused or self._held is not None
            )
            self._health.polled()
            if messages:
                self._health.broker_down = False
                self.take(messages)
                self.apply_flow()

    @property
    def holding(self) -> int:
        """Messages polled but held behind one waiting for its decode."""
        return 0 if self._held is None else 1 + len(self._backlog)

    def apply_flow(self) -> None:
        """Decide whether consumption pauses; the next poll applies it."""
        self._flow.update(
            self._dispatcher.load(), self._dispatcher.sender.in_outage, input_outage=self.input_outage
        )

    def take(self, messages: list[Message]) -> None:
        """Track, decode and batch each message; dispatch the batches that became full. Behind a held
        message, the messages are held too (in order)."""
        if self._held is not None:
            self._backlog.extend(_with_state(messages, self._tracker.get))
            return
        self._take(messages, 0)

    def _take(self, messages: list[Message], start: int) -> None:
        now = self._clock()
        tracker_get = self._tracker.get
        decode = self._decoder.decode
        add = self._batcher.add
        dispatch = self._dispatcher.dispatch
        hooks = self._hooks
        prepare = hooks.prepare if hooks is not None else None
        needs_registry, route_of = self._decoder.needs_registry, self._route_of
        both = skipped = 0
        taken = len(messages) - start
        for index in range(start, len(messages)):
            consumed = messages[index]
            err = consumed.error()
            if err is not None:
                _message_error(self._supervisor, err)
                continue
            origin = tracker_get((consumed.topic() or "", consumed.partition() or 0))
            if origin is None:
                continue  # revoked while this poll was served: never committed here, the new owner reads it
            if hooks is not None and not hooks.accept(consumed):
                continue
            offset = consumed.offset() or 0
            if origin.track(offset):
                skipped += 1  # finished by a previous owner (commit metadata): never sent again
                continue
            msg = consumed if prepare is None else prepare(consumed)
            if msg is None:
                origin.finish(offset)  # not for this run (a replay's filter): nothing to do
                continue
            source = Envelope(msg, origin, offset)
            if route_of is not None and route_of(source):
                continue  # a record route's message (items, users...): its route took it
            if needs_registry is not None:
                value = msg.value()
                if value is not None and needs_registry(value, msg):
                    self._hold(source, messages, index + 1, None)
                    taken = index + 1 - start
                    break
                try:
                    decoded = decode(source)
                except RegistryUnavailable as exc:  # a cached schema, a registry asked again: rare
                    self._hold(source, messages, index + 1, exc)
                    taken = index + 1 - start
                    break
            else:
                decoded = decode(source)
            if type(decoded) is Reason:
                self._dispatcher.dead_letter(source, decoded)
                continue
            assert isinstance(decoded, Event)
            if decoded.both_impression_kinds:
                both += 1
            batch = add(decoded, now)
            if batch is not None:
                dispatch(batch)
        _count_taken(self._metrics, taken, both, skipped)

    def _route(self, source: Envelope, decoded: Event | Reason) -> None:
        """A decoded message to the batcher (a full batch dispatched), or a rejection to the dead letters."""
        if type(decoded) is Reason:
            self._dispatcher.dead_letter(source, decoded)
            return
        assert isinstance(decoded, Event)
        if decoded.both_impression_kinds:
            self._metrics.both_impression_kinds.inc()
        batch = self._batcher.add(decoded, self._clock())
        if batch is not None:
            self._dispatcher.dispatch(batch)

    def _hold(
        self, source: Envelope, messages: list[Message], rest: int, outage: RegistryUnavailable | None
    ) -> None:
        self._held = source
        self._backlog = _with_state(messages[rest:], self._tracker.get)
        if outage is not None:
            self._enter_outage(outage)
        else:
            self._retry_at = 0.0  # decode it in a worker thread at once

    def _enter_outage(self, exc: RegistryUnavailable) -> None:
        if self.input_outage is None:
            log.warning(
                "input outage: %s; holding %d messages, decoding again until it answers", exc, self.holding
            )
            self._retry_wait = RETRY_FIRST_S
        self.input_outage = self._health.input_outage = f"schema registry: {exc}"
        self._retry_at = self._clock() + self._retry_wait
        self._retry_wait = min(RETRY_MAX_S, self._retry_wait * 2)
        self.apply_flow()

    async def _release(self) -> None:
        """Decode the held message in a worker thread (when its retry is due), then take the messages held
        behind it, in order; in an outage, wait for the next try."""
        held = self._held
        assert held is not None
        if self._clock() < self._retry_at:
            return
        tp: TopicPartitionKey = (held.message.topic() or "", held.message.partition() or 0)
        if self._tracker.get(tp) is held.origin:
            try:
                decoded = await asyncio.to_thread(self._decoder.decode, held)
            except RegistryUnavailable as exc:
                self._enter_outage(exc)
                return
            if self._tracker.get(tp) is held.origin:  # not revoked while the thread decoded it
                self._route(held, decoded)
        if self.input_outage is not None:
            log.warning(
                "input outage over: the schema registry answers; taking the %d held messages", self.holding
            )
            self.input_outage = self._health.input_outage = None
        self._held = None
        backlog, self._backlog = self._backlog, []
        rest = _still_owned(backlog, self._tracker.get)
        self._metrics.messages_consumed.inc(len(backlog) - len(rest))
        self._take(rest, 0)
        self.apply_flow()


PartitionState = Callable[[TopicPartitionKey], PartitionOffsets | None]


def _with_state(
    messages: list[Message], get: PartitionState
) -> list[tuple[Message, PartitionOffsets | None]]:
    """Each message with the partition state it was polled under (``None``: not assigned here)."""
    return [(m, get((m.topic() or "", m.partition() or 0))) for m in messages]


def _still_owned(
    backlog: list[tuple[Message, PartitionOffsets | None]], get: PartitionState
) -> list[Message]:
    """The held messages to take now. A message polled under a partition state that is gone (revoked,
    maybe assigned again since) is not taken: its partition's owner reads it again from the committed
    position. Errors are kept: they are reported when taken."""
    return [
        m
        for m, state in backlog
        if m.error() is not None
        or (state is not None and get((m.topic() or "", m.partition() or 0)) is state)
    ]


def _count_taken(metrics: Metrics, taken: int, both: int, skipped: int) -> None:
    """Count one poll's messages taken, events with both impression kinds, and messages skipped."""
    metrics.messages_consumed.inc(taken)
    if both:
        metrics.both_impression_kinds.inc(both)
    if skipped:
        metrics.messages_skipped.labels("finished_before").inc(skipped)


def _message_error(supervisor: Supervisor, err: KafkaError) -> None:
    """A message that is an error: the end of a partition is none; any other goes to the supervisor."""
    if err.code() != KafkaError._PARTITION_EOF:
        supervisor.kafka_error(err, "consumer")
