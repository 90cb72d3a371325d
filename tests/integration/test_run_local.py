"""README's run command works: scripts/run-local --once takes sample events all the way to the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, free_port

pytestmark = pytest.mark.integration


def test_run_local_shows_sample_events_arriving(bootstrap: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "EMULATOR_PORT": str(free_port()),
        "METRICS_PORT": str(free_port()),
        "PYTHON_VENV": sys.prefix,
    }
    result = subprocess.run(
        [str(REPO / "scripts" / "run-local"), "--once", "--events", "300", "--sessions", "20"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "First PutEvents call at the emulator" in result.stdout
    assert "Summary: 300 events in" in result.stdout
    assert "with an explicit impression list" in result.stdout
    assert "stopped everything it started" in result.stderr
