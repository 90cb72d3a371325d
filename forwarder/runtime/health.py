"""Health: the liveness and readiness probes, and the observations behind them (loop turning, consumer
polled, broker reachable, consumer lag).

- live: the ticker ran within :data:`STALL_AFTER_S`, the pump's last poll returned within
  ``poll_stall_s``, and the replica is not stopping after a failure (a fatal Kafka client error such as
  a fenced static member, or a failed task). A replica still starting is live. The probe server reads
  this from its own thread (:mod:`forwarder.probe_server`), so a loop that stopped turning is reported
  as such instead of not answering.
- ready: not stopping, PutEvents not in an outage, no input outage (a schema registry that does not
  answer), a broker reachable, at least one partition assigned.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from forwarder.metrics import Metrics
from forwarder.offsets import OffsetTracker, TopicPartitionKey
from forwarder.runtime.source import Source
from forwarder.runtime.supervisor import Supervisor
from forwarder.send import Sender

# /healthz fails when the loop has not turned for this long. A healthy loop ticks every 50 ms; 15 s is
# far above any GC pause or decode burst, and with the Deployment's probe (every 10 s, 3 failures) a
# stalled replica is restarted within about 45 s.
STALL_AFTER_S = 15.0


def poll_stall_after(revoke_timeout_s: float) -> float:
    """How long the pump may go without a poll returning before /healthz fails: a revoke holds the poll
    for up to ``revoke_timeout_s`` (``shutdown.timeout_s``) while the revoked partitions drain, so the
    bound is that plus :data:`STALL_AFTER_S`. librdkafka's heartbeats do not depend on it (they come
    from its own thread); ``max.poll.interval.ms`` (300 s) does, and this bound is well below it."""
    return revoke_timeout_s + STALL_AFTER_S


class Health:
    """What the probes report; the ticker and the pump feed it.

    ``clock`` must be readable from any thread and must not stand still while the loop does:
    ``time.monotonic``, not the loop's ``time()`` (uvloop's is cached per loop turn)."""

    def __init__(
        self,
        supervisor: Supervisor,
        sender: Sender,
        assignment: set[TopicPartitionKey],
        clock: Callable[[], float] = time.monotonic,
        poll_stall_s: float = STALL_AFTER_S,
    ) -> None:
        self._supervisor = supervisor
        self._sender = sender
        self._assignment = assignment
        self._clock = clock
        self._poll_stall_s = poll_stall_s
        self.started = False
        self.started_at = 0.0
        self.last_tick = 0.0  # set by the ticker each turn
        self.last_poll = 0.0  # set by the pump each time a poll returns
        self.broker_down = False  # set from the consumer's error callback, cleared by a message or a probe
        self.input_outage: str | None = None  # set by the pump while decoding waits on the registry

    def liveness(self) -> tuple[bool, str]:
        """The loop is turning, the consumer is polled, and no failure is stopping the replica.

        Safe to call from another thread: it only reads numbers and strings the loop writes."""
        failure = self._supervisor.failure
        if failure is not None:
            return False, f"stopping after a failure: {failure}"
        if not self.started:
            return True, "starting"
        now = self._clock()
        tick_age = now - self.last_tick
        if tick_age > STALL_AFTER_S:
            return False, f"event loop stalled for {tick_age:.0f}s"
        poll_age = now - max(self.last_poll, self.started_at)
        # A graceful stop polls no more; its length is bounded by the exit deadline, not by this probe.
        if poll_age > self._poll_stall_s and not self._supervisor.stopping:
            return False, f"consumer not polled for {poll_age:.0f}s"
        return True, "loop turning"

    def ticked(self) -> None:
        """The ticker turned (called by it, on the loop)."""
        self.last_tick = self._clock()

    def polled(self) -> None:
        """A poll of the consumer returned (called by the pump, on the loop)."""
        self.last_poll = self._clock()

    def start(self) -> None:
        """The replica subscribed: from now on the loop must tick and the pump must poll."""
        self.started_at = self.last_tick = self._clock()
        self.started = True

    def readiness(self) -> tuple[bool, str]:
        """Partitions assigned, broker reachable, PutEvents not in an outage, not stopping."""
        if self._supervisor.stopping:
            return False, "stopping"
        if self._sender.in_outage:
            return False, f"PutEvents outage: {self._sender.outage_reason}"
        if self.input_outage is not None:
            return False, f"input outage: {self.input_outage}"
        if self.broker_down:
            return False, "no Kafka broker reachable"
        if not self._assignment:
            return False, "no partition assigned (more replicas than partitions, or joining the group)"
        return True, f"{len(self._assignment)} partitions assigned"

    async def observe(self, source: Source, tracker: OffsetTracker, metrics: Metrics) -> None:
        """Update the lag gauges from the high watermarks; while brokers seemed down, ask again."""
        if source.rebalancing:
            return
        highs = await source.watermarks(tracker.partitions())
        for tp, high in highs.items():
            state = tracker.get(tp)
            if state is None:
                continue
            position = state.committed if state.committed is not None else state.position
            if position is not None:
                metrics.consumer_lag.labels(tp[0], str(tp[1])).set(max(0, high - position))
        if self.broker_down:
            self.broker_down = not await source.reachable()
