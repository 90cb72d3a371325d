"""The poison corpus through the real daemon: interleaved with valid events, every bad message is
dead-lettered with its stage and a reason naming its field, every valid one arrives, and the daemon
never stops or restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.corpus import load_corpus
from tests.support import (
    ForwarderConfig,
    Record,
    create_topic,
    fully_committed,
    headers_dict,
    produce,
    read_topic,
    running,
    start_emulator,
    start_forwarder,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_poison_corpus_interleaved_with_valid_events(bootstrap: str, tmp_path: Path) -> None:
    cases = load_corpus()
    topic = create_topic(bootstrap, unique("corpus"), partitions=3)
    dlq = create_topic(bootstrap, unique("corpus-dlq"))
    producer_records: list[Record] = []
    valid_ids = []
    for i, case in enumerate(cases):
        producer_records.append((case.name.encode(), case.value, i % 3, case.headers))
        ev = {
            "eventId": f"valid-{i}",
            "sessionId": f"s-{i % 5}",
            "eventType": "view",
            "sentAt": 1714566896 + i,
        }
        producer_records.append((b"valid", json.dumps(ev).encode(), i % 3, []))
        valid_ids.append(ev["eventId"])
    produce(bootstrap, topic, producer_records)

    emulator = start_emulator(tmp_path)
    cfg = ForwarderConfig(bootstrap, [topic], unique("g"), dlq, emulator.url)
    replica = start_forwarder(tmp_path, cfg)
    bad = [c for c in cases if c.bad]
    with running([replica, emulator]):
        dead = read_topic(bootstrap, dlq, expect=len(bad), timeout=90)
        wait_for(lambda: fully_committed(bootstrap, cfg.group, topic), 60, what="commit to the end")
        accepted = emulator.events()
        assert replica.proc.poll() is None, "the daemon must keep running"
        assert replica.log_text().count("starting:") == 1
        assert replica.stop() == 0

    by_name = {c.name: c for c in cases}
    seen = set()
    for message in dead:
        name = message.key().decode()
        case = by_name[name]
        headers = headers_dict(message)
        assert case.bad, f"{name} is valid but was dead-lettered: {headers.get('forwarder.error.message')}"
        assert headers["forwarder.error.stage"] == case.stage, name
        assert headers["forwarder.error.message"].startswith(case.field), (
            name,
            headers["forwarder.error.message"],
        )
        assert message.value() == case.value, f"{name}: the original value is kept"
        original = [(k, v) for k, v in (message.headers() or []) if not k.startswith("forwarder.")]
        assert original == case.headers, f"{name}: the original headers are kept"
        seen.add(name)
    assert seen == {c.name for c in bad}, f"not dead-lettered: {sorted({c.name for c in bad} - seen)}"
    ids = [ev["eventId"] for ev in accepted]
    assert len(ids) == len(set(ids)), "nothing twice"
    assert set(valid_ids) <= set(ids), "every valid message arrives"
    assert len(ids) == len(valid_ids) + len([c for c in cases if not c.bad])
