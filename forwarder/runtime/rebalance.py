"""Rebalance: partitions assigned, revoking, revoked and lost.

- assigned: the partition is tracked from now on;
- revoking: flush, and wait (bounded by ``shutdown.timeout_s``, 2 s when the replica is stopping) until
  the revoked partitions' messages are finished; return their positions, which the source commits
  before letting them go. The wait is :meth:`forwarder.runtime.dispatch.Dispatcher.drain`, the same one
  the shutdown uses;
- revoked / lost: forget the partitions and their buffered events. Lost ones are not committed (another
  member may own them already); late outcomes of their messages land on the detached partition state and
  change nothing.
"""

from __future__ import annotations

import contextlib
import logging

from forwarder.consume import Partitions, RebalanceHandler
from forwarder.metrics import Metrics
from forwarder.offsets import OffsetTracker, TopicPartitionKey
from forwarder.runtime.dispatch import Dispatcher
from forwarder.runtime.supervisor import Supervisor

log = logging.getLogger("forwarder.runtime")
STOPPING_REVOKE_BUDGET_S = 2.0  # a revoke during shutdown: the shutdown has already drained


class Rebalancer(RebalanceHandler):
    """Keeps the assignment, the tracker and the batcher in step with the group."""

    def __init__(
        self,
        tracker: OffsetTracker,
        dispatcher: Dispatcher,
        metrics: Metrics,
        supervisor: Supervisor,
        timeout_s: float,
    ) -> None:
        self._tracker = tracker
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._supervisor = supervisor
        self._timeout_s = timeout_s
        self.assignment: set[TopicPartitionKey] = set()

    async def assigned(self, partitions: Partitions) -> None:
        """Track newly assigned partitions."""
        for tp in partitions:
            self._tracker.assign(tp)
            self.assignment.add(tp)
        self._metrics.rebalances.labels("assign").inc()
        self._metrics.assigned_partitions.set(len(self.assignment))

    async def revoking(self, partitions: Partitions) -> dict[TopicPartitionKey, int]:
        """Flush, wait for the revoked partitions' messages to finish (bounded), return their positions."""
        revoked = set(partitions)
        self._metrics.rebalances.labels("revoke").inc()
        budget = STOPPING_REVOKE_BUDGET_S if self._supervisor.stopping else self._timeout_s
        # Flush every session, not only the revoked partitions' ones: simpler, and rebalances are rare.
        await self._dispatcher.drain(lambda: self._tracker.unfinished(revoked) > 0, budget)
        left = self._tracker.unfinished(revoked)
        if left:
            log.warning(
                "%d messages of revoked partitions unfinished after %.0fs: committing before them; the new "
                "owner delivers them again",
                left,
                budget,
            )
        return self._tracker.commit_positions(only=revoked)

    async def revoked(self, partitions: Partitions) -> None:
        """Forget revoked partitions and any of their events still buffered."""
        self._forget(partitions)

    async def lost(self, partitions: Partitions) -> None:
        """Forget lost partitions without committing."""
        self._metrics.rebalances.labels("lost").inc()
        self._forget(partitions)

    def _forget(self, partitions: Partitions) -> None:
        gone = set(partitions)
        metrics = self._metrics
        for tp in gone:
            self._tracker.drop(tp)
            self.assignment.discard(tp)
            # Another replica reports this partition now: a frozen series here would mislead alerts.
            for gauge in (metrics.consumer_lag, metrics.committed_offset):
                with contextlib.suppress(KeyError):
                    gauge.remove(tp[0], str(tp[1]))
        self._dispatcher.batcher.discard(lambda ev: ev.source.origin.tp not in gone)
        metrics.assigned_partitions.set(len(self.assignment))
