"""The chaos run at CI size (>=20,000 events, under two minutes): nothing lost under replica kills, a
SIGTERM handover, a broker restart, a dead-letter topic refusing writes, and a misbehaving service."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.run import BrokerControl, ChaosSettings, run_chaos
from tests.conftest import Broker

pytestmark = pytest.mark.integration


def test_chaos_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    settings = ChaosSettings(
        events=20_000,
        partitions=8,
        replicas=3,
        produce_seconds=30,
        kill_every_s=10,
        time_limit_s=150,
        dead_letter_down_s=8,
    )
    control = BrokerControl(broker.bootstrap, broker.restart if broker.script_env else None)
    result = run_chaos(control, tmp_path, settings, say=print)
    print(result.table())
    print("\n".join(result.faults))
    assert result.produced == 20_000
    assert result.lost == 0, f"lost {result.lost}: {result.lost_ids}"
    assert result.dead_lettered >= 20_000 // 500, "the poison messages are dead-lettered"
    assert any("SIGKILL" in f for f in result.faults)
    assert any("SIGTERM" in f and "exit 0" in f for f in result.faults)
    assert not any("time limit" in f for f in result.faults), result.faults
