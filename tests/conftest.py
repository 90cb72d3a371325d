"""Fixtures shared by every tier. The tiers live in their own directories: unit/ (no emulator, no broker),
component/ (the emulator as a process, no Kafka), integration/ (a real broker; marked ``integration``
by its conftest), static/ (files checked offline). Their helpers are in tests/harness/.

Where the tests get a real Kafka broker, in this order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` if set (a broker someone else runs; left running);
2. ``FORWARDER_TEST_KAFKA_IMAGE`` if set: that image (apache/kafka, or the one ``scripts/containers-local``
   builds from Debian's JRE and the Maven jars) in a container through testcontainers, on the Docker API
   that ``DOCKER_HOST`` names (podman's: ``scripts/containers-local service start``), on the host's
   network at ``KAFKA_TEST_PORT``; tests/containers/test_broker_container.py runs the tests this way;
3. testcontainers' Kafka container, if a Docker engine answers;
4. otherwise ``scripts/kafka-local`` starts Apache Kafka on the JVM (port ``KAFKA_TEST_PORT``, default
   19092, a fresh data directory) and stops it by its pid when the session ends.

There is no mock Kafka in the integration tests. The ``schema_registry`` fixture does the same for a
Confluent-compatible schema registry (``KAFKA_SCHEMA_REGISTRY_URL``, else ``scripts/schema-registry-local``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import REPO, STARTED, LocalKafka, kafka_script, registry_script, stop_process
from tests.harness.containers import kafka_container


@dataclass(frozen=True)
class Broker:
    """A broker for the test session; ``script_env`` is set when ``scripts/kafka-local`` runs it."""

    bootstrap: str
    script_env: dict[str, str] | None = None

    def restart(self) -> None:
        """Stop and start the script-run broker on the same data directory (for fault tests)."""
        assert self.script_env is not None, "only a broker started by scripts/kafka-local can be restarted"
        kafka_script("stop", self.script_env)
        kafka_script("start", self.script_env)


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """A real Kafka broker for the whole test session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield Broker(external)
        return
    image = os.environ.get("FORWARDER_TEST_KAFKA_IMAGE")
    if image:
        # No registry to pull testcontainers' reaper from: the context manager removes the container.
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        with kafka_container(image, int(os.environ.get("KAFKA_TEST_PORT", "19092"))) as address:
            yield Broker(address)
        return
    if os.environ.get("FORWARDER_TEST_DOCKER", "auto") != "off" and _docker_answers():
        from testcontainers.kafka import KafkaContainer  # noqa: PLC0415 - only where Docker exists

        with KafkaContainer("apache/kafka:4.1.1") as container:
            yield Broker(container.get_bootstrap_server())
        return
    port = int(os.environ.get("KAFKA_TEST_PORT", "19092"))
    sasl_port = int(os.environ.get("KAFKA_TEST_SASL_PORT", str(port + 2)))
    data = REPO / ".local" / f"kafka-test-{port}"
    shutil.rmtree(data, ignore_errors=True)
    kafka = LocalKafka(port, data, sasl_port)
    bootstrap = kafka.start()
    try:
        yield Broker(bootstrap, kafka.env())
    finally:
        kafka.stop()


@pytest.fixture(scope="session")
def bootstrap(broker: Broker) -> str:
    """The bootstrap address of the session's broker."""
    return broker.bootstrap


@dataclass(frozen=True)
class SchemaRegistry:
    """A Confluent-compatible schema registry for the test session.

    ``url`` is what ``input.schema_registry.url`` takes; ``script_env`` is set when
    ``scripts/schema-registry-local`` runs it (then a test may start a second one with :meth:`env_on`).
    """

    url: str
    script_env: dict[str, str] | None = None

    def env_on(self, port: int) -> dict[str, str]:
        """The script's environment for another registry on ``port`` (its own data directory)."""
        assert self.script_env is not None, "only with a registry started by scripts/schema-registry-local"
        data = REPO / ".local" / f"schema-registry-test-{port}"
        return {**self.script_env, "SCHEMA_REGISTRY_PORT": str(port), "SCHEMA_REGISTRY_DATA_DIR": str(data)}


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[SchemaRegistry]:
    """A real schema registry for the whole session: ``KAFKA_SCHEMA_REGISTRY_URL`` if set (left running),
    else ``scripts/schema-registry-local`` on ``SCHEMA_REGISTRY_TEST_PORT`` (default 18081), stopped by
    its pid at the end.
    """
    external = os.environ.get("KAFKA_SCHEMA_REGISTRY_URL")
    if external:
        yield SchemaRegistry(external)
        return
    port = os.environ.get("SCHEMA_REGISTRY_TEST_PORT", "18081")
    data = REPO / ".local" / f"schema-registry-test-{port}"
    shutil.rmtree(data, ignore_errors=True)
    env = {**os.environ, "SCHEMA_REGISTRY_PORT": port, "SCHEMA_REGISTRY_DATA_DIR": str(data)}
    url = registry_script("start", env).splitlines()[-1]
    try:
        yield SchemaRegistry(url, env)
    finally:
        with contextlib.suppress(Exception):
            registry_script("stop", env)


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    """A per-test directory for configs, logs and record files."""
    return tmp_path


@pytest.fixture(autouse=True)
def _stop_leftover_processes() -> Iterator[None]:
    """Whatever a test started and did not stop (it failed half way), stop it by its pid. Processes
    started before the test (by fixtures of a wider scope, set up first) are their fixture's to stop."""
    before = len(STARTED)
    yield
    while len(STARTED) > before:
        proc = STARTED.pop()
        if proc.poll() is None:
            stop_process(proc, timeout=15)
