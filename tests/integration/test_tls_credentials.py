"""Issue #10 items 2, 3 and 4 through the real daemon, the real broker and the emulator: ``forwarder run``
against an HTTPS emulator whose certificate comes from a throwaway CA, directly and through a CONNECT
proxy; a wrong CA is an outage; credentials written after the start are found by the outage probe; a slow
credential refresh neither slows delivery nor the probes."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.connect_proxy import ConnectProxy
from tests.harness.credentials_endpoint import (
    CredentialsEndpoint,
    no_credentials_env,
    write_credentials_file,
)
from tests.harness.pipeline import create_topics, pipeline
from tests.harness.tls import ThrowawayCA, make_ca
from tests.support import (
    EmulatorProcess,
    ForwarderConfig,
    committed,
    free_port,
    fully_committed,
    probe,
    produce,
    read_topic,
    running,
    start_emulator,
    start_forwarder,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration

EVENTS = 30
NO_PROXY_ENV = {
    "HTTPS_PROXY": "",
    "https_proxy": "",
    "HTTP_PROXY": "",
    "http_proxy": "",
    "NO_PROXY": "",
    "no_proxy": "",
}


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def tls_emulator(tmp_path: Path, ca: ThrowawayCA) -> Iterator[EmulatorProcess]:
    emulator = start_emulator(tmp_path, *ca.emulator_args(), ca=ca.ca)
    try:
        yield emulator
    finally:
        emulator.stop()


def _event(i: int) -> dict[str, Any]:
    return {"eventId": f"ev-{i}", "sessionId": f"s-{i % 5}", "eventType": "click", "sentAt": 1714566896 + i}


def _pipeline(
    bootstrap: str, emulator: EmulatorProcess, name: str, **extra: Any
) -> tuple[ForwarderConfig, str, str]:
    topic, dlq = create_topics(bootstrap, name)
    produce(bootstrap, topic, [(b"k", json.dumps(_event(i)).encode()) for i in range(EVENTS)])
    cfg = ForwarderConfig(bootstrap, [topic], unique("g"), dlq, emulator.url, extra=extra)
    return cfg, topic, dlq


def _delivered(emulator: EmulatorProcess) -> set[str]:
    return {event["eventId"] for event in emulator.events()}


@pytest.mark.parametrize(
    ("transport", "route", "setting"),
    [
        ("fast", "direct", "AWS_CA_BUNDLE"),
        ("fast", "proxy", "personalize.ca_bundle"),
        ("boto3", "proxy", "AWS_CA_BUNDLE"),
    ],
)
def test_the_daemon_delivers_over_tls_with_the_ca_bundle_directly_and_through_a_proxy(
    bootstrap: str,
    tmp_path: Path,
    tls_emulator: EmulatorProcess,
    ca: ThrowawayCA,
    transport: str,
    route: str,
    setting: str,
) -> None:
    personalize: dict[str, Any] = {"transport": transport}
    env = dict(NO_PROXY_ENV)
    if setting == "AWS_CA_BUNDLE":
        env["AWS_CA_BUNDLE"] = str(ca.ca)
    else:
        personalize["ca_bundle"] = str(ca.ca)
    cfg, topic, dlq = _pipeline(bootstrap, tls_emulator, "tls", personalize=personalize)
    with ConnectProxy() as proxy:
        if route == "proxy":
            env["HTTPS_PROXY"] = env["https_proxy"] = proxy.url  # the lower-case one wins when both are set
        replica = start_forwarder(tmp_path, cfg, env=env)
        with running([replica]):
            wait_for(lambda: len(_delivered(tls_emulator)) == EVENTS, 60, what="every event delivered")
            wait_for(lambda: fully_committed(bootstrap, cfg.group, topic), 30, what="the commit")
            assert replica.stop() == 0
        assert (proxy.tunnels > 0) == (route == "proxy")
    assert read_topic(bootstrap, dlq, timeout=3) == []
    assert "did not verify" not in replica.log_text()


def test_a_wrong_ca_through_a_proxy_is_an_outage_that_keeps_offsets_and_dead_letters_nothing(
    bootstrap: str, tmp_path: Path, tls_emulator: EmulatorProcess
) -> None:
    wrong = make_ca(tmp_path / "wrong-ca", "another test CA")
    port = free_port()
    cfg, topic, dlq = _pipeline(
        bootstrap,
        tls_emulator,
        "tls-wrong",
        observability={"port": port, "host": "127.0.0.1"},
        retry={"outage_retry_interval_s": 1, "max_attempts": 3},
        shutdown={"timeout_s": 3},  # the outage holds every batch: do not wait the default 20 s for them
    )
    with ConnectProxy() as proxy:
        env = {
            **NO_PROXY_ENV,
            "HTTPS_PROXY": proxy.url,
            "https_proxy": proxy.url,
            "AWS_CA_BUNDLE": str(wrong.ca),
        }
        replica = start_forwarder(tmp_path, cfg, env=env)
        with running([replica]):
            wait_for(lambda: "refuses every call" in replica.log_text(), 60, what="the outage line")
            wait_for(lambda: probe(port, "/readyz") == 503, 30, what="readyz to fail")
            wait_for(lambda: proxy.tunnels >= 4, 30, what="a few probes")  # a few probes, still refused
            assert replica.stop() == 0
    assert _delivered(tls_emulator) == set()
    assert read_topic(bootstrap, dlq, timeout=3) == [], "a certificate problem is not the messages' fault"
    assert max(committed(bootstrap, cfg.group, topic).values()) <= 0, "offsets kept"
    outage_lines = [line for line in replica.log_text().splitlines() if "refuses every call" in line]
    assert len(outage_lines) == 1, outage_lines
    assert "did not verify" in outage_lines[0]
    assert str(wrong.ca) in outage_lines[0]
    assert "AWS_CA_BUNDLE" in outage_lines[0]
    assert "personalize.ca_bundle" in outage_lines[0]


@pytest.mark.parametrize("transport", ["fast", "boto3"])
def test_credentials_written_after_the_start_are_found_by_the_outage_probe(
    bootstrap: str, tmp_path: Path, transport: str
) -> None:
    p = pipeline(
        bootstrap,
        tmp_path,
        "late-creds",
        metrics=True,
        extra={
            "personalize": {"transport": transport},
            "observability": {"host": "127.0.0.1"},
            "retry": {"outage_retry_interval_s": 1},
        },
    )
    emulator, port = p.emulator, p.port
    assert port is not None
    p.produce_events([_event(i) for i in range(EVENTS)], key=b"k")
    home = tmp_path / "aws"
    home.mkdir()
    with p.run(env=no_credentials_env(home)) as replica:
        wait_for(lambda: "refuses every call" in replica.log_text(), 60, what="the outage line")
        wait_for(lambda: probe(port, "/readyz") == 503, 30, what="readyz to fail")
        assert "NoCredentials" in replica.log_text()
        write_credentials_file(home)
        wait_for(lambda: len(_delivered(emulator)) == EVENTS, 60, what="every event delivered")
        p.wait_committed(30)
        wait_for(lambda: probe(port, "/readyz") == 200, 30, what="readyz to pass")
        assert replica.stop() == 0
    assert p.dead_letters(timeout=3) == []


def _listening(port: int) -> bool:
    try:
        return probe(port, "/healthz") == 200
    except OSError:  # not listening yet
        return False


def _healthz_seconds(port: int) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as response:
        assert response.status == 200
    return time.monotonic() - started


def test_a_slow_credential_refresh_slows_neither_delivery_nor_healthz(bootstrap: str, tmp_path: Path) -> None:
    """Container credentials expiring in 12 minutes: botocore wants them refreshed (its advisory window),
    and every refresh takes the endpoint's timeout (~8 s), but they are valid: delivery and /healthz go on."""
    events = 300
    p = pipeline(
        bootstrap,
        tmp_path,
        "slow-refresh",
        metrics=True,
        extra={"observability": {"host": "127.0.0.1"}, "batching": {"linger_ms": 0}},
    )
    emulator, port = p.emulator, p.port
    assert port is not None
    home = tmp_path / "aws"
    home.mkdir()
    with (
        CredentialsEndpoint(expires_in_s=12 * 60, slow_from=2, delay_s=3.0) as endpoint,
        p.run(env=endpoint.env(home)) as replica,
    ):
        wait_for(lambda: _listening(port), 60, what="the replica to start")
        # One session per message: one call each, so each call would wait on a blocking refresh.
        p.produce_events([{**_event(i), "sessionId": f"s-{i}"} for i in range(events)], key=b"k")
        started = time.monotonic()
        slowest_probe = 0.0
        while len(_delivered(emulator)) < events and time.monotonic() - started < 60:
            slowest_probe = max(slowest_probe, _healthz_seconds(port))
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        assert len(_delivered(emulator)) == events
        assert endpoint.requests >= 2, "a refresh was attempted while delivering"
        assert replica.stop() == 0
    assert elapsed < 20, f"{events} one-event calls took {elapsed:.1f}s"
    assert slowest_probe < 2.0, f"/healthz took {slowest_probe:.1f}s to answer"
    assert p.dead_letters(timeout=3) == []
