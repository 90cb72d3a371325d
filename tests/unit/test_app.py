"""The runtime's own rules that need no broker: how client errors and failed tasks are taken."""

from __future__ import annotations

import asyncio
import contextlib
import time

from confluent_kafka import KafkaError

from forwarder.config import Config, parse_config
from forwarder.dead_letter import DeadLetterWriter
from forwarder.runtime import App
from forwarder.runtime.supervisor import Supervisor


def _config() -> Config:
    return parse_config(
        {
            # Port 1 on loopback: nothing listens, so a client's connection is refused at once.
            "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"], "group_id": "g"},
            "personalize": {
                "tracking_id": "trk",
                "region": "us-east-1",
                "endpoint_url": "http://127.0.0.1:1",
            },
            "dead_letter": {"topic": "dlq"},
        },
        environ={},
    )


def test_a_fatal_kafka_client_error_stops_the_replica_with_exit_1() -> None:
    supervisor = Supervisor()
    supervisor.kafka_error(KafkaError(KafkaError._TRANSPORT, "a passing error"), "dead-letter producer")
    assert supervisor.exit_code == 0
    assert not supervisor.stopping
    supervisor.kafka_error(
        KafkaError(KafkaError._FATAL, "producer fenced", fatal=True), "dead-letter producer"
    )
    assert supervisor.exit_code == 1
    assert supervisor.stopping


def test_the_dead_letter_producer_reports_client_errors_through_poll() -> None:
    errors: list[KafkaError] = []
    cfg = _config()
    writer = DeadLetterWriter(cfg.dead_letter, cfg.kafka, on_error=errors.append)
    deadline = time.monotonic() + 10
    while not errors and time.monotonic() < deadline:
        writer.poll()
        time.sleep(0.05)
    assert errors, "no error_cb call within 10 s for a refused connection"
    assert errors[0].code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE)


def test_the_app_builds_every_part_up_front_and_is_not_ready_before_an_assignment() -> None:
    async def run() -> App:
        app = App(_config())
        await app.source.close()
        return app

    app = asyncio.run(run())
    assert app.exit_code == 0
    assert app.health.liveness() == (True, "starting")
    # Not ready: no partition yet. The consumer points at a closed port, so librdkafka may already have
    # reported every broker down (it races the close), which is not ready either.
    ready, why = app.health.readiness()
    assert not ready
    assert why in {
        "no partition assigned (more replicas than partitions, or joining the group)",
        "no Kafka broker reachable",
    }


def test_a_failed_background_task_stops_the_replica_with_exit_1() -> None:
    # The ticker and every send, commit and lag task end here: a bug in any must not leave a replica
    # that looks alive while nothing dispatches, commits or dead-letters any more.
    supervisor = Supervisor()

    async def bug() -> None:
        raise RuntimeError("a bug")

    async def run() -> None:
        task = supervisor.spawn(bug(), name="ticker")
        with contextlib.suppress(RuntimeError):
            await task
        await asyncio.sleep(0)  # done callbacks run on the next turn of the loop

    asyncio.run(run())
    assert supervisor.exit_code == 1
    assert supervisor.stopping
    assert not supervisor.tasks
