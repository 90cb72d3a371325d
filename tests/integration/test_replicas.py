"""Replicas of one group share the partitions; a replica stopped with SIGTERM hands its partitions over
without losing (or repeating) an event. Both group protocols: classic (cooperative-sticky) and KIP-848."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tests.harness import running, wait_for
from tests.harness.pipeline import pipeline

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_sigterm_hands_partitions_over_with_nothing_lost(
    bootstrap: str, tmp_path: Path, protocol: str
) -> None:
    # Latency slows delivery down so that the stop lands in the middle of the stream.
    p = pipeline(
        bootstrap,
        tmp_path,
        "replicas",
        partitions=4,
        emulator_args=("--latency-ms", "40"),
        extra={"kafka": {"group_protocol": protocol}, "personalize": {"max_in_flight": 4}},
    )
    emulator, cfg = p.emulator, p.cfg
    total = 12_000
    events = [
        {
            "eventId": f"ev-{i}",
            "sessionId": f"s-{i % 300}",
            "eventType": "view",
            "itemId": f"i-{i % 97}",
            "sentAt": 1714566896 + i / 100,
            "properties": {"n": i},
        }
        for i in range(total)
    ]

    if protocol == "consumer":
        cfg.client = {}  # session and heartbeat timeouts are the broker's under KIP-848
    a = p.start("a")
    b = p.start("b")
    with running([a, b, emulator]):
        owns = re.compile(r"assigned \S+\[\d+\]")
        wait_for(
            lambda: bool(owns.search(a.log_text()) and owns.search(b.log_text())),
            60,
            what="both replicas assigned",
        )
        p.produce_events(events)
        wait_for(lambda: emulator.stats()["accepted_events"] >= total // 5, 90, what="delivery under way")
        assert emulator.stats()["accepted_events"] < total, "the stop must land mid-stream; slow the emulator"
        assert a.stop() == 0, a.log_text()[-3000:]
        wait_for(lambda: emulator.stats()["accepted_events"] >= total, 120, what="every event")
        p.wait_committed(30)
        assert b.stop() == 0, b.log_text()[-3000:]

    ids = Counter(ev["eventId"] for ev in emulator.events())
    assert set(ids) == {ev["eventId"] for ev in events}, "an event was lost"
    repeated = {k: n for k, n in ids.items() if n > 1}
    assert not repeated, f"a clean handover repeats nothing, got {len(repeated)} repeated"
    assert "revoking" in a.log_text()
