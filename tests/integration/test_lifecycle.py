"""Memory stays bounded under a slow service (pause/resume, polling goes on), and stopping behaves:
the first signal drains and commits, a second exits at once."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.support import (
    ForwarderConfig,
    committed,
    create_topic,
    free_port,
    fully_committed,
    produce,
    running,
    scrape,
    start_emulator,
    start_forwarder,
    unique,
    wait_for,
)

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
    topic = create_topic(bootstrap, unique("slow"), partitions=2)
    dlq = create_topic(bootstrap, unique("slow-dlq"))
    total = 4000
    produce(bootstrap, topic, _events(total))

    limit, poll = 300, 100
    emulator = start_emulator(tmp_path, "--latency-ms", "100")
    port = free_port()
    cfg = ForwarderConfig(
        bootstrap,
        [topic],
        unique("g"),
        dlq,
        emulator.url,
        extra={
            "kafka": {"poll_batch_size": poll},
            "backpressure": {"max_buffered_events": limit},
            "personalize": {"max_in_flight": 8},
            "observability": {"port": port},
        },
    )
    replica = start_forwarder(tmp_path, cfg)
    peak = 0.0
    paused_seen = False
    with running([replica, emulator]):
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
        wait_for(
            lambda: fully_committed(bootstrap, cfg.group, topic),
            30,
            what="commits",
        )
        assert replica.stop() == 0
    assert paused_seen, "consumption was never paused"
    assert peak <= limit + poll, f"held {peak} events with a limit of {limit}"
    assert "pausing consumption" in replica.log_text()
    assert "resuming consumption" in replica.log_text()
    assert len({ev["eventId"] for ev in emulator.events()}) == total


def test_first_signal_drains_and_commits_a_second_exits_at_once(bootstrap: str, tmp_path: Path) -> None:
    topic = create_topic(bootstrap, unique("signals"))
    dlq = create_topic(bootstrap, unique("signals-dlq"))
    produce(bootstrap, topic, _events(200))
    # Every call takes 3 s: the drain after the first signal takes a while.
    emulator = start_emulator(tmp_path, "--latency-ms", "3000")
    cfg = ForwarderConfig(bootstrap, [topic], unique("g"), dlq, emulator.url)
    replica = start_forwarder(tmp_path, cfg)
    with running([replica, emulator]):
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
    topic = create_topic(bootstrap, unique("drain"))
    dlq = create_topic(bootstrap, unique("drain-dlq"))
    produce(bootstrap, topic, _events(300, sessions=20))  # 15 a session: one full batch, 5 left over
    emulator = start_emulator(tmp_path, "--latency-ms", "200")
    cfg = ForwarderConfig(
        bootstrap,
        [topic],
        unique("g"),
        dlq,
        emulator.url,
        extra={"batching": {"linger_ms": 60_000}},  # only a drain sends the partial batches
    )
    replica = start_forwarder(tmp_path, cfg)
    with running([replica, emulator]):
        wait_for(lambda: emulator.stats()["accepted_events"] >= 200, 30, what="the full batches")
        time.sleep(0.5)
        assert emulator.stats()["accepted_events"] == 200, "partial batches wait for their linger"
        assert replica.stop() == 0
        assert emulator.stats()["accepted_events"] == 300, "the drain sends every buffered event"
    assert committed(bootstrap, cfg.group, topic) == {0: 300}
