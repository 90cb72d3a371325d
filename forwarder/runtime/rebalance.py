"""Rebalance: partitions assigned, revoking, revoked and lost.

- assigned: the partition is tracked from now on, seeded with the offsets above its committed one that
  the previous owner had finished (the commit metadata, :mod:`forwarder.commit_metadata`); metadata that
  does not decode for that committed offset (another tool's, another format) is ignored with a warning;
- revoking: flush, and wait (bounded by ``shutdown.timeout_s``, 2 s when the replica is stopping) until
  the revoked partitions' messages are finished; return their positions, which the source commits
  before letting them go, each with the finished offsets above it as metadata. The wait is :meth:`forwarder.runtime.dispatch.Dispatcher.drain`, the same one
  the shutdown uses;
- revoked / lost: forget the partitions and their buffered events. Lost ones are not committed (another
  member may own them already); late outcomes of their messages land on the detached partition state and
  change nothing.
"""

from __future__ import annotations

import contextlib
import logging

from forwarder.commit_metadata import FinishedOffsets, UnreadableMetadata, decode
from forwarder.consume import Committed, Partitions, RebalanceHandler
from forwarder.metrics import Metrics
from forwarder.offsets import OffsetTracker, PlannedCommit, TopicPartitionKey
from forwarder.runtime.dispatch import Dispatcher
from forwarder.runtime.supervisor import Supervisor

log = logging.getLogger("forwarder.runtime")
STOPPING_REVOKE_BUDGET_S = 2.0  # a revoke during shutdown: the shutdown has already drained


class Rebalancer(RebalanceHandler):
    """Keeps the assignment, the tracker and the batcher in step with the group."""

    reads_committed = True  # new partitions come with their committed offset and metadata

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
        self._revoke_plan: dict[TopicPartitionKey, PlannedCommit] = {}

    async def assigned(self, partitions: Partitions) -> None:
        """Track newly assigned partitions (nothing known of what was finished before)."""
        await self.assigned_committed(partitions, {})

    async def assigned_committed(
        self, partitions: Partitions, committed: dict[TopicPartitionKey, Committed]
    ) -> None:
        """Track newly assigned partitions, each seeded with what its commit metadata says is finished."""
        for tp in partitions:
            c = committed.get(tp)
            offset = c.offset if c is not None else None
            finished = self._seed(tp, c) if c is not None else None
            self._tracker.assign(tp, finished, offset)
            self.assignment.add(tp)
        self._metrics.rebalances.labels("assign").inc()
        self._metrics.assigned_partitions.set(len(self.assignment))

    def _seed(self, tp: TopicPartitionKey, committed: Committed) -> FinishedOffsets | None:
        if committed.offset is None or not committed.metadata:
            return None
        try:
            finished = decode(committed.metadata, committed.offset)
        except UnreadableMetadata as exc:
            self._metrics.commit_metadata_unreadable.inc()
            log.warning(
                "%s[%d]: commit metadata at offset %d ignored (%s): every message from there is sent",
                tp[0],
                tp[1],
                committed.offset,
                exc,
            )
            return None
        if finished:
            log.info(
                "%s[%d]: %d messages above offset %d were finished before: skipped",
                tp[0],
                tp[1],
                len(finished),
                committed.offset,
            )
        return finished

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
        plan = self._tracker.commit_plan(only=revoked)
        misses = sum(planned.metadata is None for planned in plan.values())
        if misses:
            self._metrics.commit_metadata_misses.inc(misses)
        self._revoke_plan = plan
        return {tp: planned.position for tp, planned in plan.items()}

    async def revoking_metadata(
        self, positions: dict[TopicPartitionKey, int]
    ) -> dict[TopicPartitionKey, str]:
        """The metadata planned with the positions :meth:`revoking` returned (the same snapshot)."""
        plan, self._revoke_plan = self._revoke_plan, {}
        out: dict[TopicPartitionKey, str] = {}
        for tp, pos in positions.items():
            planned = plan.get(tp)
            if planned is not None and planned.position == pos and planned.metadata:
                out[tp] = planned.metadata
        return out

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
        if self._dispatcher.routes is not None:
            self._dispatcher.routes.discard(gone)
        metrics.assigned_partitions.set(len(self.assignment))
