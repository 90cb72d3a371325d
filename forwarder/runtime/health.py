"""Health: the liveness and readiness probes, and the observations behind them (loop turning, broker
reachable, consumer lag).

- live: the ticker ran within :data:`STALL_AFTER_S` (a replica still starting is live);
- ready: not stopping, PutEvents not in an outage, no input outage (a schema registry that does not
  answer), a broker reachable, at least one partition assigned.
"""

from __future__ import annotations

from collections.abc import Callable

from forwarder.metrics import Metrics
from forwarder.offsets import OffsetTracker, TopicPartitionKey
from forwarder.runtime.source import Source
from forwarder.runtime.supervisor import Supervisor
from forwarder.send import Sender

STALL_AFTER_S = 30.0  # /healthz fails when the loop has not turned for this long


class Health:
    """What the probes report; the ticker and the pump feed it."""

    def __init__(
        self,
        supervisor: Supervisor,
        sender: Sender,
        assignment: set[TopicPartitionKey],
        clock: Callable[[], float],
    ) -> None:
        self._supervisor = supervisor
        self._sender = sender
        self._assignment = assignment
        self._clock = clock
        self.started = False
        self.last_tick = 0.0
        self.broker_down = False  # set from the consumer's error callback, cleared by a message or a probe
        self.input_outage: str | None = None  # set by the pump while decoding waits on the registry

    def liveness(self) -> tuple[bool, str]:
        """The loop is turning (the ticker ran recently)."""
        if not self.started:
            return True, "starting"
        age = self._clock() - self.last_tick
        if age > STALL_AFTER_S:
            return False, f"event loop stalled for {age:.0f}s"
        return True, "loop turning"

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
