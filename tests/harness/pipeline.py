"""A test's whole path, set up once: an input topic and a dead-letter topic on the test broker, an emulator,
a forwarder configuration over them; then the replica as a process and the waits a test does on it.

Integration tests use :func:`pipeline` instead of each writing its own create-topics, start-emulator,
configure, start-forwarder and wait-for-commit lines; what a test varies (partitions, the emulator's
arguments, configuration sections, the metrics port) are arguments. :func:`run_local` runs
``scripts/run-local`` the way the tests of the local stack do.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.config import ForwarderConfig
from tests.harness.emulator import EmulatorProcess, start_emulator
from tests.harness.forwarder import ForwarderProcess, start_forwarder
from tests.harness.kafka import Record, create_topic, fully_committed, produce, read_topic
from tests.harness.processes import AWS_TEST_ENV, REPO, free_port, running, unique, wait_for


def create_topics(
    bootstrap: str, name: str, partitions: int = 1, *, dead_letter: bool = True
) -> tuple[str, str]:
    """A fresh input topic of ``partitions`` and its dead-letter topic (one partition), named after ``name``;
    with ``dead_letter`` false, the dead-letter topic is only named (a test of what happens without it)."""
    topic, dlq = create_topic(bootstrap, unique(name), partitions), unique(f"{name}-dlq")
    return topic, create_topic(bootstrap, dlq) if dead_letter else dlq


def wait_committed(bootstrap: str, group: str, topic: str, timeout: float = 60) -> None:
    """Wait until ``group`` has committed every partition of ``topic`` to its end."""
    wait_for(lambda: fully_committed(bootstrap, group, topic), timeout, what=f"{topic} committed to its end")


def json_records(events: Iterable[dict[str, Any]], key: str | bytes = "sessionId") -> list[Record]:
    """Events as Kafka records: JSON values keyed by their ``key`` field (the session by default), or by
    ``key`` itself when it is bytes."""
    if isinstance(key, bytes):
        return [(key, json.dumps(ev).encode()) for ev in events]
    return [(str(ev[key]).encode(), json.dumps(ev).encode()) for ev in events]


@dataclass
class Pipeline:
    """The topics, the emulator and the configuration of one test; the replica starts with :meth:`run`."""

    bootstrap: str
    tmp_path: Path
    topic: str
    dlq: str
    emulator: EmulatorProcess
    cfg: ForwarderConfig
    port: int | None  # the replica's metrics and probes port, when asked for

    @property
    def group(self) -> str:
        """The replica's consumer group."""
        return self.cfg.group

    def produce(
        self, records: Iterable[Record], headers: list[tuple[str, str | bytes | None]] | None = None
    ) -> None:
        """Produce ``records`` to the input topic (``headers`` on each one that has none)."""
        produce(self.bootstrap, self.topic, records, headers)

    def produce_events(self, events: Iterable[dict[str, Any]], key: str | bytes = "sessionId") -> None:
        """Produce JSON ``events`` to the input topic, keyed as :func:`json_records` says."""
        self.produce(json_records(events, key))

    def start(self, name: str = "replica", env: dict[str, str] | None = None) -> ForwarderProcess:
        """Start one replica on the configuration (the caller stops it, e.g. in :func:`running`)."""
        return start_forwarder(self.tmp_path, self.cfg, name, env)

    @contextlib.contextmanager
    def run(self, env: dict[str, str] | None = None) -> Iterator[ForwarderProcess]:
        """A replica running for the block; it and the emulator are stopped (by pid) when the block ends."""
        replica = self.start(env=env)
        with running([replica, self.emulator]):
            yield replica

    def wait_committed(self, timeout: float = 60) -> None:
        """Wait until the replica's group has committed the input topic to its end."""
        wait_committed(self.bootstrap, self.group, self.topic, timeout)

    def dead_letters(self, expect: int | None = None, timeout: float = 30) -> list[Any]:
        """The dead-letter topic's messages (``expect`` of them, waiting up to ``timeout``)."""
        return read_topic(self.bootstrap, self.dlq, expect=expect, timeout=timeout)

    def replay(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """``forwarder replay --from-dead-letter ARGS`` on this pipeline's configuration."""
        config = self.cfg.config_path(self.tmp_path)
        return forwarder_command(
            "replay", "--config", str(config), "--from-dead-letter", *args, timeout=timeout
        )


def pipeline(
    bootstrap: str,
    tmp_path: Path,
    name: str,
    *,
    partitions: int = 1,
    emulator_args: tuple[str, ...] = (),
    metrics: bool = False,
    extra: dict[str, Any] | None = None,
    dead_letter: bool = True,
) -> Pipeline:
    """Fresh topics named after ``name`` (:func:`create_topics`), an emulator started with
    ``emulator_args``, and a configuration over them in a fresh group; ``metrics`` gives the replica a
    free metrics and probes port; ``extra`` is merged into the configuration (:class:`ForwarderConfig`)."""
    topic, dlq = create_topics(bootstrap, name, partitions, dead_letter=dead_letter)
    emulator = start_emulator(tmp_path, *emulator_args)
    port = free_port() if metrics else None
    sections = dict(extra or {})
    if port is not None:
        sections["observability"] = {"port": port, **sections.get("observability", {})}
    cfg = ForwarderConfig(bootstrap, [topic], unique("g"), dlq, emulator.url, extra=sections)
    return Pipeline(bootstrap, tmp_path, topic, dlq, emulator, cfg, port)


def forwarder_command(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m forwarder ARGS`` from the repository with test credentials, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "forwarder", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **AWS_TEST_ENV},
        check=False,
    )


def run_local(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``scripts/run-local ARGS`` with free emulator and metrics ports, this interpreter's environment,
    and ``env`` on top; it must succeed (its output's tail is the failure message)."""
    full = {
        **os.environ,
        "EMULATOR_PORT": str(free_port()),
        "METRICS_PORT": str(free_port()),
        "PYTHON_VENV": sys.prefix,
        **env,
    }
    result = subprocess.run(
        [str(REPO / "scripts" / "run-local"), *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result
