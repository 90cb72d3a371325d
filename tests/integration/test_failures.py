"""Each failure class, end to end: where every message went, and that nothing was committed past an
unfinished message. Real broker, real emulator, the daemon as a real process."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (
    EmulatorProcess,
    committed,
    create_topic,
    delete_topic,
    headers_dict,
    scrape,
    wait_for,
)
from tests.harness.pipeline import pipeline

pytestmark = pytest.mark.integration


def _event(i: int, session: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "eventId": f"ev-{i}",
        "sessionId": session or f"s-{i % 7}",
        "userId": f"u-{i % 7}",
        "eventType": "click",
        "itemId": f"item-{i}",
        "sentAt": 1714566896 + i,
        **extra,
    }


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def _accepted_ids(emulator: EmulatorProcess) -> list[str]:
    return [ev["eventId"] for ev in emulator.events()]


POISON: list[tuple[str, bytes | None, str, str]] = [
    # (name, value, stage, text the reason must contain)
    ("non-utf8", b"\xff\xfe\xfa", "decode", "value"),
    ("not-json", b'{"sessionId": "s", ', "decode", "value"),
    ("json-array", b"[1, 2, 3]", "decode", "value"),
    ("tombstone", None, "decode", "value"),
    ("no-session", _encode({"eventType": "click", "sentAt": 1714566896}), "validate", "sessionId"),
    ("no-event-type", _encode({"sessionId": "s", "sentAt": 1714566896}), "validate", "eventType"),
    ("bad-sent-at", _encode({**_event(0), "sentAt": "last tuesday"}), "validate", "sentAt"),
    (
        "26-impressions",
        _encode({**_event(0), "impression": [f"i{n}" for n in range(26)]}),
        "validate",
        "impression",
    ),
    ("41-char-rec-id", _encode({**_event(0), "recommendationId": "r" * 41}), "validate", "recommendationId"),
    (
        "1025-properties",
        _encode({**_event(0), "properties": "{" + '"k":"' + "v" * 1017 + '"}'}),
        "validate",
        "properties",
    ),
    ("reserved-key", _encode({**_event(0), "properties": {"userId": "x"}}), "validate", "properties"),
    ("1-mb", _encode({**_event(0), "properties": {"blob": "x" * 990_000}}), "validate", "properties"),
]


def test_bad_input_is_dead_lettered_with_its_stage_and_field_and_the_stream_goes_on(
    bootstrap: str, tmp_path: Path
) -> None:
    p = pipeline(bootstrap, tmp_path, "poison", partitions=2)
    emulator = p.emulator
    records: list[tuple[bytes | None, bytes | None, int]] = []
    good = 0
    for round_ in range(2):
        for name, value, _stage, _field in POISON:
            records.append((name.encode(), value, round_))
            records.append((b"k", _encode(_event(good)), round_))
            good += 1
    p.produce(records, headers=[("origin", b"test\x00\xff")])

    with p.run() as replica:
        dead = p.dead_letters(expect=2 * len(POISON), timeout=60)
        wait_for(lambda: len(_accepted_ids(emulator)) >= good, 30, what="valid events")
        p.wait_committed(30)
        assert replica.proc.poll() is None, "the daemon must keep running"
        assert replica.stop() == 0

    assert sorted(_accepted_ids(emulator)) == sorted(f"ev-{i}" for i in range(good))
    assert len(dead) == 2 * len(POISON)
    expected = {name: (value, stage, field) for name, value, stage, field in POISON}
    for message in dead:
        name = message.key().decode()
        value, stage, field = expected[name]
        headers = headers_dict(message)
        assert headers["forwarder.error.stage"] == stage, (name, headers)
        assert field in headers["forwarder.error.message"], (name, headers)
        assert headers["forwarder.original.topic"] == p.topic
        assert headers["origin"] == "test\x00\ufffd", "original headers are kept"
        assert int(headers["forwarder.original.offset"]) >= 0
        assert message.value() == value, f"{name}: original value must be kept"


def test_a_batch_the_service_rejects_is_bisected_and_only_the_bad_event_is_dead_lettered(
    bootstrap: str, tmp_path: Path
) -> None:
    rejected = ("--reject-item-id", "item-13", "--reject-item-id", "item-27")
    p = pipeline(bootstrap, tmp_path, "bisect", emulator_args=rejected)
    emulator = p.emulator
    events = [_event(i, session="one-session", userId="one-user") for i in range(30)]
    p.produce_events(events, key=b"k")

    with p.run() as replica:
        dead = p.dead_letters(expect=2, timeout=60)
        p.wait_committed(30)
        assert replica.stop() == 0

    assert sorted(json.loads(m.value())["itemId"] for m in dead) == ["item-13", "item-27"]
    for message in dead:
        headers = headers_dict(message)
        assert headers["forwarder.error.stage"] == "api"
        assert headers["forwarder.error.class"] == "InvalidInputException"
        assert "itemId" in headers["forwarder.error.message"]
    accepted = _accepted_ids(emulator)
    assert accepted == [f"ev-{i}" for i in range(30) if i not in (13, 27)], "valid events land, in order"


def test_throttling_and_5xx_on_half_the_calls_lose_nothing(bootstrap: str, tmp_path: Path) -> None:
    faults = ("--throttle-rate", "0.3", "--error-rate", "0.2", "--seed", "3")
    p = pipeline(
        bootstrap,
        tmp_path,
        "flaky",
        partitions=3,
        emulator_args=faults,
        extra={"retry": {"max_attempts": 30}},
    )
    emulator = p.emulator
    events = [_event(i, session=f"s-{i % 40}") for i in range(2000)]
    p.produce_events(events)

    with p.run() as replica:
        wait_for(lambda: len(set(_accepted_ids(emulator))) >= len(events), 120, what="every event")
        p.wait_committed(30)
        assert replica.stop() == 0
        stats = emulator.stats()
    assert stats["throttled"] > 0
    assert stats["errors"] > 0
    assert sorted(set(_accepted_ids(emulator))) == sorted(ev["eventId"] for ev in events)
    assert p.dead_letters(timeout=3) == []


def test_exhausted_retries_go_to_the_dead_letter_topic(bootstrap: str, tmp_path: Path) -> None:
    p = pipeline(
        bootstrap,
        tmp_path,
        "exhaust",
        emulator_args=("--error-rate", "1.0"),
        extra={"retry": {"max_attempts": 3}},
    )
    emulator = p.emulator
    events = [_event(i) for i in range(12)]
    p.produce_events(events, key=b"k")

    with p.run() as replica:
        dead = p.dead_letters(expect=len(events), timeout=60)
        p.wait_committed(30)
        assert replica.stop() == 0
    assert sorted(json.loads(m.value())["eventId"] for m in dead) == sorted(ev["eventId"] for ev in events)
    for message in dead:
        headers = headers_dict(message)
        assert headers["forwarder.error.stage"] == "retry_exhausted"
        assert headers["forwarder.attempts"] == "3"
    assert emulator.calls() == []


def test_a_wrong_tracking_id_is_an_outage_not_bad_data(bootstrap: str, tmp_path: Path) -> None:
    # The replica's tracking id is "tracking-test" (ForwarderConfig's); the service knows another one.
    p = pipeline(
        bootstrap,
        tmp_path,
        "outage",
        emulator_args=("--tracking-id", "the-right-one"),
        extra={"retry": {"outage_retry_interval_s": 1}},
    )
    emulator = p.emulator
    events = [_event(i) for i in range(50)]
    p.produce_events(events, key=b"k")

    with p.run() as replica:
        wait_for(lambda: emulator.stats()["not_found"] >= 2, 30, what="the outage to be probed")
        time.sleep(1.0)
        assert committed(bootstrap, p.group, p.topic)[0] <= 0, "nothing may be committed during the outage"
        assert p.dead_letters(timeout=2) == [], "an outage dead-letters nothing"
        assert "refuses every call" in replica.log_text()
        calls_during_outage = emulator.stats()["not_found"]
        assert calls_during_outage < 20, "one slow probe, not a storm"
        # The operator fixes the tracking id on the service side: everything flows.
        emulator.set_faults(tracking_ids=["the-right-one", "tracking-test"])
        wait_for(lambda: len(_accepted_ids(emulator)) >= len(events), 60, what="recovery")
        p.wait_committed(30)
        assert replica.stop() == 0
    assert sorted(_accepted_ids(emulator)) == sorted(ev["eventId"] for ev in events)


def test_while_the_dead_letter_topic_is_unavailable_nothing_is_committed_past_its_message(
    bootstrap: str, tmp_path: Path
) -> None:
    # The start-up checks insist that the dead-letter topic exists; it is deleted once the replica runs
    # (and the broker does not create topics on its own), then the messages are produced.
    p = pipeline(
        bootstrap, tmp_path, "dlq-down", extra={"dead_letter": {"producer": {"message.timeout.ms": 2000}}}
    )
    emulator = p.emulator
    records = [(b"k", _encode(_event(i))) for i in range(10)]
    records.append((b"bad", b"not json"))
    records += [(b"k", _encode(_event(i))) for i in range(10, 20)]

    with p.run() as replica:
        wait_for(lambda: "starting:" in replica.log_text(), 60, what="the replica past its start-up checks")
        delete_topic(bootstrap, p.dlq)
        p.produce(records)
        wait_for(lambda: len(_accepted_ids(emulator)) >= 20, 60, what="the valid events")
        time.sleep(3)  # several commit intervals and dead-letter retries
        assert committed(bootstrap, p.group, p.topic)[0] <= 10, "committed past the unacknowledged message"
        assert "writing to dead-letter topic" in replica.log_text()
        create_topic(bootstrap, p.dlq)
        dead = p.dead_letters(expect=1, timeout=90)
        p.wait_committed(30)
        assert replica.stop() == 0
    assert [m.value() for m in dead] == [b"not json"]


def test_a_capped_replica_backs_off_under_the_services_quota(bootstrap: str, tmp_path: Path) -> None:
    # The service allows 50 calls/s; the replica is capped at 200 and must settle lower when throttled.
    p = pipeline(
        bootstrap,
        tmp_path,
        "quota",
        partitions=2,
        emulator_args=("--quota-rps", "50"),
        metrics=True,
        extra={
            "personalize": {"max_calls_per_second": 200, "max_in_flight": 32},
            "batching": {"linger_ms": 20},
            "retry": {"max_attempts": 50, "max_backoff_ms": 1000},
        },
    )
    emulator = p.emulator
    events = [_event(i, session=f"s-{i}") for i in range(600)]  # one event a session: one call each
    p.produce_events(events)

    with p.run() as replica:
        wait_for(lambda: len(set(_accepted_ids(emulator))) >= len(events), 90, what="every event")
        assert p.port is not None
        rate = scrape(p.port)["forwarder_rate_limit_calls_per_second"]
        stats = emulator.stats()
        assert replica.stop() == 0
    assert stats["quota_throttled"] > 0, "the quota was reached"
    assert 50 <= rate < 200, f"the cap backed off under throttling: {rate}"
    assert stats["quota_throttled"] < stats["accepted_calls"], (
        "backing off keeps throttling below the successes"
    )
