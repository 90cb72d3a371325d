"""A filtered replay (`--stage`, `--since`) never hides the records it skips from a later replay: two
replays of two stages through the real daemon, the real broker and the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness import headers_dict
from tests.harness.pipeline import pipeline

pytestmark = pytest.mark.integration


def _event(i: int, item: str) -> dict[str, Any]:
    return {
        "eventId": f"ev-{i}",
        "sessionId": f"s-{i}",
        "eventType": "view",
        "itemId": item,
        "sentAt": 1714566896 + i,
    }


def test_two_replays_of_two_stages_each_find_their_records(bootstrap: str, tmp_path: Path) -> None:
    p = pipeline(
        bootstrap,
        tmp_path,
        "replay-stages",
        extra={"retry": {"max_attempts": 2, "initial_backoff_ms": 5, "max_backoff_ms": 10}},
    )
    emulator = p.emulator
    with p.run() as replica:
        # Phase 1: the service fails every call: 4 events end as retry_exhausted.
        emulator.set_faults(error_rate=1.0)
        p.produce_events((_event(i, "item-1") for i in range(4)), key=b"k")
        p.dead_letters(expect=4, timeout=60)
        # Phase 2: the service rejects item-3: 3 events end as api.
        emulator.set_faults(error_rate=0.0, reject_item_ids=["item-3"])
        p.produce_events((_event(i, "item-3") for i in range(4, 7)), key=b"k")
        dead = p.dead_letters(expect=7, timeout=60)
        p.wait_committed(30)
        assert replica.stop() == 0
        stages = sorted(headers_dict(m)["forwarder.error.stage"] for m in dead)
        assert stages == ["api"] * 3 + ["retry_exhausted"] * 4
        assert emulator.events() == []

        emulator.set_faults(reject_item_ids=[])
        first = p.replay("--stage", "api")
        assert first.returncode == 0, first.stderr[-3000:]
        assert "3 accepted by PutEvents" in first.stdout, first.stdout
        assert "4 other stage" in first.stdout, first.stdout

        # A --since replay that picks nothing (everything is older) hides nothing either.
        none = p.replay("--stage", "retry_exhausted", "--since", "2999-01-01T00:00Z")
        assert none.returncode == 0, none.stderr[-3000:]
        assert "4 before --since" in none.stdout, none.stdout

        second = p.replay("--stage", "retry_exhausted")
        assert second.returncode == 0, second.stderr[-3000:]
        assert "4 accepted by PutEvents" in second.stdout, second.stdout
        assert sorted(ev["eventId"] for ev in emulator.events()) == sorted(f"ev-{i}" for i in range(7))

        everything = p.replay()
        assert everything.returncode == 0, everything.stderr[-3000:]
        assert len(emulator.events()) == 7, "a later replay of every stage repeats nothing"
