"""The container tier (``make test-containers``; not collected by ``make test``): the images that
``scripts/containers-local`` builds, the compose stack under podman-compose, Kafka through testcontainers on
podman's Docker API, and the alert rules under promtool. ``make test-containers`` builds the images first
(once; a warm cache reuses them); these tests fail, with the command to run, where they are missing.

Every container, network and volume a test makes is removed when it ends (by name or project label), and
host ports come from ``KAFKA_TEST_PORT`` (its + 3 to + 9), so engineers on one machine do not collide.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.harness.containers import containers_script, image_env, podman


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """The image names (FORWARDER_IMAGE, KAFKA_IMAGE, PROMETHEUS_IMAGE, PYTHON_IMAGE), each built."""
    assert shutil.which("podman"), (
        "podman is missing: run scripts/containers-local setup (or make test-containers)"
    )
    names = image_env()
    for name in names.values():
        assert podman("image", "exists", name, check=False).returncode == 0, (
            f"{name} is not built: run scripts/containers-local all (or make test-containers)"
        )
    return names


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    """podman's Docker API (``podman system service``) on a socket of this checkout's, for testcontainers;
    stopped at the end of the session."""
    url = containers_script("service", "start", timeout=60).splitlines()[-1]
    try:
        yield url
    finally:
        containers_script("service", "stop", timeout=60)
