"""Committer: when to commit, and what.

What: the tracker's plan (:meth:`forwarder.offsets.OffsetTracker.commit_plan`): each partition up to its
lowest unfinished offset, with the finished offsets above it in the commit metadata (issue #14), and
only partitions whose commit changed since the last accepted one (the position moved, or only the
finished set grew). A set too large for the metadata is committed as the plain offset and counted in
``forwarder_commit_metadata_misses_total``.
When: :class:`CommitPolicy` says (every ``interval_s``, one commit at a time, none while a rebalance runs:
the consumer thread is then serving the rebalance, which commits the revoked partitions itself). A
periodic commit rebuilds a partition's large finished set (over ``forwarder.offsets.HOLD_ABOVE``
offsets) at most every ``metadata_interval_s`` (``METADATA_EVERY`` intervals): in a catch-up every
partition has thousands of finished offsets above its position at every commit, and building and
encoding them five times a second cost more than the rest of the commit path (docs/benchmarks.md).
Small sets, and the final commit at shutdown, are never held.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from forwarder.metrics import Metrics
from forwarder.offsets import OffsetTracker, TopicPartitionKey
from forwarder.runtime.source import Source

# A partition whose commit carries a large finished set is committed at most every this many intervals
# (1 s at the default 200 ms, the commit interval before #14): a crash repeats at most that much more.
METADATA_EVERY = 5


@dataclass(frozen=True, slots=True)
class CommitPolicy:
    """Commit every ``interval_s`` seconds, never two at once."""

    interval_s: float

    @property
    def metadata_interval_s(self) -> float:
        """How often a periodic commit may rebuild one partition's finished set (its metadata)."""
        return self.interval_s * METADATA_EVERY

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

    async def commit(self, periodic: bool = False) -> dict[TopicPartitionKey, int]:
        """Commit every partition whose commit changed, with its metadata; return the positions the
        broker accepted. ``periodic``: the ticker's commit, throttled per partition (see the module)."""
        if self._source.rebalancing:
            return {}
        if periodic:
            plan = self._tracker.commit_plan(
                now=time.monotonic(), metadata_every_s=self.policy.metadata_interval_s
            )
        else:
            plan = self._tracker.commit_plan()
        if not plan:
            return {}
        positions = {tp: planned.position for tp, planned in plan.items()}
        metadata = {tp: planned.metadata for tp, planned in plan.items() if planned.metadata}
        misses = sum(planned.metadata is None for planned in plan.values())
        if misses:
            self._metrics.commit_metadata_misses.inc(misses)
        self.running = True
        started = time.perf_counter()
        try:
            done = await self._source.commit(positions, metadata)
        finally:
            self.running = False
        self._metrics.commit_seconds.observe(time.perf_counter() - started)
        self._tracker.mark_committed_plan({tp: plan[tp] for tp in done if tp in plan})
        for (topic, partition), offset in done.items():
            self._metrics.committed_offset.labels(topic, str(partition)).set(offset)
        return done
