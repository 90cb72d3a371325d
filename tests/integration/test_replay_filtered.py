"""A filtered replay (`--stage`, `--since`) never hides the records it skips from a later replay: two
replays of two stages through the real daemon, the real broker and the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    AWS_TEST_ENV,
    REPO,
    ForwarderConfig,
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


def _replay(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forwarder", "replay", "--config", str(config), "--from-dead-letter", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ, **AWS_TEST_ENV},
        check=False,
    )


def _event(i: int, item: str) -> dict[str, Any]:
    return {
        "eventId": f"ev-{i}",
        "sessionId": f"s-{i}",
        "eventType": "view",
        "itemId": item,
        "sentAt": 1714566896 + i,
    }


def test_two_replays_of_two_stages_each_find_their_records(bootstrap: str, tmp_path: Path) -> None:
    topic = create_topic(bootstrap, unique("replay-stages"))
    dlq = create_topic(bootstrap, unique("replay-stages-dlq"))
    emulator = start_emulator(tmp_path)
    cfg = ForwarderConfig(
        bootstrap,
        [topic],
        unique("g"),
        dlq,
        emulator.url,
        extra={"retry": {"max_attempts": 2, "initial_backoff_ms": 5, "max_backoff_ms": 10}},
    )
    replica = start_forwarder(tmp_path, cfg)
    with running([replica, emulator]):
        # Phase 1: the service fails every call: 4 events end as retry_exhausted.
        emulator.set_faults(error_rate=1.0)
        produce(bootstrap, topic, [(b"k", json.dumps(_event(i, "item-1")).encode()) for i in range(4)])
        read_topic(bootstrap, dlq, expect=4, timeout=60)
        # Phase 2: the service rejects item-3: 3 events end as api.
        emulator.set_faults(error_rate=0.0, reject_item_ids=["item-3"])
        produce(bootstrap, topic, [(b"k", json.dumps(_event(i, "item-3")).encode()) for i in range(4, 7)])
        dead = read_topic(bootstrap, dlq, expect=7, timeout=60)
        wait_for(lambda: fully_committed(bootstrap, cfg.group, topic), 30, what="commit to the end")
        assert replica.stop() == 0
        stages = sorted(headers_dict(m)["forwarder.error.stage"] for m in dead)
        assert stages == ["api"] * 3 + ["retry_exhausted"] * 4
        assert emulator.events() == []

        emulator.set_faults(reject_item_ids=[])
        config = cfg.config_path(tmp_path)
        first = _replay(config, "--stage", "api")
        assert first.returncode == 0, first.stderr[-3000:]
        assert "3 accepted by PutEvents" in first.stdout, first.stdout
        assert "4 other stage" in first.stdout, first.stdout

        # A --since replay that picks nothing (everything is older) hides nothing either.
        none = _replay(config, "--stage", "retry_exhausted", "--since", "2999-01-01T00:00Z")
        assert none.returncode == 0, none.stderr[-3000:]
        assert "4 before --since" in none.stdout, none.stdout

        second = _replay(config, "--stage", "retry_exhausted")
        assert second.returncode == 0, second.stderr[-3000:]
        assert "4 accepted by PutEvents" in second.stdout, second.stdout
        assert sorted(ev["eventId"] for ev in emulator.events()) == sorted(f"ev-{i}" for i in range(7))

        everything = _replay(config)
        assert everything.returncode == 0, everything.stderr[-3000:]
        assert len(emulator.events()) == 7, "a later replay of every stage repeats nothing"
