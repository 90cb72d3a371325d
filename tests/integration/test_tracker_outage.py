"""Issue #10 item 1 and the recovery speed, through the real daemon, the real broker and the emulator:
an outage is scoped to the tracker it concerns, bounded for a tracker the messages carry, and a short
outage of the configured tracker costs seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    AWS_TEST_ENV,
    REPO,
    EmulatorProcess,
    ForwarderConfig,
    committed,
    create_topic,
    free_port,
    fully_committed,
    headers_dict,
    produce,
    read_topic,
    running,
    scrape,
    start_emulator,
    start_forwarder,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration

CONFIGURED = "tracking-test"  # the ForwarderConfig default, known to the emulator below
TYPO = "trakcing-test"  # a tracking id one message carries, unknown to the service
TYPO_OFFSET = 7
FORBIDDEN = "someone-elses-tracker"  # a tracking id one message carries, which the service forbids
FORBIDDEN_OFFSET = 19


def _event(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "eventId": f"ev-{i}",
        "sessionId": f"s-{i % 5}",
        "userId": f"u-{i % 5}",
        "eventType": "click",
        "sentAt": 1714566896 + i,
        **extra,
    }


def _accepted(emulator: EmulatorProcess) -> set[str]:
    return {ev["eventId"] for ev in emulator.events()}


def _replay(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forwarder", "replay", "--config", str(config), "--from-dead-letter", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, **AWS_TEST_ENV},
        check=False,
    )


def test_an_unknown_tracking_id_holds_only_its_own_events_then_dead_letters_them_as_outage(
    bootstrap: str, tmp_path: Path
) -> None:
    topic = create_topic(bootstrap, unique("trk"))  # one partition: the typo sits among the others
    dlq = create_topic(bootstrap, unique("trk-dlq"))
    own = {TYPO_OFFSET: TYPO, FORBIDDEN_OFFSET: FORBIDDEN}
    events = [_event(i, trackingId=own[i]) if i in own else _event(i) for i in range(30)]
    produce(bootstrap, topic, [(b"k", json.dumps(ev).encode()) for ev in events])
    emulator = start_emulator(tmp_path)
    emulator.set_faults(tracking_ids=[CONFIGURED, FORBIDDEN], forbidden_tracking_ids=[FORBIDDEN])
    port = free_port()
    retry = {"outage_first_probe_s": 0.5, "outage_retry_interval_s": 1, "outage_max_s": 3}
    cfg = ForwarderConfig(
        bootstrap,
        [topic],
        unique("g"),
        dlq,
        emulator.url,
        extra={"retry": retry, "observability": {"port": port, "host": "127.0.0.1"}},
    )
    others = {ev["eventId"] for ev in events} - {f"ev-{TYPO_OFFSET}", f"ev-{FORBIDDEN_OFFSET}"}
    replica = start_forwarder(tmp_path, cfg)
    with running([replica, emulator]):
        # Every other session flows while the typo's events are held: nothing is dead-lettered yet and
        # the partition's commit stays at the held message.
        wait_for(lambda: _accepted(emulator) >= others, 60, what="the other sessions to be delivered")
        metrics = scrape(port)
        assert metrics.get(f'forwarder_outage{{tracking_id="{TYPO}"}}') == 1.0, metrics
        assert metrics.get(f'forwarder_outage{{tracking_id="{FORBIDDEN}"}}') == 1.0, metrics
        assert metrics.get(f'forwarder_outage{{tracking_id="{CONFIGURED}"}}') == 0.0
        assert read_topic(bootstrap, dlq, timeout=0.5) == [], "held, not dead-lettered, before the bound"
        assert committed(bootstrap, cfg.group, topic)[0] <= TYPO_OFFSET, "never past the held message"
        # After retry.outage_max_s the held events go to the dead-letter topic, and commits move on.
        dead = read_topic(bootstrap, dlq, expect=2, timeout=30)
        found = {json.loads(record.value())["eventId"]: headers_dict(record) for record in dead}
        assert found.keys() == {f"ev-{TYPO_OFFSET}", f"ev-{FORBIDDEN_OFFSET}"}
        for offset, tracker, error in [
            (TYPO_OFFSET, TYPO, "ResourceNotFoundException"),
            (FORBIDDEN_OFFSET, FORBIDDEN, "AccessDeniedException"),
        ]:
            headers = found[f"ev-{offset}"]
            assert headers["forwarder.error.stage"] == "outage"
            assert headers["forwarder.error.class"] == error
            assert tracker in headers["forwarder.error.message"]
        wait_for(lambda: fully_committed(bootstrap, cfg.group, topic), 30, what="commit to the end")
        wait_for(lambda: f'forwarder_outage{{tracking_id="{TYPO}"}}' not in scrape(port), 10, what="series")
        assert scrape(port).get('forwarder_events_dead_lettered_total{stage="outage"}') == 2.0
        assert replica.stop() == 0
    assert "refuses calls for tracking id" in replica.log_text()
    assert "refuses every call" not in replica.log_text(), "never the replica's outage"

    # The operator creates one tracker and grants the other; a replay of stage outage sends both the
    # normal way.
    emulator = start_emulator(tmp_path, "--tracking-id", CONFIGURED)
    emulator.set_faults(tracking_ids=[CONFIGURED, TYPO, FORBIDDEN])
    cfg.endpoint = emulator.url
    with running([emulator]):
        done = _replay(cfg.config_path(tmp_path), "--stage", "outage")
        assert done.returncode == 0, done.stderr
        calls = {call["trackingId"]: [ev["eventId"] for ev in call["eventList"]] for call in emulator.calls()}
        assert calls == {TYPO: [f"ev-{TYPO_OFFSET}"], FORBIDDEN: [f"ev-{FORBIDDEN_OFFSET}"]}


def test_a_three_second_outage_of_the_configured_tracker_costs_seconds_not_the_interval(
    bootstrap: str, tmp_path: Path
) -> None:
    topic = create_topic(bootstrap, unique("blip"))
    dlq = create_topic(bootstrap, unique("blip-dlq"))
    emulator = start_emulator(tmp_path, "--tracking-id", CONFIGURED)
    cfg = ForwarderConfig(bootstrap, [topic], unique("g"), dlq, emulator.url)  # default probe schedule
    replica = start_forwarder(tmp_path, cfg)
    with running([replica, emulator]):
        produce(bootstrap, topic, [(b"k", json.dumps(_event(0)).encode())])
        wait_for(lambda: _accepted(emulator) == {"ev-0"}, 60, what="the first event")
        emulator.set_faults(tracking_ids=["someone-else"])
        produce(bootstrap, topic, [(b"k", json.dumps(_event(i)).encode()) for i in range(1, 20)])
        wait_for(lambda: emulator.stats()["not_found"] >= 1, 30, what="the outage to begin")
        began = time.monotonic()
        time.sleep(3.0)
        emulator.set_faults(tracking_ids=[CONFIGURED])
        wait_for(lambda: len(_accepted(emulator)) == 20, 60, what="recovery")
        cost = time.monotonic() - began
        print(f"a 3 s outage cost {cost:.1f} s")
        assert cost < 8.0, f"a 3 s outage cost {cost:.1f} s (the first probes come after 1, 2, 4 s)"
        assert read_topic(bootstrap, dlq, timeout=0.5) == []
        wait_for(lambda: fully_committed(bootstrap, cfg.group, topic), 30, what="commit to the end")
        assert replica.stop() == 0
