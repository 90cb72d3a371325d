"""Both PutEvents transports against the emulator, with the same tests: the same request on the wire,
and the same three kinds of failure for every error the service answers."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

from forwarder.config import MappingConfig, PersonalizeConfig
from forwarder.decode import Decoder, Event, SessionKey
from forwarder.outcome import Envelope
from forwarder.personalize.errors import InvalidInput, Outage, PutEventsError, Retryable
from forwarder.personalize.transport import make_transport
from tests.support import AWS_TEST_ENV, EmulatorProcess

TRANSPORTS = ["boto3", "fast"]


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _events(n: int, **extra: Any) -> list[Event]:
    decoder = Decoder(MappingConfig(), "trk")
    out = []
    for i in range(n):
        value = {
            "sessionId": "s1",
            "userId": "u1",
            "eventType": "click",
            "itemId": f"item-{i}",
            "sentAt": 1714566896.25 + i,
            "properties": {"n": i, "text": "caf\u00e9 \U0001f600"},
            "impression": ["a", "b"],
            "recommendationId": "RID-1",
            "eventValue": 2.5,
            "metricAttribution": {"eventAttributionSource": "SourceA"},
            **extra,
        }
        event = decoder.decode(
            Envelope(Message(topic="t", partition=0, offset=i, value=json.dumps(value).encode()))
        )
        assert isinstance(event, Event)
        out.append(event)
    return out


def _put(
    emulator: EmulatorProcess, transport: str, events: list[Event], key: SessionKey | None = None
) -> None:
    cfg = PersonalizeConfig.model_validate(
        {
            "tracking_id": "trk",
            "region": "us-east-1",
            "endpoint_url": emulator.url,
            "transport": transport,
            "request_timeout_s": 3,
        }
    )

    async def go() -> None:
        sender = make_transport(cfg)
        try:
            await sender.put_events(key or events[0].key, events)
        finally:
            await sender.close()

    asyncio.run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_request_on_the_wire_is_what_boto3_sends(emulator: EmulatorProcess, transport: str) -> None:
    events = _events(10)
    _put(emulator, transport, events)
    (call,) = emulator.calls()
    assert call["trackingId"] == "trk"
    assert call["sessionId"] == "s1"
    assert call["userId"] == "u1"
    assert len(call["eventList"]) == 10
    for sent, wire in zip(events, call["eventList"], strict=True):
        assert wire.keys() == sent.wire.keys()
        assert wire["sentAt"] == pytest.approx(sent.wire["sentAt"], abs=1e-3)
        assert {k: v for k, v in wire.items() if k != "sentAt"} == {
            k: v for k, v in sent.wire.items() if k != "sentAt"
        }


def test_both_transports_send_the_same_body(emulator: EmulatorProcess) -> None:
    events = _events(3)
    anonymous = SessionKey("trk", None, "s-anon")
    for transport in TRANSPORTS:
        _put(emulator, transport, events, anonymous)
    boto, fast = emulator.calls()
    assert "userId" not in boto
    assert "userId" not in fast
    assert json.dumps(boto, sort_keys=True) == json.dumps(fast, sort_keys=True)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("faults", "kind", "code"),
    [
        ({"reject_item_ids": ["item-1"]}, InvalidInput, "InvalidInputException"),
        ({"throttle_rate": 1.0}, Retryable, "ThrottlingException"),
        ({"error_rate": 1.0}, Retryable, None),
        ({"drop_rate": 1.0}, Retryable, None),
        ({"tracking_ids": ["someone-else"]}, Outage, "ResourceNotFoundException"),
        ({"access_denied": True}, Outage, "AccessDeniedException"),
    ],
)
def test_every_error_maps_to_the_same_kind(
    emulator: EmulatorProcess, transport: str, faults: dict[str, Any], kind: type, code: str | None
) -> None:
    emulator.set_faults(**faults)
    with pytest.raises(PutEventsError) as info:
        _put(emulator, transport, _events(3))
    assert type(info.value) is kind, info.value
    if code is not None:
        assert info.value.code == code
    if kind is Retryable and code == "ThrottlingException":
        assert isinstance(info.value, Retryable)
        assert info.value.throttled
    assert emulator.calls() == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_service_message_names_the_field(emulator: EmulatorProcess, transport: str) -> None:
    emulator.set_faults(reject_item_ids=["item-2"])
    with pytest.raises(InvalidInput) as info:
        _put(emulator, transport, _events(3))
    assert "eventList[2].itemId" in info.value.message


def test_a_configured_proxy_is_used(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    # The lean client speaks no proxy protocol: with a proxy configured the fast transport goes through
    # aiohttp with the environment's proxy. This one refuses connections, so the call must fail.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(Retryable):
        _put(emulator, "fast", _events(1))
    assert emulator.calls() == [], "nothing reached the service around the proxy"


_FLAKY_CREDENTIALS = """
import datetime, json, pathlib, sys
state = pathlib.Path(sys.argv[1])
if state.exists():
    sys.exit("the credential service is down")
state.write_text("served once")
# 30 s left: too close to expiry to sign with (under a minute), so the call needs the refresh. Credentials
# with longer left are used while a failing refresh is retried in the background (issue #10, item 4).
expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
print(json.dumps({"Version": 1, "AccessKeyId": "AKIDFLAKY", "SecretAccessKey": "flaky-secret",
                  "SessionToken": "flaky-token", "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}))
"""


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_failed_credential_refresh_is_an_outage(
    emulator: EmulatorProcess, transport: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real provider (credential_process) serves short-lived credentials once, then fails: the refresh
    # the next call needs fails as an STS or IMDS hiccup would. That is an outage (held, retried slowly),
    # never an error that stops the replica or dead-letters the events.
    script = tmp_path / "credentials.py"
    script.write_text(_FLAKY_CREDENTIALS)
    config = tmp_path / "aws-config"
    config.write_text(
        f"[profile flaky]\ncredential_process = {sys.executable} {script} {tmp_path / 'served'}\n"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials-file"))
    monkeypatch.setenv("AWS_PROFILE", "flaky")
    with pytest.raises(Outage) as info:
        _put(emulator, transport, _events(2))
    assert info.value.code == "CredentialsUnavailable", info.value
    assert (tmp_path / "served").exists()  # the provider did serve once: this was a refresh failing
    assert emulator.calls() == []
