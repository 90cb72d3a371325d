"""Memory stays bounded under a slow service (pause/resume, polling goes on), and stopping behaves:
the first signal drains and commits, a second exits at once."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.harness import committed, scrape, wait_for
from tests.harness.pipeline import pipeline

pytestmark = pytest.mark.integration


def _events(n: int, sessions: int = 500) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        ev = {
            "eventId": f"ev-{i}",
            "sessionId": f"s-{i % sessions}",
            "eventType": "view",
            "sentAt": 1714566896 + i,
        }
        out.append((str(ev["sessionId"]).encode(), json.dumps(ev).encode()))
    return out


def test_a_slow_service_pauses_consumption_instead_of_growing_memory(bootstrap: str, tmp_path: Path) -> None:
    total, limit, poll = 4000, 300, 100
    p = pipeline(
        bootstrap,
        tmp_path,
        "slow",
        partitions=2,
        emulator_args=("--latency-ms", "100"),
        metrics=True,
        extra={
            "kafka": {"poll_batch_size": poll},
            "backpressure": {"max_buffered_events": limit},
            "personalize": {"max_in_flight": 8},
        },
    )
    emulator, port = p.emulator, p.port
    assert port is not None
    p.produce(_events(total))
    peak = 0.0
    paused_seen = False
    with p.run() as replica:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and emulator.stats()["accepted_events"] < total:
            try:
                metrics = scrape(port)
            except OSError:
                time.sleep(0.2)
                continue
            held = metrics.get("forwarder_buffered_events", 0) + metrics.get("forwarder_in_flight_events", 0)
            peak = max(peak, held)
            paused_seen |= metrics.get("forwarder_paused_partitions", 0) > 0
            time.sleep(0.05)
        wait_for(lambda: emulator.stats()["accepted_events"] >= total, 30, what="every event")
        p.wait_committed(30)
        assert replica.stop() == 0
    assert paused_seen, "consumption was never paused"
    assert peak <= limit + poll, f"held {peak} events with a limit of {limit}"
    assert "pausing consumption" in replica.log_text()
    assert "resuming consumption" in replica.log_text()
    assert len({ev["eventId"] for ev in emulator.events()}) == total


def test_first_signal_drains_and_commits_a_second_exits_at_once(bootstrap: str, tmp_path: Path) -> None:
    # Every call takes 3 s: the drain after the first signal takes a while.
    p = pipeline(bootstrap, tmp_path, "signals", emulator_args=("--latency-ms", "3000"))
    p.produce(_events(200))
    with p.run() as replica:
        wait_for(lambda: "assigned" in replica.log_text(), 30, what="assignment")
        time.sleep(1.5)  # calls are in flight now
        replica.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping (SIGTERM)" in replica.log_text(), 10, what="the first signal")
        assert replica.proc.poll() is None, "the first signal drains; it does not exit at once"
        started = time.monotonic()
        replica.proc.send_signal(signal.SIGTERM)
        code = replica.proc.wait(10)
        assert time.monotonic() - started < 5
        assert code == 128 + signal.SIGTERM
        assert "second SIGTERM" in replica.log_text()


def test_sigterm_commits_what_was_delivered(bootstrap: str, tmp_path: Path) -> None:
    p = pipeline(
        bootstrap,
        tmp_path,
        "drain",
        emulator_args=("--latency-ms", "200"),
        extra={"batching": {"linger_ms": 60_000}},  # only a drain sends the partial batches
    )
    emulator = p.emulator
    p.produce(_events(300, sessions=20))  # 15 a session: one full batch, 5 left over
    with p.run() as replica:
        wait_for(lambda: emulator.stats()["accepted_events"] >= 200, 30, what="the full batches")
        time.sleep(0.5)
        assert emulator.stats()["accepted_events"] == 200, "partial batches wait for their linger"
        assert replica.stop() == 0
        assert emulator.stats()["accepted_events"] == 300, "the drain sends every buffered event"
    assert committed(bootstrap, p.group, p.topic) == {0: 300}
