"""Containers for the tests: podman, the images ``scripts/containers-local`` builds, the compose stack, and
Kafka in a container through testcontainers. Every command here is bounded in time; every container a test
starts is removed by its name or its project's label when the test ends.

Host ports: the container tier uses ``KAFKA_TEST_PORT + 3`` to ``+ 9`` (the broker fixture uses the port and
the next two), so engineers sharing a machine pick disjoint ranges by that one variable.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.harness.processes import REPO, run_script, wait_for

SCRIPT = REPO / "scripts" / "containers-local"


def base_port() -> int:
    """``KAFKA_TEST_PORT`` (default 19092): the tier's ports are this plus 3 to 9."""
    return int(os.environ.get("KAFKA_TEST_PORT", "19092"))


def containers_script(*args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    """Run ``scripts/containers-local ARGS``; its stdout, or an error with its stderr's tail."""
    return run_script(SCRIPT.name, list(args), {**os.environ, **(env or {})}, timeout)


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``podman ARGS``, bounded; raises with its stderr when it fails and ``check``."""
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def image_env() -> dict[str, str]:
    """The image names the compose file and the tests read (``scripts/containers-local env``)."""
    lines = containers_script("env", timeout=30).splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def get_json(url: str, timeout: float = 10) -> Any:
    """GET ``url`` (loopback only) and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback URLs only
        return json.loads(response.read())


@dataclass
class ComposeStack:
    """docker-compose.yml run by podman-compose as project ``project``, its host ports taken from
    ``port`` (Kafka ``port``, the emulator ``port + 1``, Prometheus ``port + 2``)."""

    project: str
    port: int

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def emulator(self) -> str:
        return f"http://127.0.0.1:{self.port + 1}"

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.port + 2}"

    def env(self) -> dict[str, str]:
        return {
            "COMPOSE_PROJECT_NAME": self.project,
            "KAFKA_HOST_PORT": str(self.port),
            "EMULATOR_HOST_PORT": str(self.port + 1),
            "PROMETHEUS_HOST_PORT": str(self.port + 2),
        }

    def up(self) -> None:
        containers_script("up", env=self.env(), timeout=900)

    def down(self) -> None:
        containers_script("down", env=self.env(), timeout=300)

    def containers(self, service: str | None = None, *, every: bool = True) -> list[str]:
        """The names of the project's containers (of one service), running ones only unless ``every``."""
        args = ["ps", "--format", "{{.Names}}", "--filter", f"label=io.podman.compose.project={self.project}"]
        if every:
            args.insert(1, "-a")
        if service is not None:
            args += ["--filter", f"label=com.docker.compose.service={service}"]
        return sorted(podman(*args).stdout.split())

    def inspect(self, name: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(podman("inspect", name).stdout)
        return data[0]

    def emulator_records(self) -> list[dict[str, Any]]:
        """Every call the emulator recorded (its ``--record`` file, read inside its container)."""
        (name,) = self.containers("emulator")
        text = podman("exec", name, "cat", "/data/calls.jsonl", timeout=60).stdout
        return [json.loads(line) for line in text.split("\n") if line.strip()]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant PromQL query against the stack's Prometheus; the result vector."""
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        body = get_json(url)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def kafka_container_env(port: int) -> dict[str, str]:
    """A single-node KRaft broker on the host's 127.0.0.1:``port`` (controller ``port + 1``), configured the
    way apache/kafka's image and the local one read it (``KAFKA_*``), with the group timeouts
    scripts/kafka-local sets (issue #17)."""
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{port + 1}",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "8",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_GROUP_CONSUMER_SESSION_TIMEOUT_MS": "6000",
        "KAFKA_GROUP_CONSUMER_MIN_SESSION_TIMEOUT_MS": "6000",
        "KAFKA_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS": "2000",
        "KAFKA_GROUP_CONSUMER_MIN_HEARTBEAT_INTERVAL_MS": "2000",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
    }


def _answers_metadata(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - only where a broker is awaited

    try:
        return bool(
            AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=2).brokers
        )
    except Exception:  # not up yet: any client error means "not yet"
        return False


@contextlib.contextmanager
def kafka_container(image: str, port: int, timeout: float = 180) -> Iterator[str]:
    """Kafka from ``image`` in a container started by testcontainers on the Docker API (``DOCKER_HOST``:
    podman's works), on the host's network (the broker's advertised 127.0.0.1:``port`` is then right as it
    is); its bootstrap address once it answers a metadata request. The container is removed on the way
    out, whatever happens (testcontainers' reaper is off with podman: nothing else would remove it)."""
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415 - only with a Docker API

    container = DockerContainer(image).with_kwargs(network_mode="host")
    for key, value in kafka_container_env(port).items():
        container = container.with_env(key, value)
    bootstrap = f"127.0.0.1:{port}"
    with container:
        wait_for(lambda: _answers_metadata(bootstrap), timeout, interval=1.0, what=f"Kafka in {image}")
        yield bootstrap
