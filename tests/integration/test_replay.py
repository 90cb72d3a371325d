"""`forwarder replay` end to end: after a fix, dead-lettered records go through the same pipeline again,
keeping their original ids, and a second replay repeats nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.harness.pipeline import pipeline

pytestmark = pytest.mark.integration


def test_replay_redrives_dead_letters_with_their_original_ids(bootstrap: str, tmp_path: Path) -> None:
    # item-3 is rejected by the service (say, not in the items dataset yet): 5 events go to the DLQ.
    p = pipeline(bootstrap, tmp_path, "replay", partitions=2, emulator_args=("--reject-item-id", "item-3"))
    topic, emulator = p.topic, p.emulator
    records = []
    for i in range(40):
        # No eventId: the forwarder derives topic@topic_id:partition:offset, which a replay must reproduce.
        ev = {
            "sessionId": f"s-{i % 4}",
            "eventType": "view",
            "itemId": f"item-{i % 8}",
            "sentAt": 1714566896 + i,
        }
        records.append((str(ev["sessionId"]).encode(), json.dumps(ev).encode()))
    records.append((b"broken", b'{"sessionId": "s-x"}'))  # no eventType: stage validate, not replayed below
    p.produce(records)

    with p.run() as replica:
        dead = p.dead_letters(expect=6, timeout=60)
        p.wait_committed(30)
        assert replica.stop() == 0
        first_ids = {ev["eventId"] for ev in emulator.events()}
        assert len(first_ids) == 35

        stages = sorted(dict(m.headers())["forwarder.error.stage"].decode() for m in dead)
        assert stages == ["api"] * 5 + ["validate"]
        expected_ids = {
            f"{topic}@{dict(m.headers())['forwarder.original.topic_id'].decode()}:"
            f"{dict(m.headers())['forwarder.original.partition'].decode()}:"
            f"{dict(m.headers())['forwarder.original.offset'].decode()}"
            for m in dead
            if dict(m.headers())["forwarder.error.stage"] == b"api"
        }

        # The fix: the items exist now. A dry run first, then the replay of the api stage only.
        emulator.set_faults(reject_item_ids=[])
        dry = p.replay("--stage", "api", "--dry-run", timeout=120)
        assert dry.returncode == 0, dry.stderr
        assert re.search(r"\b5\s+would be sent", dry.stdout), dry.stdout
        assert len(emulator.events()) == 35, "a dry run sends nothing"

        done = p.replay("--stage", "api", timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "5 accepted by PutEvents" in done.stdout, done.stdout
        assert "1 other stage" in done.stdout
        replayed = [ev for ev in emulator.events() if ev["eventId"] not in first_ids]
        assert {ev["eventId"] for ev in replayed} == expected_ids, "replayed events keep their original ids"
        assert {ev["itemId"] for ev in replayed} == {"item-3"}

        again = p.replay("--stage", "api", timeout=120)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "0 accepted by PutEvents" in again.stdout, again.stdout
        assert len(emulator.events()) == 40, "a second replay repeats nothing"
