"""End to end against the real broker and the emulator: everything sent arrives exactly as sent."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.harness import probe, scrape, wait_for
from tests.harness.pipeline import pipeline

pytestmark = pytest.mark.integration


def make_events(n: int, sessions: int, seed: int = 1) -> list[dict[str, Any]]:
    """Interaction events over many sessions; each carries its sequence within its session."""
    rng = random.Random(seed)
    seq: dict[str, int] = defaultdict(int)
    out = []
    for i in range(n):
        s = rng.randrange(sessions)
        session = f"session-{s}"
        ev: dict[str, Any] = {
            "eventId": f"ev-{i}",
            "sessionId": session,
            "eventType": rng.choice(["click", "view", "purchase"]),
            "itemId": f"item-{rng.randrange(500)}",
            "sentAt": 1714566896 + i / 1000,
            "properties": {"seq": seq[session], "n": i},
        }
        if s % 5:
            ev["userId"] = f"user-{s}"
        if i % 3 == 0:
            ev["impression"] = [f"item-{rng.randrange(500)}" for _ in range(rng.randint(1, 25))]
        if i % 4 == 0:
            ev["recommendationId"] = f"RID-{i}"
        if i % 7 == 0:
            ev["eventValue"] = round(rng.random() * 100, 2)
        seq[session] += 1
        out.append(ev)
    return out


def as_sent(ev: dict[str, Any]) -> dict[str, Any]:
    """What PutEvents should receive for an input event (its wire form)."""
    wire = {k: v for k, v in ev.items() if k not in ("sessionId", "userId")}
    wire["properties"] = json.dumps(ev["properties"], separators=(",", ":"))
    return wire


@pytest.mark.parametrize("transport", ["fast", "boto3"])
def test_every_event_arrives_exactly_as_sent_in_session_order(
    bootstrap: str, tmp_path: Path, transport: str
) -> None:
    p = pipeline(
        bootstrap,
        tmp_path,
        "e2e",
        partitions=4,
        emulator_args=("--tracking-id", "tracking-test"),
        metrics=True,
        extra={"personalize": {"transport": transport}},
    )
    emulator, port = p.emulator, p.port
    assert port is not None
    events = make_events(3000, sessions=150)
    p.produce_events(events)

    with p.run() as replica:
        wait_for(lambda: emulator.stats()["accepted_events"] >= len(events), 90, what="all events accepted")
        p.wait_committed(30)
        # The replica's own account matches what the service received.
        stats = emulator.stats()
        metrics = scrape(port)
        assert metrics["forwarder_events_sent_total"] == stats["accepted_events"] == len(events)
        assert metrics['forwarder_putevents_calls_total{outcome="ok"}'] == stats["accepted_calls"]
        assert metrics["forwarder_messages_consumed_total"] == len(events)
        assert metrics["forwarder_batch_events_count"] == stats["accepted_calls"]
        assert metrics["forwarder_batch_events_sum"] == len(events)
        both = sum(1 for ev in events if "impression" in ev and "recommendationId" in ev)
        assert metrics["forwarder_events_with_impression_and_recommendation_total"] == both
        assert metrics["forwarder_assigned_partitions"] == 4
        assert probe(port, "/healthz") == 200
        assert probe(port, "/readyz") == 200

        def caught_up() -> bool:
            lag = {k: v for k, v in scrape(port).items() if k.startswith("forwarder_consumer_lag{")}
            return len(lag) == 4 and not any(lag.values())

        wait_for(caught_up, 20, what="consumer lag of every partition at 0")
        committed_series = {
            k: v for k, v in scrape(port).items() if k.startswith("forwarder_committed_offset{")
        }
        assert sum(committed_series.values()) == len(events)
        assert replica.stop() == 0, replica.log_text()[-3000:]

    calls = emulator.calls()
    by_id = {ev["eventId"]: ev for ev in events}
    seen: dict[str, int] = defaultdict(lambda: -1)
    received = 0
    for call in calls:
        assert call["trackingId"] == "tracking-test"
        assert 1 <= len(call["eventList"]) <= 10
        for wire in call["eventList"]:
            source = by_id[wire["eventId"]]
            assert call["sessionId"] == source["sessionId"], "a batch mixed sessions"
            assert call.get("userId") == source.get("userId")
            assert wire == as_sent(source)
            seq = json.loads(wire["properties"])["seq"]
            assert seq == seen[call["sessionId"]] + 1, "a session's events arrived out of order"
            seen[call["sessionId"]] = seq
            received += 1
    assert received == len(events), "duplicates or losses"
    # Grouping works: far fewer calls than events (150 sessions, 3000 events).
    assert len(calls) <= len(events) / 5
