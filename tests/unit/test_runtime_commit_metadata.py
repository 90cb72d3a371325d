"""Finished offsets in the commit (issue #14), on the in-memory source: a new owner seeded from the
commit metadata skips what was finished; commits carry the finished set, and commit again when only it
grew; metadata that does not decode is ignored; a set too large is a counted miss (no broker)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from forwarder.commit_metadata import FinishedOffsets, decode, encode
from forwarder.consume import RebalanceHandler
from forwarder.decode import Event, SessionKey
from forwarder.metrics import Metrics
from forwarder.offsets import OffsetTracker
from forwarder.runtime.committer import CommitPolicy, Committer
from forwarder.runtime.testing import FakeSource, FakeTransport, Harness, wait_for
from tests.unit.runtime_support import TOPIC, event, runtime_config

TP = (TOPIC, 0)


class HoldingTransport(FakeTransport):
    """Accepts every call at once, except those of session ``held``, which wait for ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def put_events(self, key: SessionKey, events: Sequence[Event]) -> None:
        if key.session_id == "held":
            await self.release.wait()
        await super().put_events(key, events)


def _sample(h: Harness, name: str, labels: dict[str, str] | None = None) -> float:
    value = h.app.metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def _sent(h: Harness) -> list[str]:
    return sorted(str(ev.wire["eventId"]) for ev in h.transport.accepted)


def test_a_new_owner_seeded_from_the_metadata_skips_the_finished_messages() -> None:
    async def run() -> None:
        async with Harness(runtime_config()) as h:
            # The previous owner committed offset 2, with 3 and 5 finished above it.
            h.source.append(TP, [event(f"s{n}") for n in range(7)])
            h.source.committed[TP] = 2
            h.source.metadata[TP] = encode(2, FinishedOffsets.of([3, 5])) or ""
            await h.source.assign([TP])
            await wait_for(lambda: h.source.committed.get(TP) == 7, what="committed to the end")
            assert _sent(h) == ["s2-0", "s4-0", "s6-0"], "only the unfinished ones are sent"
            assert _sample(h, "forwarder_messages_skipped_total", {"reason": "finished_before"}) == 2
            assert h.source.metadata[TP] == "", "nothing finished above the end"
        assert h.exit_code == 0

    asyncio.run(run())


def test_commits_carry_the_finished_set_and_commit_again_when_only_it_grew() -> None:
    async def run() -> None:
        transport = HoldingTransport()
        async with Harness(runtime_config(), transport) as h:
            await h.source.assign([TP])
            h.source.append(TP, [event("held"), event("a"), event("b")])
            await wait_for(
                lambda: bool(h.source.commit_log) and h.source.commit_log[-1].get(TP, (0, ""))[1] != "",
                what="a commit with metadata",
            )
            pos, meta = h.source.commit_log[-1][TP]
            assert pos == 0, "never past the held message"
            assert decode(meta, 0) == FinishedOffsets.of([1, 2])
            commits = len(h.source.commit_log)
            await asyncio.sleep(0.05)  # several commit intervals with nothing new
            assert len(h.source.commit_log) == commits, "nothing changed: no commit call"
            h.source.append(TP, [event("c")])
            await wait_for(
                lambda: decode(h.source.metadata.get(TP, ""), 0) == FinishedOffsets.of([1, 2, 3]),
                what="a metadata-only commit",
            )
            assert h.source.committed[TP] == 0
            transport.release.set()
            await wait_for(lambda: h.source.committed.get(TP) == 4, what="committed past the held one")
            assert h.source.metadata[TP] == ""
        assert _sent(h) == ["a-0", "b-0", "c-0", "held-0"]

    asyncio.run(run())


def test_a_revoke_commits_the_finished_set_and_the_next_owner_sends_only_the_rest() -> None:
    async def run() -> None:
        transport = HoldingTransport()
        cfg = runtime_config(shutdown={"timeout_s": 0.2}, kafka={"commit_interval_ms": 3_600_000})
        async with Harness(cfg, transport) as h:  # only the revoke commits
            h.app.committer.last = asyncio.get_running_loop().time()  # the next periodic one is an hour away
            await h.source.assign([TP])
            h.source.append(TP, [event("a"), event("held"), event("b"), event("c")])
            await wait_for(lambda: len(h.transport.accepted) == 3, what="all but the held one sent")
            assert h.source.commits == []
            assert await h.source.revoke([TP]) == {TP: 1}
            assert decode(h.source.metadata[TP], 1) == FinishedOffsets.of([2, 3])
            await h.source.assign([TP])  # taken again: reading resumes at 1, seeded with 2 and 3
            transport.release.set()
            await wait_for(lambda: len(h.transport.accepted) == 5, what="the held one sent again")
            await asyncio.sleep(0.05)  # anything else would be sent meanwhile
            assert _sample(h, "forwarder_messages_skipped_total", {"reason": "finished_before"}) == 2
        assert h.source.committed[TP] == 4, "the shutdown committed to the end"
        # held-0 twice: the first call was held past the revoke and finished on the detached state.
        assert _sent(h) == ["a-0", "b-0", "c-0", "held-0", "held-0"]

    asyncio.run(run())


@pytest.mark.parametrize(
    "metadata",
    [
        "checkpoint=17",  # another tool's
        "fw1R" + "A" * 8,  # this codec's tag, a body that does not check out
        "@wrong-base",  # replaced below: this codec's, written for another committed offset
    ],
)
def test_metadata_that_does_not_decode_is_ignored_with_a_warning(
    metadata: str, caplog: pytest.LogCaptureFixture
) -> None:
    if metadata == "@wrong-base":
        metadata = encode(1, FinishedOffsets.of([3, 4])) or ""

    async def run() -> None:
        async with Harness(runtime_config()) as h:
            h.source.append(TP, [event(f"s{n}") for n in range(5)])
            h.source.committed[TP] = 2
            h.source.metadata[TP] = metadata
            await h.source.assign([TP])
            await wait_for(lambda: h.source.committed.get(TP) == 5, what="committed to the end")
            assert _sent(h) == ["s2-0", "s3-0", "s4-0"], "never trusted: everything from 2 is sent"
            assert _sample(h, "forwarder_commit_metadata_unreadable_total") == 1
            assert _sample(h, "forwarder_messages_skipped_total", {"reason": "finished_before"}) == 0

    with caplog.at_level(logging.WARNING, logger="forwarder.runtime"):
        asyncio.run(run())
    assert any("commit metadata at offset 2 ignored" in r.getMessage() for r in caplog.records)


def test_a_finished_set_too_large_for_the_metadata_commits_the_plain_offset_and_counts_a_miss() -> None:
    async def run() -> None:
        source = FakeSource(RebalanceHandler())
        await source.assign([TP])
        tracker = OffsetTracker()
        state = tracker.assign(TP)
        metrics = Metrics()
        committer = Committer(source, tracker, metrics, CommitPolicy(1.0))
        # Every other offset finished over 40,000: no encoding fits in 4,095 characters.
        for offset in range(40_000):
            state.track(offset)
        for offset in range(1, 40_000, 2):
            state.finish(offset)
        assert await committer.commit() == {TP: 0}
        assert source.commit_log == [{TP: (0, "")}], "the plain offset"
        assert metrics.registry.get_sample_value("forwarder_commit_metadata_misses_total") == 1
        state.finish(0)
        assert await committer.commit() == {TP: 2}
        assert source.commit_log[-1][TP] == (2, ""), "still too large: plain again"
        assert metrics.registry.get_sample_value("forwarder_commit_metadata_misses_total") == 2

    asyncio.run(run())
