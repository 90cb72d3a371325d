"""Fixtures of the component tier: the emulator as a real subprocess, no Kafka.

Every emulator started here is stopped by its pid when its fixture ends (SIGTERM, bounded wait, SIGKILL);
every wait is bounded in time. The helpers themselves live in :mod:`tests.harness.emulator`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import EmulatorProcess, start_emulator


@pytest.fixture
def emulators(tmp_path: Path) -> Iterator[Callable[..., EmulatorProcess]]:
    """A factory starting emulators with the given options; all are stopped when the test ends."""
    started: list[EmulatorProcess] = []

    def start(*args: str) -> EmulatorProcess:
        directory = tmp_path / f"emulator-{len(started)}"
        directory.mkdir()
        emulator = start_emulator(directory, *args)
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture(scope="module")
def shared_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One emulator without faults nor allow-list, for tests that only look at answers."""
    emulator = start_emulator(tmp_path_factory.mktemp("shared-emulator"))
    yield emulator
    emulator.stop()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """An emulator knowing the tracking id ``trk`` (the transports' tests); a module may define its own."""
    process = start_emulator(tmp_path, "--tracking-id", "trk")
    try:
        yield process
    finally:
        process.stop()
