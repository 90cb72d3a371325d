"""Issue #10 item 1 and the recovery speed, through the real daemon, the real broker and the emulator:
an outage is scoped to the tracker it concerns, bounded for a tracker the messages carry, and a short
outage of the configured tracker costs seconds."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness.pipeline import pipeline
from tests.support import (
    EmulatorProcess,
    committed,
    headers_dict,
    running,
    scrape,
    start_emulator,
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


def test_an_unknown_tracking_id_holds_only_its_own_events_then_dead_letters_them_as_outage(
    bootstrap: str, tmp_path: Path
) -> None:
    retry = {"outage_first_probe_s": 0.5, "outage_retry_interval_s": 1, "outage_max_s": 3}
    # One partition: the typo sits among the others.
    p = pipeline(
        bootstrap,
        tmp_path,
        "trk",
        metrics=True,
        extra={"retry": retry, "observability": {"host": "127.0.0.1"}},
    )
    topic, emulator, port, cfg = p.topic, p.emulator, p.port, p.cfg
    assert port is not None
    own = {TYPO_OFFSET: TYPO, FORBIDDEN_OFFSET: FORBIDDEN}
    events = [_event(i, trackingId=own[i]) if i in own else _event(i) for i in range(30)]
    p.produce_events(events, key=b"k")
    emulator.set_faults(tracking_ids=[CONFIGURED, FORBIDDEN], forbidden_tracking_ids=[FORBIDDEN])
    others = {ev["eventId"] for ev in events} - {f"ev-{TYPO_OFFSET}", f"ev-{FORBIDDEN_OFFSET}"}
    with p.run() as replica:
        # Every other session flows while the typo's events are held: nothing is dead-lettered yet and
        # the partition's commit stays at the held message.
        wait_for(lambda: _accepted(emulator) >= others, 60, what="the other sessions to be delivered")
        metrics = scrape(port)
        assert metrics.get(f'forwarder_outage{{tracking_id="{TYPO}"}}') == 1.0, metrics
        assert metrics.get(f'forwarder_outage{{tracking_id="{FORBIDDEN}"}}') == 1.0, metrics
        assert metrics.get(f'forwarder_outage{{tracking_id="{CONFIGURED}"}}') == 0.0
        assert p.dead_letters(timeout=0.5) == [], "held, not dead-lettered, before the bound"
        assert committed(bootstrap, cfg.group, topic)[0] <= TYPO_OFFSET, "never past the held message"
        # After retry.outage_max_s the held events go to the dead-letter topic, and commits move on.
        dead = p.dead_letters(expect=2, timeout=30)
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
        p.wait_committed(30)
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
        done = p.replay("--stage", "outage", timeout=120)
        assert done.returncode == 0, done.stderr
        calls = {call["trackingId"]: [ev["eventId"] for ev in call["eventList"]] for call in emulator.calls()}
        assert calls == {TYPO: [f"ev-{TYPO_OFFSET}"], FORBIDDEN: [f"ev-{FORBIDDEN_OFFSET}"]}


def test_a_three_second_outage_of_the_configured_tracker_costs_seconds_not_the_interval(
    bootstrap: str, tmp_path: Path
) -> None:
    p = pipeline(bootstrap, tmp_path, "blip", emulator_args=("--tracking-id", CONFIGURED))  # default probes
    emulator = p.emulator
    with p.run() as replica:
        p.produce_events([_event(0)], key=b"k")
        wait_for(lambda: _accepted(emulator) == {"ev-0"}, 60, what="the first event")
        emulator.set_faults(tracking_ids=["someone-else"])
        p.produce_events([_event(i) for i in range(1, 20)], key=b"k")
        wait_for(lambda: emulator.stats()["not_found"] >= 1, 30, what="the outage to begin")
        began = time.monotonic()
        time.sleep(3.0)
        emulator.set_faults(tracking_ids=[CONFIGURED])
        wait_for(lambda: len(_accepted(emulator)) == 20, 60, what="recovery")
        cost = time.monotonic() - began
        print(f"a 3 s outage cost {cost:.1f} s")
        assert cost < 8.0, f"a 3 s outage cost {cost:.1f} s (the first probes come after 1, 2, 4 s)"
        assert p.dead_letters(timeout=0.5) == []
        p.wait_committed(30)
        assert replica.stop() == 0
