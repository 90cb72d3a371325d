"""The broker fixture (tests/conftest.py) on testcontainers for real: with ``FORWARDER_TEST_KAFKA_IMAGE`` (the
Kafka image scripts/containers-local builds) and ``DOCKER_HOST`` (podman's Docker API), a pytest session of
integration tests runs against Kafka in a container that testcontainers starts, and removes it at the end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.harness import REPO
from tests.harness.containers import base_port, podman

pytestmark = pytest.mark.timeout(900)


def test_integration_tests_pass_on_kafka_in_a_container(images: dict[str, str], docker_host: str) -> None:
    port = base_port() + 6  # and + 7, the controller
    script_data = REPO / ".local" / f"kafka-test-{port}"
    shutil.rmtree(script_data, ignore_errors=True)
    env = {
        **os.environ,
        "FORWARDER_TEST_KAFKA_IMAGE": images["KAFKA_IMAGE"],
        "DOCKER_HOST": docker_host,
        "TESTCONTAINERS_RYUK_DISABLED": "true",
        "KAFKA_TEST_PORT": str(port),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/integration/test_broker.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=800,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
    assert not script_data.exists(), "the session ran scripts/kafka-local, not the container"
    left = podman("ps", "-a", "--filter", f"ancestor={images['KAFKA_IMAGE']}", "--format", "{{.Names}}")
    assert left.stdout.split() == [], "testcontainers left the broker's container behind"
