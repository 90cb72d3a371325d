"""The wiring's own rules that need no broker: how client errors are taken."""

from __future__ import annotations

import asyncio
import contextlib
import time

from confluent_kafka import KafkaError

from forwarder.app import App
from forwarder.config import Config, parse_config
from forwarder.dead_letter import DeadLetterWriter


def _config() -> Config:
    return parse_config(
        {
            # Port 1 on loopback: nothing listens, so a client's connection is refused at once.
            "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"], "group_id": "g"},
            "personalize": {"tracking_id": "trk"},
            "dead_letter": {"topic": "dlq"},
        },
        environ={},
    )


def test_a_fatal_dead_letter_producer_error_stops_the_replica_with_exit_1() -> None:
    app = App(_config())
    app._dead_letter_error(KafkaError(KafkaError._TRANSPORT, "a passing error"))
    assert app.exit_code == 0
    app._dead_letter_error(KafkaError(KafkaError._FATAL, "producer fenced", fatal=True))
    assert app.exit_code == 1
    assert app._stop_requested


def test_the_dead_letter_producer_reports_client_errors_through_poll() -> None:
    errors: list[KafkaError] = []
    writer = DeadLetterWriter(_config(), on_error=errors.append)
    deadline = time.monotonic() + 10
    while not errors and time.monotonic() < deadline:
        writer.poll()
        time.sleep(0.05)
    assert errors, "no error_cb call within 10 s for a refused connection"
    assert errors[0].code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE)


def test_a_failed_background_task_stops_the_replica_with_exit_1() -> None:
    # The ticker and every send, commit and lag task end here: a bug in any must not leave a replica
    # that looks alive while nothing dispatches, commits or dead-letters any more.
    app = App(_config())

    async def ticker() -> None:
        raise RuntimeError("a bug")

    async def run() -> None:
        task = asyncio.get_running_loop().create_task(ticker(), name="ticker")
        task.add_done_callback(app._send_done)
        with contextlib.suppress(RuntimeError):
            await task
        await asyncio.sleep(0)  # done callbacks run on the next turn of the loop

    asyncio.run(run())
    assert app.exit_code == 1
    assert app._stop_requested
