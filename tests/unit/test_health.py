"""Liveness tells the truth (issue #17): /healthz fails when the event loop stalls, when the consumer is
not polled (beyond a revoke's drain), and when the replica stops after a failure (a fatal Kafka error
such as a fenced static member). Logic with an injected clock; then the probe server on its own thread
answering for a loop that is really blocked."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from types import SimpleNamespace
from typing import cast

import pytest
from confluent_kafka import KafkaError

from forwarder.runtime import health as health_module
from forwarder.runtime.health import STALL_AFTER_S, Health, poll_stall_after
from forwarder.runtime.supervisor import Supervisor
from forwarder.runtime.testing import Harness, wait_for
from forwarder.send import Sender
from tests.unit.runtime_support import runtime_config


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _health(clock: Clock, supervisor: Supervisor | None = None, revoke_timeout_s: float = 30.0) -> Health:
    sender = cast(Sender, SimpleNamespace(in_outage=False, outage_reason=""))
    return Health(
        supervisor or Supervisor(),
        sender,
        {("t", 0)},
        clock,
        poll_stall_s=poll_stall_after(revoke_timeout_s),
    )


def test_a_replica_still_starting_is_live() -> None:
    assert _health(Clock()).liveness() == (True, "starting")


def test_a_loop_that_stops_ticking_fails_liveness() -> None:
    clock = Clock()
    health = _health(clock)
    health.start()
    clock.now += STALL_AFTER_S - 1
    health.polled()
    assert health.liveness()[0]
    clock.now += 2  # no tick for STALL_AFTER_S + 1
    ok, why = health.liveness()
    assert not ok
    assert why == f"event loop stalled for {STALL_AFTER_S + 1:.0f}s"
    health.ticked()
    assert health.liveness() == (True, "loop turning")


def test_a_consumer_not_polled_fails_liveness_but_a_revokes_drain_does_not() -> None:
    clock = Clock()
    health = _health(clock, revoke_timeout_s=30.0)
    health.start()
    # A revoke holds the poll while the revoked partitions drain (up to shutdown.timeout_s): still live.
    for _ in range(int(30 + STALL_AFTER_S) - 1):
        clock.now += 1
        health.ticked()
    assert health.liveness()[0]
    clock.now += 2
    health.ticked()
    ok, why = health.liveness()
    assert not ok
    assert why.startswith("consumer not polled for ")
    health.polled()
    assert health.liveness()[0]


def test_a_fenced_or_fatal_consumer_fails_liveness() -> None:
    clock = Clock()
    supervisor = Supervisor()
    health = _health(clock, supervisor)
    health.start()
    supervisor.kafka_error(KafkaError(KafkaError._TRANSPORT, "a passing error"), "consumer")
    assert health.liveness()[0], "a passing error is not a failure"
    fenced = KafkaError(KafkaError._FATAL, "Fatal consumer error: Broker: Static consumer fenced", fatal=True)
    supervisor.kafka_error(fenced, "consumer")
    ok, why = health.liveness()
    assert not ok
    assert why == "stopping after a failure: fatal Kafka error in the consumer"
    health.ticked()
    health.polled()
    assert not health.liveness()[0], "a failure is not cured by the loop turning"


def test_a_fatal_error_as_the_error_callback_reports_it_stops_the_replica() -> None:
    """librdkafka's error_cb hands over code _FATAL with the fatal flag unset (seen with a fenced static
    member: tests/integration/test_fenced.py); the code alone must stop the replica."""
    clock = Clock()
    supervisor = Supervisor()
    health = _health(clock, supervisor)
    health.start()
    supervisor.kafka_error(
        KafkaError(KafkaError._FATAL, "Fatal error: Broker: Static consumer fenced by other consumer"),
        "consumer",
    )
    assert supervisor.exit_code == 1
    assert supervisor.stopping
    assert health.liveness() == (False, "stopping after a failure: fatal Kafka error in the consumer")


def test_a_graceful_stop_is_still_live() -> None:
    clock = Clock()
    supervisor = Supervisor()
    health = _health(clock, supervisor)
    health.start()
    supervisor.request_stop("SIGTERM")
    assert health.liveness()[0]
    assert health.readiness() == (False, "stopping")
    clock.now += poll_stall_after(30.0) + 1  # a stop polls no more: the exit deadline bounds it
    health.ticked()
    assert health.liveness()[0]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_probe_server_reports_a_really_blocked_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop is blocked by a synchronous sleep (what a blocking call in a coroutine does): the probe
    server, on its own thread, answers 503 naming the stall, and /metrics still answers; when the loop
    turns again, /healthz is 200."""
    monkeypatch.setattr(health_module, "STALL_AFTER_S", 0.3)
    cfg = runtime_config(observability={"port": 0, "host": "127.0.0.1"})

    async def scenario() -> list[tuple[int, str]]:
        async with Harness(cfg) as h:
            await wait_for(lambda: h.app.health.started and h.app.health.last_tick > 0, what="ticking")
            assert h.app.server is not None
            base = f"http://127.0.0.1:{h.app.server.port}"
            await wait_for(lambda: h.app.health.last_poll > 0, what="polling")
            seen = [await asyncio.to_thread(_get, f"{base}/healthz")]
            done = asyncio.get_running_loop().run_in_executor(None, _blocked_probes, base)
            await asyncio.sleep(0.05)  # the thread is waiting for its moment
            time.sleep(1.2)  # block the event loop: no tick, no poll
            seen += await done
            await asyncio.sleep(0.2)
            seen.append(await asyncio.to_thread(_get, f"{base}/healthz"))
            return seen

    before, during, metrics, after = asyncio.run(scenario())
    assert before[0] == 200, before
    assert during[0] == 503, during
    assert during[1].startswith("not ok: event loop stalled for"), during
    assert metrics[0] == 200
    assert "forwarder_messages_consumed_total" in metrics[1]
    assert after[0] == 200, after


def _blocked_probes(base: str) -> list[tuple[int, str]]:
    time.sleep(0.8)  # well inside the loop's 1.2 s block, past the 0.3 s stall bound
    return [_get(f"{base}/healthz"), _get(f"{base}/metrics")]
