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

Finished offsets carried over a crash (issue #14): a partition may be *seeded* at assignment with the
offsets above its committed one that the previous owner had finished (read from the commit metadata,
see :mod:`forwarder.commit_metadata`). :meth:`PartitionOffsets.track` of such an offset returns True:
the message counts as finished at once, is not sent, and ``finish`` is not called for it. The position
still never passes an unfinished offset. :meth:`PartitionOffsets.finished_above` reports what the next
commit's metadata should carry.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from typing import NamedTuple

from forwarder.commit_metadata import DEFAULT_BUDGET, FinishedOffsets, encode

TopicPartitionKey = tuple[str, int]

# A finished set of up to this many offsets behind the lowest unfinished one is rebuilt at every commit
# (tens of microseconds); a larger one is held by a throttled plan (see OffsetTracker.commit_plan). Steady
# loads keep sets this small (calls in flight ~ personalize.max_in_flight x 10 events over the
# partitions); a catch-up's sets are thousands, and building them was the commit path's cost.
HOLD_ABOVE = 256


class PlannedCommit(NamedTuple):
    """One partition's commit: its position, the state's commit key then, the metadata (``""`` when
    nothing above is finished, None when the set did not fit) and how many offsets the set holds."""

    position: int
    key: tuple[int, int]
    metadata: str | None
    finished: int


class PartitionOffsets:
    """Unfinished messages of one partition, for one assignment of it."""

    __slots__ = (
        "_finished",
        "_next",
        "_pending",
        "_seed",
        "_seed_i",
        "_skip_end",
        "committed",
        "committed_finished",
        "committed_key",
        "metadata_built_at",
        "tp",
    )

    def __init__(
        self,
        tp: TopicPartitionKey,
        finished: FinishedOffsets | None = None,
        committed: int | None = None,
    ) -> None:
        """State for a new assignment; ``finished`` are offsets known finished already (never sent);
        ``committed`` is the group's committed offset when it was read at assignment."""
        self.tp = tp
        self._pending: deque[int] = deque()  # tracked, in order; the head is the lowest unfinished
        self._finished: set[int] = set()  # finished but behind an unfinished one
        self._next: int | None = None  # one past the highest tracked offset
        self.committed: int | None = committed  # last position the broker accepted
        self.committed_key: tuple[int, int] | None = None  # commit_key of the last accepted commit
        # When a commit plan last built a non-empty finished set for this partition (see commit_plan).
        self.metadata_built_at = float("-inf")
        # How many finished offsets the last accepted commit's metadata carried (0: none, or a miss).
        self.committed_finished = len(finished) if finished and committed is not None else 0
        # The seed: ranges of offsets finished before this assignment, walked by a cursor as offsets
        # are tracked in increasing order. ``_skip_end`` is 0 without a seed, so track() pays one compare.
        self._seed = finished.ranges if finished else ()
        self._seed_i = 0
        self._skip_end = self._seed[-1][1] if self._seed else 0

    def track(self, offset: int) -> bool:
        """Record that a message was taken; True if it was finished before (seeded): skip it.

        A skipped message counts as finished now: do not send it and do not call :meth:`finish` for it.
        """
        if offset < self._skip_end:
            return self._track_seeded(offset)
        self._pending.append(offset)
        self._next = offset + 1
        return False

    def _track_seeded(self, offset: int) -> bool:
        seed = self._seed
        i = self._seed_i
        while seed[i][1] <= offset:  # offset < the last range's end, so this stops inside the tuple
            i += 1
        self._seed_i = i
        self._next = offset + 1
        if seed[i][0] <= offset:
            if self._pending:  # behind an unfinished one: kept in order, finished
                self._pending.append(offset)
                self._finished.add(offset)
            return True
        self._pending.append(offset)
        return False

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
        """The committable offset: the lowest unfinished one, else one past the last taken; None if none.

        With nothing unfinished, a seeded run of finished offsets right after the last taken one is
        passed over too (those messages were finished by the previous owner).
        """
        if self._pending:
            return self._pending[0]
        nxt = self._next
        if nxt is not None and nxt < self._skip_end:
            for start, end in self._seed[self._seed_i :]:
                if start > nxt:
                    break
                if end > nxt:
                    return end
        return nxt

    @property
    def commit_key(self) -> tuple[int, int] | None:
        """O(1): equal keys of one state mean an equal commit (position and :meth:`finished_above`).

        The set above a fixed position only grows, so (position, its size behind the lowest unfinished)
        changes whenever the commit would: a committer compares it with the key of its last commit to
        commit again when only the metadata changed. None while nothing was taken.
        """
        pos = self.position
        return None if pos is None else (pos, len(self._finished))

    @property
    def has_finished_above(self) -> bool:
        """O(1): whether :meth:`finished_above` is non-empty (some offset above the position finished)."""
        if self._finished:
            return True
        pos = self.position
        return pos is not None and pos + 1 < self._skip_end

    def finished_above(self) -> FinishedOffsets:
        """The finished offsets above :attr:`position` (for the commit metadata); empty if none.

        O(f log f) in the finished offsets behind the lowest unfinished one, not in the unfinished ones:
        it runs for every partition at every commit (5 a second), where a walk over the pending offsets
        showed in the catch-up's profile (docs/benchmarks.md). Every offset in that set was tracked and lies above the lowest
        unfinished one (:meth:`finish` pops the head and the finished run after it), so sorting it gives
        the pending finished offsets in order; an offset finished twice (outside the contract) can only
        lie below the position, and is cut off.
        """
        pos = self.position
        if pos is None:
            return FinishedOffsets()
        known = FinishedOffsets()
        if self._finished:
            ordered = sorted(self._finished)
            if ordered[0] <= pos:
                ordered = ordered[bisect_right(ordered, pos) :]
            known = FinishedOffsets.from_sorted(ordered)
        if pos + 1 < self._skip_end:
            known = known.union(FinishedOffsets(self._seed).at_or_above(pos + 1))
        return known

    @property
    def unfinished(self) -> int:
        """Messages taken and not finished."""
        return len(self._pending) - len(self._finished)

    @property
    def finished_uncommitted(self) -> int:
        """An estimate, O(1): messages finished here that no accepted commit covers (neither below its
        offset nor in its metadata). A crash now sends them again. Counts offsets, so gaps in the log
        (transaction markers, compaction) make it an upper bound."""
        nxt, base = self._next, self.committed
        if nxt is None or base is None or nxt <= base:
            return 0
        return max(0, nxt - base - self.unfinished - self.committed_finished)


class OffsetTracker:
    """The partitions assigned to this replica and their unfinished messages."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartitionKey, PartitionOffsets] = {}

    def assign(
        self,
        tp: TopicPartitionKey,
        finished: FinishedOffsets | None = None,
        committed: int | None = None,
    ) -> PartitionOffsets:
        """Start tracking a partition (on assignment); an existing state is kept.

        ``finished``: offsets above the committed one already finished (from the commit metadata); a
        new state skips them as they are taken. ``committed``: the group's committed offset, if read.
        """
        state = self._parts.get(tp)
        if state is None:
            state = self._parts[tp] = PartitionOffsets(tp, finished, committed)
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

    def commit_plan(
        self,
        only: set[TopicPartitionKey] | None = None,
        budget: int = DEFAULT_BUDGET,
        *,
        now: float | None = None,
        metadata_every_s: float = 0.0,
    ) -> dict[TopicPartitionKey, PlannedCommit]:
        """What to commit: each partition whose :attr:`PartitionOffsets.commit_key` differs from its last
        accepted commit's (the position moved, or only the finished set above it grew), with the
        metadata :func:`forwarder.commit_metadata.encode` gives for it (None when it does not fit in
        ``budget``: commit the plain offset). For the commit path: O(f log f) per partition in the
        offsets finished behind its lowest unfinished one.

        Throttle (periodic commits only, ``now`` given): a partition with more than ``HOLD_ABOVE``
        finished offsets behind its lowest unfinished one is planned at most once every
        ``metadata_every_s`` (by ``now``'s clock); until then it is left out, so its last accepted
        commit, metadata included, stays. Building and encoding a large set is the commit path's cost
        in a catch-up (docs/benchmarks.md); leaving the partition out never commits an unfinished
        offset nor drops a listed one, it only lets a crash repeat up to ``metadata_every_s`` more of
        finished messages. A smaller set, or none (metadata ``""``, O(1)), is planned at every call.
        ``now`` None: no throttle (a revocation's or the shutdown's final commit).
        """
        out: dict[TopicPartitionKey, PlannedCommit] = {}
        for tp, state in self._parts.items():
            if only is not None and tp not in only:
                continue
            key = state.commit_key
            if key is None or key == state.committed_key:
                continue
            pos = key[0]
            if not state.has_finished_above:
                out[tp] = PlannedCommit(pos, key, "", 0)
                continue
            if now is not None and key[1] > HOLD_ABOVE:
                if now - state.metadata_built_at < metadata_every_s:
                    continue
                state.metadata_built_at = now
            finished = state.finished_above()
            out[tp] = PlannedCommit(pos, key, encode(pos, finished, budget), len(finished))
        return out

    def mark_committed_plan(self, plan: dict[TopicPartitionKey, PlannedCommit]) -> None:
        """Record planned commits the broker accepted: their positions, keys and what metadata carried."""
        for tp, planned in plan.items():
            state = self._parts.get(tp)
            if state is None or (state.committed is not None and planned.position < state.committed):
                continue  # a late, older acknowledgement never moves a partition back
            state.committed = planned.position
            state.committed_key = planned.key
            state.committed_finished = planned.finished if planned.metadata is not None else 0

    def finished_uncommitted(self) -> int:
        """Sum of :attr:`PartitionOffsets.finished_uncommitted` (an estimate of what a crash repeats)."""
        return sum(s.finished_uncommitted for s in self._parts.values())

    def partitions(self) -> list[TopicPartitionKey]:
        """Partitions currently assigned."""
        return list(self._parts)
