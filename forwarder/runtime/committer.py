"""Committer: when to commit, and what.

What: only tracker positions (:meth:`forwarder.offsets.OffsetTracker.commit_positions`), i.e. each
partition up to its lowest unfinished offset, and only those that moved since the last accepted commit.
When: :class:`CommitPolicy` says (every ``interval_s``, one commit at a time, none while a rebalance runs:
the consumer thread is then serving the rebalance, which commits the revoked partitions itself).
"""

from __future__ import annotations

from dataclasses import dataclass

from forwarder.metrics import Metrics
from forwarder.offsets import OffsetTracker, TopicPartitionKey
from forwarder.runtime.source import Source


@dataclass(frozen=True, slots=True)
class CommitPolicy:
    """Commit every ``interval_s`` seconds, never two at once."""

    interval_s: float

    def due(self, now: float, last: float, running: bool) -> bool:
        """Whether a periodic commit starts now, the last one having started at ``last``."""
        return not running and now - last >= self.interval_s


class Committer:
    """Commits tracker positions through the source and records what the broker accepted."""

    def __init__(
        self, source: Source, tracker: OffsetTracker, metrics: Metrics, policy: CommitPolicy
    ) -> None:
        self._source = source
        self._tracker = tracker
        self._metrics = metrics
        self.policy = policy
        self.running = False
        self.last = 0.0

    def due(self, now: float) -> bool:
        """Whether the policy wants a commit now; if so, the interval restarts from ``now``."""
        if not self.policy.due(now, self.last, self.running):
            return False
        self.last = now
        return True

    async def commit(self) -> dict[TopicPartitionKey, int]:
        """Commit every position that moved; return those the broker accepted."""
        if self._source.rebalancing:
            return {}
        positions = self._tracker.commit_positions()
        if not positions:
            return {}
        self.running = True
        try:
            done = await self._source.commit(positions)
        finally:
            self.running = False
        self._tracker.mark_committed(done)
        for (topic, partition), offset in done.items():
            self._metrics.committed_offset.labels(topic, str(partition)).set(offset)
        return done
