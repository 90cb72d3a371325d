"""Both transports against the emulator over HTTPS, its certificate signed by a throwaway CA: the same TLS
settings (``AWS_CA_BUNDLE``, ``personalize.ca_bundle``), directly and through a CONNECT proxy
(``HTTPS_PROXY``, ``NO_PROXY``); a certificate that does not verify is an outage, never retried as a broken
connection (issue #10, item 2)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

from forwarder.config import MappingConfig, PersonalizeConfig
from forwarder.decode import Decoder, Event
from forwarder.outcome import Envelope
from forwarder.personalize.errors import Outage
from forwarder.personalize.tls import OUTAGE_CODE
from forwarder.personalize.transport import make_transport
from tests.harness.connect_proxy import ConnectProxy
from tests.harness.tls import ThrowawayCA, make_ca
from tests.support import AWS_TEST_ENV, EmulatorProcess, start_emulator

TRANSPORTS = ["boto3", "fast"]
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def wrong_ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return make_ca(tmp_path_factory.mktemp("wrong-ca"), "another test CA")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory, ca: ThrowawayCA) -> Iterator[EmulatorProcess]:
    process = start_emulator(
        tmp_path_factory.mktemp("tls-emulator"), "--tracking-id", "trk", *ca.emulator_args(), ca=ca.ca
    )
    assert process.url.startswith("https://127.0.0.1:")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    with ConnectProxy() as running:
        yield running


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CA_BUNDLE", *PROXY_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/forwarder-test-config")


def _events(n: int) -> list[Event]:
    decoder = Decoder(MappingConfig(), "trk")
    out = []
    for i in range(n):
        value = {"sessionId": "s-tls", "userId": "u1", "eventType": "click", "itemId": f"i{i}", "sentAt": 1e9}
        event = decoder.decode(
            Envelope(Message(topic="t", partition=0, offset=i, value=json.dumps(value).encode()))
        )
        assert isinstance(event, Event)
        out.append(event)
    return out


def _put(emulator: EmulatorProcess, transport: str, **extra: Any) -> None:
    cfg = PersonalizeConfig.model_validate(
        {
            "tracking_id": "trk",
            "region": "us-east-1",
            "endpoint_url": emulator.url,
            "transport": transport,
            "request_timeout_s": 5,
            **extra,
        }
    )
    events = _events(3)

    async def go() -> None:
        sender = make_transport(cfg)
        try:
            await sender.put_events(events[0].key, events)
        finally:
            await sender.close()

    asyncio.run(go())


def _delivered(emulator: EmulatorProcess) -> int:
    return sum(len(call["eventList"]) for call in emulator.calls())


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("route", ["direct", "proxy"])
@pytest.mark.parametrize("setting", ["AWS_CA_BUNDLE", "personalize.ca_bundle"])
def test_the_ca_bundle_verifies_the_endpoint_directly_and_through_a_proxy(
    emulator: EmulatorProcess,
    ca: ThrowawayCA,
    proxy: ConnectProxy,
    monkeypatch: pytest.MonkeyPatch,
    transport: str,
    route: str,
    setting: str,
) -> None:
    if route == "proxy":
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    extra: dict[str, Any] = {}
    if setting == "AWS_CA_BUNDLE":
        monkeypatch.setenv("AWS_CA_BUNDLE", str(ca.ca))
    else:
        extra["ca_bundle"] = str(ca.ca)
    before = _delivered(emulator)
    _put(emulator, transport, **extra)
    assert _delivered(emulator) == before + 3
    assert proxy.tunnels == (1 if route == "proxy" else 0)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_proxy_sends_directly(
    emulator: EmulatorProcess,
    ca: ThrowawayCA,
    proxy: ConnectProxy,
    monkeypatch: pytest.MonkeyPatch,
    transport: str,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    before = _delivered(emulator)
    _put(emulator, transport, ca_bundle=str(ca.ca))
    assert _delivered(emulator) == before + 3
    assert proxy.tunnels == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("route", ["direct", "proxy"])
def test_a_certificate_that_does_not_verify_is_an_outage(
    emulator: EmulatorProcess,
    wrong_ca: ThrowawayCA,
    proxy: ConnectProxy,
    monkeypatch: pytest.MonkeyPatch,
    transport: str,
    route: str,
) -> None:
    """Not Retryable (which ends on the dead-letter topic as retry_exhausted): an Outage naming the CA
    bundle in use and the settings that choose it."""
    if route == "proxy":
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(wrong_ca.ca))
    before = _delivered(emulator)
    with pytest.raises(Outage) as caught:
        _put(emulator, transport)
    assert caught.value.code == OUTAGE_CODE
    assert str(wrong_ca.ca) in caught.value.message
    assert "AWS_CA_BUNDLE" in caught.value.message
    assert "personalize.ca_bundle" in caught.value.message
    assert _delivered(emulator) == before
    assert proxy.tunnels == (1 if route == "proxy" else 0)


def test_a_missing_ca_bundle_file_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ca_bundle"):
        PersonalizeConfig.model_validate({"tracking_id": "trk", "ca_bundle": str(tmp_path / "missing.pem")})
