"""Rebalances with the in-memory source: a revoke drains and commits the revoked partitions' finished
messages before they go; a lost partition is dropped without a commit (no broker)."""

from __future__ import annotations

import asyncio

from forwarder.runtime.testing import FakeTransport, Harness, wait_for
from tests.unit.runtime_support import TOPIC, event, runtime_config

P0, P1 = (TOPIC, 0), (TOPIC, 1)


def test_a_revoke_waits_for_calls_in_flight_then_commits_past_them() -> None:
    async def run() -> None:
        transport = FakeTransport()
        transport.gate = asyncio.Event()
        async with Harness(runtime_config(), transport) as h:
            await h.source.assign([P0, P1])
            h.source.append(P0, [event(f"s{i}") for i in range(3)])
            h.source.append(P1, [event("t0")])
            await wait_for(lambda: h.app.dispatcher.in_flight_events == 4, what="all four in flight")
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, transport.gate.set)  # the service answers while the revoke waits
            committed = await h.source.revoke([P0])
            assert committed == {P0: 3}, "the revoke committed after its calls finished"
            assert P0 not in h.app.rebalancer.assignment
            assert h.app.tracker.get(P0) is None
            await wait_for(lambda: h.source.committed.get(P1) == 1, what="the kept partition goes on")
        assert h.exit_code == 0

    asyncio.run(run())


def test_a_revoke_past_its_budget_commits_before_the_unfinished_message() -> None:
    async def run() -> None:
        transport = FakeTransport()
        transport.gate = asyncio.Event()  # never opens during the revoke
        async with Harness(runtime_config(shutdown={"timeout_s": 0.2}), transport) as h:
            await h.source.assign([P0])
            h.source.append(P0, [event("s")])
            await wait_for(lambda: h.app.dispatcher.in_flight_events == 1, what="in flight")
            assert await h.source.revoke([P0]) == {}, "nothing finished: nothing to commit"
            transport.gate.set()
        # Position 0 may have been committed before the message was finished; never past it.
        assert h.source.committed.get(P0, 0) == 0, (
            "a late acceptance does not move a partition no longer owned"
        )

    asyncio.run(run())


def test_a_lost_partition_is_dropped_with_its_buffered_events_and_not_committed() -> None:
    async def run() -> None:
        cfg = runtime_config(batching={"linger_ms": 60_000})  # events stay buffered
        async with Harness(cfg) as h:
            await h.source.assign([P0, P1])
            h.source.append(P0, [event("a"), event("a", 1)])
            h.source.append(P1, [event("b")])
            await wait_for(lambda: h.app.dispatcher.batcher.buffered == 3, what="buffered")
            await h.source.lose([P0])
            assert h.app.dispatcher.batcher.buffered == 1, "the lost partition's events are gone"
            assert h.app.tracker.get(P0) is None
            assert h.app.rebalancer.assignment == {P1}
        # The shutdown flushed what was kept and committed it; the lost partition was never committed.
        assert h.source.committed.get(P0, 0) == 0
        assert h.source.committed[P1] == 1
        assert [ev.wire["eventId"] for ev in h.transport.accepted] == ["b-0"]

    asyncio.run(run())
