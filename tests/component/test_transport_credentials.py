"""The transports' credentials against the emulator: credentials that appear after the start are found by
the next call (issue #10, item 3), and a slow refresh never blocks the event loop while the current
credentials are valid (item 4)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from confluent_kafka import Message

from forwarder.config import MappingConfig, PersonalizeConfig
from forwarder.decode import Decoder, Event
from forwarder.outcome import Envelope
from forwarder.personalize.errors import Outage
from forwarder.personalize.transport import Transport, make_transport
from tests.harness.credentials_endpoint import (
    CredentialsEndpoint,
    no_credentials_env,
    write_credentials_file,
)
from tests.support import EmulatorProcess

TRANSPORTS = ["boto3", "fast"]


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment where botocore's chain finds nothing until tmp_path/credentials is written."""
    for name in (
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in no_credentials_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    return tmp_path


def _events(n: int) -> list[Event]:
    decoder = Decoder(MappingConfig(), "trk")
    out = []
    for i in range(n):
        value = {"sessionId": "s-cred", "eventType": "click", "itemId": f"i{i}", "sentAt": 1e9}
        event = decoder.decode(
            Envelope(Message(topic="t", partition=0, offset=i, value=json.dumps(value).encode()))
        )
        assert isinstance(event, Event)
        out.append(event)
    return out


def _transport(emulator: EmulatorProcess, transport: str) -> Transport:
    cfg = PersonalizeConfig.model_validate(
        {"tracking_id": "trk", "region": "us-east-1", "endpoint_url": emulator.url, "transport": transport}
    )
    return make_transport(cfg)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_credentials_that_appear_after_the_start_are_found_by_the_next_call(
    emulator: EmulatorProcess, no_credentials: Path, transport: str
) -> None:
    events = _events(2)

    async def go() -> None:
        sender = _transport(emulator, transport)
        try:
            with pytest.raises(Outage) as caught:
                await sender.put_events(events[0].key, events)
            assert caught.value.code == "NoCredentials"
            write_credentials_file(no_credentials)
            await sender.put_events(events[0].key, events)  # the outage probe: looks again, and sends
        finally:
            await sender.close()

    asyncio.run(go())
    assert len(emulator.calls()) == 1


def test_a_slow_credential_refresh_does_not_block_the_event_loop(
    emulator: EmulatorProcess, no_credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials expiring in 12 minutes are in botocore's advisory refresh window (15 minutes) but still
    valid: every refresh attempt takes the endpoint's timeout (~8 s), and calls must go on meanwhile."""
    events = _events(1)
    calls = 20
    with CredentialsEndpoint(expires_in_s=12 * 60, slow_from=2, delay_s=3.0) as endpoint:
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url)

        async def go() -> tuple[float, float]:
            sender = _transport(emulator, "fast")
            gaps: list[float] = []
            stop = asyncio.Event()

            async def ticker() -> None:  # how long the loop goes without turning
                last = time.monotonic()
                while not stop.is_set():
                    await asyncio.sleep(0.01)
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now

            tick = asyncio.create_task(ticker())
            started = time.monotonic()
            try:
                for _ in range(calls):
                    await sender.put_events(events[0].key, events)
            finally:
                elapsed = time.monotonic() - started
                stop.set()
                await tick
                await sender.close()
            return elapsed, max(gaps)

        elapsed, longest_gap = asyncio.run(go())
        assert endpoint.requests >= 2, "a refresh was attempted"
    assert len(emulator.calls()) == calls
    assert elapsed < 3.0, f"{calls} calls took {elapsed:.1f}s: a refresh held them up"
    assert longest_gap < 1.0, f"the event loop stood still for {longest_gap:.1f}s"
