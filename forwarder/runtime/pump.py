"""Pump: the consume loop. Poll the source, take each message, decode it, batch it, hand full batches to
dispatch, and re-apply flow control after every poll.

Every message taken is tracked (:meth:`forwarder.offsets.PartitionOffsets.track`) before anything else
happens to it, and travels in an :class:`~forwarder.outcome.Envelope` with its commit coordinates until it
is finished: accepted, dead-lettered and acknowledged, or skipped by a replay's filter. A message the
tracker says was finished before (seeded from the commit metadata at assignment) is counted as skipped
and goes no further. A message of a
partition no longer assigned here (revoked while the poll was served) is not taken: the new owner reads it.
"""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import KafkaError, Message

from forwarder.batch import Batcher
from forwarder.decode import Decoder, Event
from forwarder.metrics import Metrics
from forwarder.offsets import OffsetTracker
from forwarder.outcome import Envelope, Reason
from forwarder.runtime.dispatch import Dispatcher
from forwarder.runtime.flow import FlowControl
from forwarder.runtime.health import Health
from forwarder.runtime.hooks import Hooks
from forwarder.runtime.source import Source
from forwarder.runtime.supervisor import Supervisor

POLL_TIMEOUT_S = 0.05


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

    async def run(self) -> None:
        """Poll and take until a stop is requested."""
        source, supervisor, flow = self._source, self._supervisor, self._flow
        while not supervisor.stopping:
            messages = await source.consume(self._poll_batch_size, POLL_TIMEOUT_S, paused=flow.paused)
            if messages:
                self._health.broker_down = False
                self.take(messages)
                self.apply_flow()

    def apply_flow(self) -> None:
        """Decide whether consumption pauses; the next poll applies it."""
        self._flow.update(self._dispatcher.load(), self._dispatcher.sender.in_outage)

    def take(self, messages: list[Message]) -> None:
        """Track, decode and batch each message; dispatch the batches that became full."""
        now = self._clock()
        tracker_get = self._tracker.get
        decode = self._decoder.decode
        add = self._batcher.add
        dispatch = self._dispatcher.dispatch
        hooks = self._hooks
        prepare = hooks.prepare if hooks is not None else None
        both = skipped = 0
        for consumed in messages:
            err = consumed.error()
            if err is not None:
                self._message_error(err)
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
        self._metrics.messages_consumed.inc(len(messages))
        if both:
            self._metrics.both_impression_kinds.inc(both)
        if skipped:
            self._metrics.messages_skipped.labels("finished_before").inc(skipped)

    def _message_error(self, err: KafkaError) -> None:
        if err.code() != KafkaError._PARTITION_EOF:
            self._supervisor.kafka_error(err, "consumer")
