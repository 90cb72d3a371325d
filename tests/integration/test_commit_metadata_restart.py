"""After a SIGKILL the next owner sends only what was not finished (issue #14), end to end: a real broker,
the emulator, two ``forwarder run`` processes. One session is throttled by the emulator every time, so
its early message holds the partition's committed offset while every later message is accepted; the
commit carries those as finished. The replica is killed; the next owner, with the throttling lifted,
skips the finished ones and sends only the held session's events. Both group protocols."""

from __future__ import annotations

import dataclasses
import signal
from collections import Counter
from pathlib import Path

import pytest

from forwarder.commit_metadata import FinishedOffsets, decode
from tests.harness import committed_metadata, free_port, running, scrape, start_forwarder, wait_for
from tests.harness.pipeline import pipeline

pytestmark = pytest.mark.integration

LATER = 60  # messages after the held one, all accepted before the kill


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_the_next_owner_sends_only_the_unfinished_messages(
    bootstrap: str, tmp_path: Path, protocol: str
) -> None:
    p = pipeline(
        bootstrap,
        tmp_path,
        "restart",
        extra={
            "kafka": {"group_protocol": protocol, "commit_interval_ms": 100},
            # The held session is retried for as long as the test lasts, never dead-lettered.
            "retry": {"max_attempts": 100_000, "max_elapsed_s": 3600, "max_backoff_ms": 200},
        },
    )
    topic, emulator, cfg = p.topic, p.emulator, p.cfg
    held = [{"eventId": "held-0", "sessionId": "held", "eventType": "view", "sentAt": 1714566896}]
    later = [
        {"eventId": f"ev-{i}", "sessionId": f"s-{i % 7}", "eventType": "view", "sentAt": 1714566896 + i}
        for i in range(LATER)
    ]
    held_late = {"eventId": "held-1", "sessionId": "held", "eventType": "click", "sentAt": 1714566999}
    events = held + later[: LATER // 2] + [held_late] + later[LATER // 2 :]  # offsets 0 .. LATER + 1

    emulator.set_faults(throttle_session_ids=["held"])
    if protocol == "consumer":
        cfg.client = {}  # the broker's session timeout under KIP-848
    a = p.start("a")
    with running([a, emulator]):
        p.produce_events(events)
        wait_for(lambda: emulator.stats()["accepted_events"] == LATER, 60, what="the later events accepted")
        finished = FinishedOffsets.of(o for o in range(1, LATER + 2) if o != LATER // 2 + 1)

        def committed_with_finished_set() -> bool:
            offset, metadata = committed_metadata(bootstrap, cfg.group, topic)[0]
            return offset == 0 and bool(metadata) and decode(metadata, 0) == finished

        wait_for(committed_with_finished_set, 30, what="a commit at the held message carrying the rest")
        assert emulator.stats()["throttled"] > 0, "the held session is being retried"
        a.stop(signal.SIGKILL, timeout=10)

        emulator.set_faults(throttle_session_ids=[])
        port = free_port()
        cfg_b = dataclasses.replace(cfg, extra={**cfg.extra, "observability": {"port": port}})
        b = start_forwarder(tmp_path, cfg_b, name="b")
        with running([b]):
            p.wait_committed(90)
            skipped = scrape(port).get('forwarder_messages_skipped_total{reason="finished_before"}')
            assert b.stop() == 0, b.log_text()[-3000:]

    ids = Counter(str(ev["eventId"]) for ev in emulator.events())
    assert ids == Counter({str(ev["eventId"]): 1 for ev in events}), "every event once: none sent again"
    assert skipped == LATER, "the next owner skipped exactly the finished messages"
    assert "were finished before: skipped" in b.log_text()
