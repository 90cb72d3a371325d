"""README's run command works: scripts/run-local --once takes sample events all the way to the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.pipeline import run_local

pytestmark = pytest.mark.integration


def test_run_local_shows_sample_events_arriving(bootstrap: str, tmp_path: Path) -> None:
    result = run_local(
        {"KAFKA_BOOTSTRAP_SERVERS": bootstrap}, "--once", "--events", "300", "--sessions", "20"
    )
    assert "First PutEvents call at the emulator" in result.stdout
    assert "Summary: 300 events in" in result.stdout
    assert "with an explicit impression list" in result.stdout
    assert "stopped everything it started" in result.stderr
