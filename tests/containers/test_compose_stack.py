"""docker-compose.yml, run for real: podman-compose brings up Kafka, the topics and 5,000 sample events, the
PutEvents emulator, three forwarder replicas and Prometheus (Grafana stays off: no registry has it), from
the images scripts/containers-local builds. The tests run in file order on one stack:

- every sample event arrives at the emulator (or is on the dead-letter topic): nothing lost;
- each replica runs as the image's non-root user on a read-only root and passes its health check;
- Prometheus scrapes all three replicas, and every PromQL expression of the Grafana dashboard returns data;
- a replica stopped with SIGTERM exits cleanly and its partitions move to the others with nothing lost;
- ``down`` leaves no container, volume or network of the project, and frees the host ports.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import urllib.request
from collections.abc import Iterator

import orjson
import pytest
from confluent_kafka import KafkaException

from tests.harness import REPO, fully_committed, produce, read_topic, wait_for
from tests.harness.containers import ComposeStack, base_port, get_json, podman

pytestmark = pytest.mark.timeout(1200)

SAMPLE_EVENTS = 5000  # docker-compose.yml's `topics` service
GROUP = "forwarder-compose"  # deploy/compose/forwarder.yaml
TOPIC = "interactions"
DEAD_LETTER = "interactions.dead-letter"
DASHBOARD = REPO / "deploy" / "grafana" / "forwarder-dashboard.json"


@pytest.fixture(scope="module")
def stack(images: dict[str, str]) -> Iterator[ComposeStack]:
    """The stack as project ``fwdtest<port>``, host ports from KAFKA_TEST_PORT + 3; always taken down."""
    port = base_port() + 3
    stack = ComposeStack(project=f"fwdtest{port}", port=port)
    with contextlib.suppress(RuntimeError):
        stack.down()  # what a killed earlier run left
    try:
        stack.up()
        yield stack
    finally:
        with contextlib.suppress(RuntimeError):
            stack.down()


def _event_ids(stack: ComposeStack) -> list[str]:
    return [
        event["eventId"]
        for call in stack.emulator_records()
        if call.get("operation") == "PutEvents"
        for event in call["eventList"]
    ]


def _delivered(stack: ComposeStack, expected: set[str]) -> bool:
    return expected <= set(_event_ids(stack))


def _all_committed(stack: ComposeStack) -> bool:
    """Whether the group committed every partition to its end; False while the broker's group coordinator
    is still loading or moving (NOT_COORDINATOR and the like are "not yet" here)."""
    try:
        return fully_committed(stack.kafka, GROUP, TOPIC)
    except KafkaException:
        return False


def test_the_sample_events_arrive_at_the_emulator(stack: ComposeStack) -> None:
    wait_for(lambda: _all_committed(stack), 300, interval=2.0, what="the group to commit every sample event")
    accepted = set(_event_ids(stack))
    dead = read_topic(stack.kafka, DEAD_LETTER, timeout=15)
    assert len(accepted) + len(dead) == SAMPLE_EVENTS, (len(accepted), len(dead))
    assert len(accepted) > SAMPLE_EVENTS * 0.9, "the sample events are valid: nearly all are accepted"


def test_replicas_run_as_non_root_on_a_read_only_root_and_are_healthy(stack: ComposeStack) -> None:
    replicas = stack.containers("forwarder")
    assert len(replicas) == 3, replicas
    for name in replicas:
        info = stack.inspect(name)
        assert info["Config"]["User"] == "10001:10001"
        assert info["HostConfig"]["ReadonlyRootfs"] is True
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        # The image's own HEALTHCHECK (GET /healthz), run now rather than on podman's timer.
        check = podman("healthcheck", "run", name, check=False)
        assert check.returncode == 0, f"{name}: {check.stdout}{check.stderr}"


def _forwarder_targets(stack: ComposeStack) -> list[dict[str, object]]:
    targets = get_json(f"{stack.prometheus}/api/v1/targets")["data"]["activeTargets"]
    return [t for t in targets if t["labels"]["job"] == "forwarder"]


def test_prometheus_scrapes_all_three_replicas(stack: ComposeStack) -> None:
    def three_up() -> bool:
        targets = _forwarder_targets(stack)
        return len(targets) == 3 and all(t["health"] == "up" for t in targets)

    wait_for(three_up, 120, interval=2.0, what="three forwarder targets up in Prometheus")
    assert len(stack.query('up{job="forwarder"} == 1')) == 3
    assert {r["metric"]["version"] for r in stack.query("forwarder_build_info")} != set()


def _dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard (panels and variables), with Grafana's variables given
    the values Grafana gives them: every replica and topic, a rate interval of four scrapes."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs: list[str] = []

    def walk(panels: list[dict[str, object]]) -> None:
        for panel in panels:
            exprs.extend(str(t["expr"]) for t in panel.get("targets", []) if "expr" in t)  # type: ignore[attr-defined]
            walk(panel.get("panels", []))  # type: ignore[arg-type]

    walk(board["panels"])
    for variable in board["templating"]["list"]:
        found = re.fullmatch(r"label_values\((\w+), (\w+)\)", str(variable.get("definition", "")))
        if found:
            exprs.append(f"group by ({found[2]}) ({found[1]})")
    values = {"$instance": ".*", "$topic": ".*", "$__rate_interval": "1m"}
    out = []
    for expr in exprs:
        query = expr
        for name, value in values.items():
            query = query.replace(name, value)
        assert "$" not in query, query
        out.append(query)
    return out


def test_every_dashboard_query_returns_data(stack: ComposeStack) -> None:
    # Labelled counters exist once counted: one message that is not JSON puts a dead-letter stage on them.
    produce(stack.kafka, TOPIC, [(b"dashboard", b"not json")])
    every = _dashboard_queries()
    # The stack runs the events route only; the record routes' panels (forwarder_route_*, a series per
    # configured route) have no series here. They must still run (a bad expression raises), not return data.
    routes = [q for q in every if "forwarder_route_" in q]
    for query in routes:
        stack.query(query)
    queries = [q for q in every if q not in routes]
    assert len(queries) >= 25

    def empty() -> list[str]:
        return [q for q in queries if not stack.query(q)]

    with contextlib.suppress(AssertionError):
        wait_for(lambda: not empty(), 120, interval=5.0, what="every dashboard query to return data")
    assert empty() == []


def _handover_events(count: int) -> list[tuple[bytes, bytes]]:
    records = []
    for i in range(count):
        session = f"handover-{i % 60:03d}"
        event = {"eventId": f"handover-{i:05d}", "sessionId": session, "userId": f"u-{session}",
                 "eventType": "click", "itemId": f"item-{i % 97}", "sentAt": 1_790_000_000 + i}  # fmt: skip
        records.append((session.encode(), orjson.dumps(event)))
    return records


def test_stopping_a_replica_hands_its_partitions_over(stack: ComposeStack) -> None:
    count = 3000
    expected = {f"handover-{i:05d}" for i in range(count)}
    # Slow calls, so the replica stopped below has events in flight and buffered when SIGTERM comes.
    faults = urllib.request.Request(
        f"{stack.emulator}/_emulator/faults", b'{"latency_ms": 300}', method="POST"
    )
    urllib.request.urlopen(faults, timeout=10).close()  # loopback
    produce(stack.kafka, TOPIC, _handover_events(count))
    victim = stack.containers("forwarder")[0]
    # SIGTERM (the image's STOPSIGNAL), then up to 40 s (stop_grace_period) before SIGKILL.
    podman("stop", "-t", "40", victim, timeout=90)
    assert stack.inspect(victim)["State"]["ExitCode"] == 0, "the replica did not stop cleanly on SIGTERM"
    assert len(stack.containers("forwarder", every=False)) == 2

    wait_for(lambda: _delivered(stack, expected), 240, interval=3.0, what="every hand-over event delivered")
    wait_for(
        lambda: fully_committed(stack.kafka, GROUP, TOPIC), 120, interval=2.0, what="the group's commits"
    )

    def two_replicas_own_all() -> bool:
        owned = stack.query("sum(forwarder_assigned_partitions)")
        return bool(owned) and float(owned[0]["value"][1]) == 6 and len(stack.query("forwarder_outage")) == 2

    wait_for(two_replicas_own_all, 120, interval=3.0, what="the two replicas left to own all 6 partitions")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_down_leaves_nothing_running(stack: ComposeStack) -> None:
    stack.down()
    label = f"label=io.podman.compose.project={stack.project}"
    assert stack.containers() == []
    assert podman("volume", "ls", "-q", "--filter", label).stdout.split() == []
    assert [
        n for n in podman("network", "ls", "--format", "{{.Name}}").stdout.split() if stack.project in n
    ] == []
    assert [p for p in (stack.port, stack.port + 1, stack.port + 2) if _port_open(p)] == []
