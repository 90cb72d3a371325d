"""Offsets: which messages are finished, and how far each partition may be committed.

The commit rule: a partition may be committed up to (not including) its lowest unfinished offset.
Messages of one partition finish out of order (they belong to different sessions, sent by different
calls), so the position is the end of the longest contiguous run of finished messages from the last
commit, never the highest offset seen.

A message is *finished* when PutEvents accepted its event, or when the broker acknowledged its copy
on the dead-letter topic. Nothing else finishes a message.

Contract: call :meth:`PartitionOffsets.track` for every message taken from a partition, in the order
the consumer returned them (offsets increase within a partition), then :meth:`PartitionOffsets.finish`
exactly once for each, on the same object. A partition revoked or lost is dropped from the tracker;
late completions of its messages then land on the detached object and change nothing that is
committed, even if the partition comes back to this replica. All methods are for one thread.
"""

from __future__ import annotations

from collections import deque

TopicPartitionKey = tuple[str, int]


class PartitionOffsets:
    """Unfinished messages of one partition, for one assignment of it."""

    __slots__ = ("_finished", "_next", "_pending", "committed", "tp")

    def __init__(self, tp: TopicPartitionKey) -> None:
        self.tp = tp
        self._pending: deque[int] = deque()  # tracked, in order; the head is the lowest unfinished
        self._finished: set[int] = set()  # finished but behind an unfinished one
        self._next: int | None = None  # one past the highest tracked offset
        self.committed: int | None = None  # last position the broker accepted

    def track(self, offset: int) -> None:
        """Record that a message was taken and is not finished yet."""
        self._pending.append(offset)
        self._next = offset + 1

    def finish(self, offset: int) -> None:
        """Record that a message is finished (accepted by PutEvents, or dead-lettered and acknowledged)."""
        pending = self._pending
        if pending and pending[0] == offset:
            pending.popleft()
            finished = self._finished
            while pending and pending[0] in finished:
                finished.discard(pending.popleft())
        else:
            self._finished.add(offset)

    @property
    def position(self) -> int | None:
        """The committable offset: the lowest unfinished one, else one past the last taken; None if none."""
        return self._pending[0] if self._pending else self._next

    @property
    def unfinished(self) -> int:
        """Messages taken and not finished."""
        return len(self._pending) - len(self._finished)


class OffsetTracker:
    """The partitions assigned to this replica and their unfinished messages."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartitionKey, PartitionOffsets] = {}

    def assign(self, tp: TopicPartitionKey) -> PartitionOffsets:
        """Start tracking a partition (on assignment); an existing state is kept."""
        state = self._parts.get(tp)
        if state is None:
            state = self._parts[tp] = PartitionOffsets(tp)
        return state

    def drop(self, tp: TopicPartitionKey) -> None:
        """Forget a partition (revoked after its final commit, or lost)."""
        self._parts.pop(tp, None)

    def get(self, tp: TopicPartitionKey) -> PartitionOffsets | None:
        """The partition's state if it is assigned here."""
        return self._parts.get(tp)

    def unfinished(self, only: set[TopicPartitionKey] | None = None) -> int:
        """Unfinished messages in all partitions, or in the given ones."""
        return sum(s.unfinished for tp, s in self._parts.items() if only is None or tp in only)

    def commit_positions(self, only: set[TopicPartitionKey] | None = None) -> dict[TopicPartitionKey, int]:
        """Positions that moved since the last accepted commit (all partitions, or only the given)."""
        out: dict[TopicPartitionKey, int] = {}
        for tp, state in self._parts.items():
            if only is not None and tp not in only:
                continue
            pos = state.position
            if pos is not None and pos != state.committed:
                out[tp] = pos
        return out

    def mark_committed(self, positions: dict[TopicPartitionKey, int]) -> None:
        """Record positions the broker accepted (a late, older acknowledgement never moves one back)."""
        for tp, pos in positions.items():
            state = self._parts.get(tp)
            if state is not None and (state.committed is None or pos > state.committed):
                state.committed = pos

    def partitions(self) -> list[TopicPartitionKey]:
        """Partitions currently assigned."""
        return list(self._parts)
