"""The commit rule: a partition's position is its lowest unfinished offset, whatever order messages finish in."""

from __future__ import annotations

import random

from forwarder.offsets import OffsetTracker, PartitionOffsets


def test_position_is_the_lowest_unfinished_offset() -> None:
    part = PartitionOffsets(("t", 0))
    assert part.position is None
    for offset in range(10, 15):
        part.track(offset)
    assert part.position == 10
    part.finish(12)
    part.finish(11)
    assert part.position == 10, "never past an unfinished message"
    part.finish(10)
    assert part.position == 13
    part.finish(14)
    assert part.position == 13
    part.finish(13)
    assert part.position == 15
    assert part.unfinished == 0


def test_out_of_order_finishing_never_commits_past_an_unfinished_message() -> None:
    rng = random.Random(7)
    part = PartitionOffsets(("t", 3))
    offsets = list(range(1000, 1500, 2))  # gaps: compacted or transactional topics skip offsets
    for offset in offsets:
        part.track(offset)
    order = offsets[:]
    rng.shuffle(order)
    done: set[int] = set()
    for offset in order:
        part.finish(offset)
        done.add(offset)
        unfinished = [o for o in offsets if o not in done]
        expected = unfinished[0] if unfinished else offsets[-1] + 1
        assert part.position == expected
    assert part.unfinished == 0


def test_tracker_reports_only_moved_positions_and_forgets_dropped_partitions() -> None:
    tracker = OffsetTracker()
    a = tracker.assign(("t", 0))
    b = tracker.assign(("t", 1))
    a.track(0)
    a.track(1)
    b.track(5)
    assert tracker.commit_positions() == {("t", 0): 0, ("t", 1): 5}
    tracker.mark_committed({("t", 0): 0, ("t", 1): 5})
    assert tracker.commit_positions() == {}
    a.finish(0)
    assert tracker.commit_positions() == {("t", 0): 1}
    assert tracker.unfinished() == 2
    assert tracker.unfinished({("t", 1)}) == 1
    tracker.drop(("t", 1))
    b.finish(5)  # a late completion of a revoked partition lands on the detached state
    assert tracker.get(("t", 1)) is None
    fresh = tracker.assign(("t", 1))
    assert fresh is not b
    assert fresh.position is None


def test_an_older_commit_acknowledgement_never_moves_a_position_back() -> None:
    tracker = OffsetTracker()
    part = tracker.assign(("t", 0))
    part.track(0)
    part.finish(0)
    tracker.mark_committed({("t", 0): 1})
    tracker.mark_committed({("t", 0): 0})
    assert part.committed == 1
