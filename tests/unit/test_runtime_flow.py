"""Flow control: the pure pause/resume rule, and the runtime applying it to the source (no broker)."""

from __future__ import annotations

import asyncio

from forwarder.runtime.flow import FlowControl
from forwarder.runtime.testing import FakeTransport, Harness, wait_for
from tests.unit.runtime_support import TOPIC, event, runtime_config


def test_consumption_pauses_at_the_limit_and_resumes_at_half_of_it() -> None:
    flow = FlowControl(limit=100)
    assert flow.update(99, outage=False) is False
    assert flow.update(100, outage=False) is True
    # Hysteresis: still paused until the load is down to half the limit.
    assert flow.update(99, outage=False) is True
    assert flow.update(51, outage=False) is True
    assert flow.update(50, outage=False) is False
    assert flow.update(99, outage=False) is False


def test_an_outage_pauses_at_any_load_and_holds_until_it_ends() -> None:
    flow = FlowControl(limit=100)
    assert flow.update(0, outage=True) is True
    assert flow.update(0, outage=True) is True, "an outage is not lifted by a low load"
    assert flow.update(60, outage=False) is True, "after the outage the load rule applies"
    assert flow.update(10, outage=False) is False


def test_the_runtime_pauses_the_source_while_calls_hang_and_resumes_after() -> None:
    async def run() -> None:
        transport = FakeTransport()
        transport.gate = asyncio.Event()  # PutEvents does not answer
        cfg = runtime_config(limits={"max_buffered_events": 10}, kafka={"poll_batch_size": 4})
        async with Harness(cfg, transport) as h:
            await h.source.assign([(TOPIC, 0)])
            h.source.append((TOPIC, 0), [event(f"s{i}") for i in range(40)])
            await wait_for(lambda: h.app.flow.paused, what="paused at the limit")
            await wait_for(lambda: h.source.polls_paused > 3, what="polling goes on while paused")
            taken = h.app.tracker.unfinished()
            assert 10 <= taken < 40, "consumption stopped near the limit"
            transport.gate.set()
            await wait_for(lambda: h.source.committed.get((TOPIC, 0)) == 40, what="everything committed")
            assert not h.app.flow.paused
        assert len(transport.accepted) == 40

    asyncio.run(run())
