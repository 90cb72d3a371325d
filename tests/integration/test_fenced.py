"""A fenced static member does not linger (issue #17): when a second replica joins with the same
``group.instance.id`` (a misconfiguration, or a pod that came back while its old self still runs), the
broker fences the first one. librdkafka reports that as a fatal error; the fenced replica fails
``/healthz`` with the reason and exits 1 within its stop bound, so its supervisor restarts it instead of
leaving a member that consumes nothing. The classic protocol (KIP-848 rejoins by itself)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from forwarder.runtime.exit_deadline import exit_deadline_s
from tests.harness import probe, running, start_forwarder, wait_for
from tests.harness.pipeline import pipeline

pytestmark = pytest.mark.integration

SHUTDOWN_TIMEOUT_S = 5.0


def test_a_fenced_static_member_fails_liveness_and_exits_1(bootstrap: str, tmp_path: Path) -> None:
    p = pipeline(
        bootstrap,
        tmp_path,
        "fenced",
        partitions=2,
        metrics=True,
        extra={"observability": {"host": "127.0.0.1"}, "shutdown": {"timeout_s": SHUTDOWN_TIMEOUT_S}},
    )
    emulator, port = p.emulator, p.port
    assert port is not None
    first = dataclasses.replace(p.cfg, client={"group.instance.id": "replica-0"})
    second = dataclasses.replace(first, extra={"shutdown": {"timeout_s": SHUTDOWN_TIMEOUT_S}})
    a = start_forwarder(tmp_path, first, name="a")
    with running([a, emulator]):
        wait_for(lambda: "assigned" in a.log_text(), 60, what="the first replica assigned")
        assert probe(port, "/healthz") == 200
        b = start_forwarder(tmp_path, second, name="b")
        with running([b]):
            wait_for(lambda: "fatal Kafka error" in a.log_text(), 60, what="the first replica fenced")
            fenced_at = time.monotonic()
            status = _healthz_or_gone(port)
            code = a.proc.wait(exit_deadline_s(SHUTDOWN_TIMEOUT_S) + 10)
            took = time.monotonic() - fenced_at
            wait_for(lambda: "assigned" in b.log_text(), 60, what="the second replica assigned")
    assert code == 1, a.log_text()[-3000:]
    assert status in (503, None), f"/healthz answered {status} after the fence"
    assert took <= exit_deadline_s(SHUTDOWN_TIMEOUT_S), a.log_text()[-3000:]


def _healthz_or_gone(port: int) -> int | None:
    """/healthz's status, or None when the replica already closed its port (it exits promptly)."""
    try:
        return probe(port, "/healthz")
    except OSError:
        return None
