"""Dispatch: batches to the sender, outcomes to where they belong.

- accepted by PutEvents → the event's offset is finished;
- failed (rejected by the service, or retries exhausted) → the message goes to the dead-letter topic,
  and its offset is finished once the broker acknowledged the copy;
- either way the session's next batch, if one is ready, leaves at once (one batch per session out).

The same path dead-letters what decode rejects (:meth:`Dispatcher.dead_letter`). :meth:`Dispatcher.drain`
is the one flush-and-wait loop that both a revoke and the shutdown use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from confluent_kafka import Message

from forwarder.batch import Batch, Batcher
from forwarder.metrics import Metrics
from forwarder.outcome import Envelope, Reason, Stage
from forwarder.runtime.supervisor import Supervisor
from forwarder.send import Sender

if TYPE_CHECKING:
    from forwarder.runtime.routes import Routes

DRAIN_STEP_S = 0.005  # how often a drain serves dead-letter deliveries and due batches


class DeadLetters(Protocol):
    """The dead-letter writer as the runtime uses it (:class:`forwarder.dead_letter.DeadLetterWriter`)."""

    @property
    def pending(self) -> int:
        """Records written and not acknowledged yet."""

    def write(
        self, message: Message, reason: Reason, on_done: Callable[[], None], session_id: str | None = None
    ) -> None:
        """Write a record; ``on_done`` runs once the broker acknowledged it."""

    def poll(self) -> None:
        """Serve delivery callbacks."""

    def flush(self, timeout: float) -> int:
        """Wait for outstanding records; return how many are still pending."""


class Dispatcher:
    """Sends batches as tasks, routes their outcomes, and counts events in flight."""

    def __init__(
        self,
        batcher: Batcher,
        sender: Sender,
        dead_letters: DeadLetters,
        metrics: Metrics,
        supervisor: Supervisor,
        clock: Callable[[], float],
    ) -> None:
        self.batcher = batcher
        self.sender = sender
        self.dead_letters = dead_letters
        self._metrics = metrics
        self._supervisor = supervisor
        self._clock = clock
        self.in_flight_events = 0
        self.routes: Routes | None = None  # the record routes (forwarder.runtime.routes), when configured

    def load(self) -> int:
        """Events held in memory: buffered, in PutEvents calls, or awaiting a dead-letter acknowledgement
        (the record routes' records included)."""
        held = self.batcher.buffered + self.in_flight_events + self.dead_letters.pending
        return held if self.routes is None else held + self.routes.load()

    def dispatch(self, batch: Batch) -> None:
        """Send a batch in its own task."""
        self.in_flight_events += len(batch.events)
        self._supervisor.spawn(self._send(batch))

    def dispatch_due(self) -> None:
        """Send every batch whose linger has passed (every pending one while flushing)."""
        for batch in self.batcher.due(self._clock()):
            self.dispatch(batch)
        if self.routes is not None:
            self.routes.dispatch_due()

    def dead_letter(self, source: Envelope, reason: Reason, session_id: str | None = None) -> None:
        """Dead-letter the envelope's message; finish its offset once the broker has the copy."""
        self.dead_letters.write(source.message, reason, source.finish, session_id)

    async def _send(self, batch: Batch) -> None:
        result = await self.sender.send(batch)
        for ev in result.accepted:
            ev.source.finish()
        metrics = self._metrics
        metrics.events_sent.inc(len(result.accepted))
        if result.retries:
            metrics.retries.inc(result.retries)
        exhausted = False
        for failure in result.failed:
            ev = failure.event
            exhausted |= failure.reason.stage is Stage.RETRY_EXHAUSTED
            self.dead_letter(ev.source, failure.reason, ev.key.session_id)
        if exhausted:
            metrics.batches_exhausted.inc()
        self.in_flight_events -= len(batch.events)
        following = self.batcher.complete(batch.key, self._clock())
        if following is not None:
            self.dispatch(following)

    async def drain(self, busy: Callable[[], bool], budget_s: float) -> None:
        """Flush every session and serve sends and dead-letter deliveries until ``busy()`` is false or
        ``budget_s`` has passed. Flush mode stays on afterwards once the replica is stopping."""
        self._set_flushing(True)
        try:
            self.dispatch_due()
            deadline = self._clock() + budget_s
            while busy() and self._clock() < deadline:
                self.dead_letters.poll()  # the ticker may be waiting; deliveries must still be served
                self.dispatch_due()
                await asyncio.sleep(DRAIN_STEP_S)
        finally:
            if not self._supervisor.stopping:
                self._set_flushing(False)

    def _set_flushing(self, flushing: bool) -> None:
        self.batcher.set_flushing(flushing)
        if self.routes is not None:
            self.routes.set_flushing(flushing)
