"""Issue #10 hardening through the real daemon, the real broker and the emulator: what leaves the process,
how it fails to start, and what it does with its own dead-letter topic."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    ForwarderConfig,
    create_topic,
    free_port,
    produce,
    running,
    start_emulator,
    start_forwarder,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration

# What botocore's chain hands the signer from the environment: a session token like STS's.
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEOr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6" + "Zm9yd2FyZGVyLXRlc3Q" * 12
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _event(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "eventId": f"ev-{i}",
        "sessionId": f"s-{i % 3}",
        "eventType": "click",
        "sentAt": 1714566896 + i,
        **extra,
    }


def _readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_signature_error_quoting_the_session_token_is_redacted_from_logs_and_readyz(
    bootstrap: str, tmp_path: Path
) -> None:
    topic = create_topic(bootstrap, unique("redact"))
    dlq = create_topic(bootstrap, unique("redact-dlq"))
    produce(bootstrap, topic, [(b"k", json.dumps(_event(i)).encode()) for i in range(5)])
    emulator = start_emulator(tmp_path)
    emulator.set_faults(signature_mismatch=True)
    port = free_port()
    cfg = ForwarderConfig(
        bootstrap,
        [topic],
        unique("g"),
        dlq,
        emulator.url,
        extra={"observability": {"port": port, "host": "127.0.0.1"}, "retry": {"outage_retry_interval_s": 1}},
    )
    env = {"AWS_SESSION_TOKEN": SESSION_TOKEN, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    replica = start_forwarder(tmp_path, cfg, env=env)
    with running([replica, emulator]):
        wait_for(lambda: "refuses every call" in replica.log_text(), 60, what="the outage line")
        wait_for(lambda: _readyz(port)[0] == 503, 30, what="readyz to fail")
        _status, body = _readyz(port)
        assert "InvalidSignatureException" in body
        assert "x-amz-security-token:<redacted>" in body, body
        assert SESSION_TOKEN[:40] not in body
        assert SECRET_KEY not in body
        # Let it probe a few times: each probe logs the service's text again.
        wait_for(lambda: emulator.stats()["unauthenticated"] >= 3, 30, what="probes")
        assert replica.stop() == 0
    text = replica.log_text()
    assert "x-amz-security-token:<redacted>" in text, "the service's text is logged, redacted"
    assert SESSION_TOKEN[:40] not in text
    assert SECRET_KEY not in text
    assert "Signature=<redacted>" in text


def test_a_metrics_port_in_use_is_one_line_naming_the_port_and_the_key_and_exit_2(
    bootstrap: str, tmp_path: Path
) -> None:
    topic = create_topic(bootstrap, unique("port"))
    dlq = create_topic(bootstrap, unique("port-dlq"))
    emulator = start_emulator(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        cfg = ForwarderConfig(
            bootstrap,
            [topic],
            unique("g"),
            dlq,
            emulator.url,
            extra={"observability": {"port": port, "host": "127.0.0.1"}},
        )
        replica = start_forwarder(tmp_path, cfg)
        with running([replica, emulator]):
            code = replica.proc.wait(60)
    text = replica.log_text()
    assert code == 2, text
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if str(port) in line]
    assert len(lines) == 1, text
    assert "observability.port" in lines[0]
    assert "FORWARDER__OBSERVABILITY__PORT" in lines[0]
