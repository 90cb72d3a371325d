"""The poison corpus through the real daemon: interleaved with valid events, every bad message is
dead-lettered with its stage and a reason naming its field, every valid one arrives, and the daemon
never stops or restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.corpus import load_corpus
from tests.harness import Record, headers_dict
from tests.harness.pipeline import pipeline

pytestmark = pytest.mark.integration


def test_poison_corpus_interleaved_with_valid_events(bootstrap: str, tmp_path: Path) -> None:
    cases = load_corpus()
    p = pipeline(bootstrap, tmp_path, "corpus", partitions=3)
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
    p.produce(producer_records)

    bad = [c for c in cases if c.bad]
    with p.run() as replica:
        dead = p.dead_letters(expect=len(bad), timeout=90)
        p.wait_committed()
        accepted = p.emulator.events()
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
