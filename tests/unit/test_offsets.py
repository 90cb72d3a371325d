"""The commit rule: a partition's position is its lowest unfinished offset, whatever order messages finish in."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder import offsets
from forwarder.commit_metadata import FinishedOffsets, decode, encode
from forwarder.offsets import OffsetTracker, PartitionOffsets, PlannedCommit


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


# ---- seeded with the finished offsets of a previous owner (issue #14) ----------------------------------


def _seeded(offsets: list[int]) -> PartitionOffsets:
    return PartitionOffsets(("t", 0), FinishedOffsets.of(offsets))


def test_seeded_offsets_are_skipped_and_count_as_finished() -> None:
    part = _seeded([11, 12, 14])
    taken = [o for o in range(10, 16) if not part.track(o)]
    assert taken == [10, 13, 15], "only the unfinished ones are for sending"
    assert part.unfinished == 3
    assert part.position == 10, "never past an unfinished message"
    assert part.finished_above() == FinishedOffsets.of([11, 12, 14])
    part.finish(10)
    assert part.position == 13
    assert part.finished_above() == FinishedOffsets.of([14])
    part.finish(15)
    part.finish(13)
    assert part.position == 16
    assert part.unfinished == 0
    assert part.finished_above() == FinishedOffsets()


def test_a_seeded_run_after_the_last_taken_message_is_committed_past() -> None:
    part = _seeded([21, 22, 23, 30])
    assert not part.track(20)
    part.finish(20)
    # 21..23 were finished by the previous owner: nothing between 20 and 24 needs to be sent again.
    assert part.position == 24
    assert part.finished_above() == FinishedOffsets.of([30])
    assert part.track(21)
    assert part.track(22)
    assert part.position == 24
    assert not part.track(24)
    assert part.position == 24
    assert part.finished_above() == FinishedOffsets.of([30])


def test_seeded_offsets_not_taken_yet_stay_in_the_reported_set() -> None:
    part = _seeded(list(range(101, 200)))
    assert not part.track(100)  # held: the previous owner's lowest unfinished message
    for o in range(101, 150):
        assert part.track(o)
    # 150..199 were not fetched yet; they are still known finished and must not be forgotten on commit.
    assert part.finished_above() == FinishedOffsets.of(range(101, 200))
    assert part.position == 100


def test_seeded_and_unseeded_tracking_agree_with_a_model() -> None:
    rng = random.Random(11)
    for _ in range(200):
        offsets = sorted(rng.sample(range(1000), rng.randint(1, 60)))
        seed = {o for o in offsets if rng.random() < 0.4} | {1000 + rng.randint(0, 5)}
        part = PartitionOffsets(("t", 0), FinishedOffsets.of(seed))
        taken = [o for o in offsets if not part.track(o)]
        assert taken == [o for o in offsets if o not in seed]
        done = set(offsets) & seed
        order = taken[:]
        rng.shuffle(order)
        for o in order:
            part.finish(o)
            done.add(o)
            unfinished = [x for x in offsets if x not in done]
            pos = part.position
            assert pos is not None
            if unfinished:
                assert pos == unfinished[0]
            else:
                assert pos >= offsets[-1] + 1
            # the position never passes an unfinished offset, and what it passes is finished
            assert all(x in done or x in seed for x in range(offsets[0], pos) if x in set(offsets))
            above = set(part.finished_above())
            assert all(x > pos for x in above)
            assert above <= done | seed
            assert {x for x in done | seed if x > pos} <= above


def test_tracker_assign_seeds_only_a_new_state() -> None:
    tracker = OffsetTracker()
    part = tracker.assign(("t", 0), FinishedOffsets.of([5]))
    assert part.track(5)
    again = tracker.assign(("t", 0), FinishedOffsets.of([6]))
    assert again is part
    assert not part.track(6)


def test_the_commit_key_changes_exactly_when_the_commit_would() -> None:
    rng = random.Random(5)
    for _ in range(100):
        offsets = list(range(100, 160))
        seed = FinishedOffsets.of(o for o in range(100, 170) if rng.random() < 0.3)
        part = PartitionOffsets(("t", 0), seed)
        assert part.commit_key is None
        taken = [o for o in offsets if not part.track(o)]
        rng.shuffle(taken)
        seen: dict[tuple[int, int] | None, tuple[int | None, FinishedOffsets]] = {}
        for o in taken:
            before = (part.position, part.finished_above())
            key_before = part.commit_key
            part.finish(o)
            after = (part.position, part.finished_above())
            assert (part.commit_key != key_before) == (after != before)
            seen.setdefault(part.commit_key, after)
            assert seen[part.commit_key] == after


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=300),
    st.sets(st.integers(min_value=0, max_value=299)),
    st.randoms(use_true_random=False),
)
def test_a_crash_hands_over_exactly_the_unfinished_messages(
    steps: list[int], unfinished_idx: set[int], rng: random.Random
) -> None:
    # offsets with gaps (compaction), some left unfinished, the rest finished in any order
    offsets = list(itertools.accumulate(steps, initial=1_000))[1:]
    unfinished = {offsets[i] for i in unfinished_idx if i < len(offsets)}
    first = PartitionOffsets(("t", 0))
    for o in offsets:
        assert not first.track(o)
    done = [o for o in offsets if o not in unfinished]
    rng.shuffle(done)
    for o in done:
        first.finish(o)
    pos = first.position
    assert pos is not None
    text = encode(pos, first.finished_above(), budget=100_000)
    assert text is not None
    # the next owner starts at the committed offset, seeded from the metadata
    nxt = PartitionOffsets(("t", 0), decode(text, pos))
    taken = [o for o in offsets if o >= pos and not nxt.track(o)]
    assert taken == sorted(unfinished)
    if unfinished:
        assert nxt.position == min(unfinished)
    else:
        assert pos == offsets[-1] + 1, "all finished: committed past the last one, nothing for the next owner"


def test_commit_plan_carries_the_finished_set_and_the_crash_estimate_counts_what_no_commit_covers() -> None:
    tracker = OffsetTracker()
    part = tracker.assign(("t", 0), FinishedOffsets.of([12]), committed=10)
    assert part.committed_finished == 1, "the group's commit covered 12"
    for offset in range(10, 16):
        assert part.track(offset) == (offset == 12)
    for offset in (11, 14):
        part.finish(offset)
    assert tracker.finished_uncommitted() == 2, "11 and 14 are finished and no commit covers them"
    plan = tracker.commit_plan()
    ((tp, planned),) = plan.items()
    assert (tp, planned.position, planned.finished) == (("t", 0), 10, 3)
    assert planned.metadata is not None
    assert decode(planned.metadata, 10) == FinishedOffsets.of([11, 12, 14])
    tracker.mark_committed_plan(plan)
    assert tracker.finished_uncommitted() == 0
    assert tracker.commit_plan() == {}, "nothing changed since"
    part.finish(13)
    assert tracker.commit_plan()[("t", 0)].position == 10, "a metadata-only change is planned"
    assert tracker.finished_uncommitted() == 1
    assert tracker.commit_plan(budget=4)[("t", 0)].metadata is None, "too large for the budget"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=400),
    st.lists(st.integers(min_value=0, max_value=399), max_size=400),
)
def test_the_finished_set_above_the_position_is_exactly_what_finished_behind_it(
    steps: list[int], finish_idx: list[int]
) -> None:
    # The commit path sorts the finished set instead of walking the pending offsets: same answer after
    # every finish, with gaps in the offsets (compaction) and finishes in any order.
    offsets = list(itertools.accumulate(steps, initial=5_000))[1:]
    part = PartitionOffsets(("t", 0))
    for o in offsets:
        part.track(o)
    done: set[int] = set()
    for i in finish_idx:
        o = offsets[i % len(offsets)]
        if o in done:
            continue
        part.finish(o)
        done.add(o)
        pos = part.position
        assert pos is not None
        assert part.finished_above() == FinishedOffsets.of(x for x in done if x > pos)
        assert pos == min((x for x in offsets if x not in done), default=offsets[-1] + 1)


def test_a_throttled_plan_rebuilds_a_finished_set_once_an_interval_never_holds_a_plain_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(offsets, "HOLD_ABOVE", 0)  # every non-empty set counts as large
    tracker = OffsetTracker()
    busy = tracker.assign(("t", 0))  # finished offsets above its position: metadata to build
    plain = tracker.assign(("t", 1))  # all finished in order: metadata "", never throttled
    for offset in range(10):
        busy.track(offset)
        plain.track(offset)
    for offset in (0, 2, 3):
        busy.finish(offset)
    plain.finish(0)
    first = tracker.commit_plan(now=100.0, metadata_every_s=1.0)
    assert {tp: (p.position, p.metadata != "") for tp, p in first.items()} == {
        ("t", 0): (1, True),
        ("t", 1): (1, False),
    }
    tracker.mark_committed_plan(first)
    busy.finish(1)  # the position moves to 4, with 2 and 3 no longer above it
    busy.finish(5)
    plain.finish(1)
    early = tracker.commit_plan(now=100.5, metadata_every_s=1.0)
    assert list(early) == [("t", 1)], "the busy partition waits; the plain one moves"
    assert busy.has_finished_above, "5 is above 4"
    assert busy.metadata_built_at == 100.0, "held, not rebuilt"
    assert tracker.commit_plan()[("t", 0)].position == 4, "unthrottled (final commit): planned at once"
    due = tracker.commit_plan(now=101.0, metadata_every_s=1.0)
    assert due[("t", 0)].position == 4
    assert due[("t", 0)].metadata is not None
    assert decode(due[("t", 0)].metadata, 4) == FinishedOffsets.of([5])
    busy.finish(4)
    busy.finish(6)  # 4, 5, 6 finished: nothing above 7, so no set to build: not throttled
    assert not busy.has_finished_above
    assert tracker.commit_plan(now=101.1, metadata_every_s=1.0)[("t", 0)] == (7, (7, 0), "", 0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=399), st.booleans()), max_size=600))
def test_a_throttled_plan_never_passes_an_unfinished_offset_and_lists_only_finished_ones(
    steps: list[tuple[int, bool]],
) -> None:
    tracker = OffsetTracker()
    assert offsets.HOLD_ABOVE < 300, "some plans below are held"
    part = tracker.assign(("t", 0))
    for offset in range(400):
        part.track(offset)
    done: set[int] = set()
    now = 0.0
    for offset, commit in steps:
        if offset not in done:
            part.finish(offset)
            done.add(offset)
        now += 0.2
        if commit:
            for planned in tracker.commit_plan(now=now, metadata_every_s=1.0).values():
                assert all(o in done for o in range(planned.position)), "never past an unfinished one"
                listed = decode(planned.metadata or "", planned.position)
                assert set(listed) <= done
                assert min(listed, default=planned.position + 1) > planned.position


def test_a_small_finished_set_is_never_held_and_a_large_one_once_an_interval() -> None:
    tracker = OffsetTracker()
    part = tracker.assign(("t", 0))
    small = offsets.HOLD_ABOVE
    for offset in range(small + 10):
        part.track(offset)

    def plan(now: float) -> dict[tuple[str, int], PlannedCommit]:
        out = tracker.commit_plan(now=now, metadata_every_s=1.0)
        tracker.mark_committed_plan(out)
        return out

    for offset in range(2, small + 1):  # small - 1 finished behind 0 and 1
        part.finish(offset)
    assert plan(10.0)[("t", 0)].finished == small - 1
    part.finish(small + 1)
    assert plan(10.1)[("t", 0)].finished == small, "small: planned again at once"
    part.finish(small + 2)
    assert plan(10.2)[("t", 0)].finished == small + 1, "large, never built before: planned"
    part.finish(small + 3)
    assert plan(10.4) == {}, "large, built 0.2 s ago: held"
    part.finish(0)
    part.finish(1)
    assert plan(10.6)[("t", 0)] == (small + 4, (small + 4, 0), "", 0), "nothing above: never held"
