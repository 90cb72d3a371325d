"""Commits: the policy, and what the committer commits: each partition up to its lowest unfinished
message, never past a message whose dead-letter copy is not acknowledged (no broker)."""

from __future__ import annotations

import asyncio

import pytest

from forwarder import offsets
from forwarder.consume import RebalanceHandler
from forwarder.metrics import Metrics
from forwarder.offsets import OffsetTracker
from forwarder.outcome import Stage
from forwarder.runtime.committer import CommitPolicy, Committer
from forwarder.runtime.testing import FakeSource, Harness, wait_for
from tests.unit.runtime_support import BAD, TOPIC, event, runtime_config

TP = (TOPIC, 0)


def test_the_policy_commits_at_its_interval_and_one_at_a_time() -> None:
    policy = CommitPolicy(interval_s=1.0)
    assert policy.due(now=10.0, last=9.0, running=False)
    assert not policy.due(now=10.0, last=9.5, running=False)
    assert not policy.due(now=10.0, last=0.0, running=True)


def test_the_committer_commits_the_contiguous_finished_run_only_and_only_what_moved() -> None:
    async def run() -> None:
        source = FakeSource(RebalanceHandler())
        await source.assign([TP])
        tracker = OffsetTracker()
        state = tracker.assign(TP)
        committer = Committer(source, tracker, Metrics(), CommitPolicy(1.0))
        for offset in range(5):
            state.track(offset)
        for offset in (0, 1, 3, 4):  # 2 is still out
            state.finish(offset)
        assert await committer.commit() == {TP: 2}
        assert await committer.commit() == {}, "nothing moved: no commit call"
        state.finish(2)
        assert await committer.commit() == {TP: 5}
        assert source.commits == [{TP: 2}, {TP: 5}]
        source.rebalancing = True
        state.track(5)
        state.finish(5)
        assert await committer.commit() == {}, "during a rebalance the revoke commits"

    asyncio.run(run())


def test_a_rejected_message_holds_the_commit_until_its_dead_letter_copy_is_acknowledged() -> None:
    async def run() -> None:
        async with Harness(runtime_config()) as h:
            h.dead_letters.hold = True  # the dead-letter broker does not acknowledge yet
            await h.source.assign([TP])
            h.source.append(TP, [event("a"), event("b"), BAD, event("c"), event("d")])
            await wait_for(lambda: len(h.transport.accepted) == 4, what="the good events accepted")
            await wait_for(lambda: h.source.committed.get(TP) == 2, what="committed up to the bad message")
            await asyncio.sleep(0.05)  # several commit intervals
            assert h.source.committed[TP] == 2, "never past an unacknowledged dead-letter copy"
            h.dead_letters.hold = False
            await wait_for(
                lambda: h.source.committed.get(TP) == 5, what="committed past it once acknowledged"
            )
        ((message, reason, _),) = h.dead_letters.records
        assert message.value() == BAD
        assert (reason.stage, reason.error_class, reason.attempts) == (Stage.DECODE, "NotJson", 0)
        assert h.exit_code == 0

    asyncio.run(run())


def test_periodic_commits_rebuild_a_finished_set_once_an_interval_the_final_one_always(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(offsets, "HOLD_ABOVE", 0)  # every non-empty set counts as large

    async def run() -> None:
        source = FakeSource(RebalanceHandler())
        await source.assign([TP])
        tracker = OffsetTracker()
        state = tracker.assign(TP)
        committer = Committer(source, tracker, Metrics(), CommitPolicy(3600.0))  # metadata: 5 hours
        for offset in range(10):
            state.track(offset)
        for offset in (0, 2):
            state.finish(offset)
        assert await committer.commit(periodic=True) == {TP: 1}, "the first build is not held"
        state.finish(1)
        state.finish(4)
        assert await committer.commit(periodic=True) == {}, "held: the last commit and its metadata stay"
        assert await committer.commit() == {TP: 3}, "the final commit is never held"
        assert source.commit_log[-1][TP][0] == 3
        assert source.commit_log[-1][TP][1] != "", "with the finished set above it (4)"

    asyncio.run(run())
