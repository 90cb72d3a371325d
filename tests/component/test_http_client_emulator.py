"""The lean HTTP client against the real emulator process, with requests signed by botocore's SigV4."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from forwarder.personalize.http import HttpClient, Response
from tests.support import EmulatorProcess, start_emulator

pytestmark = pytest.mark.timeout(60)

CREDENTIALS = Credentials("AKIDTESTFORWARDER", "test-secret-not-real", "session-token")


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    process = start_emulator(tmp_path)
    try:
        yield process
    finally:
        process.stop()


def _signed(url: str, body: bytes) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(CREDENTIALS, "personalize", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def _body(item_id: str) -> bytes:
    event = {"eventId": "e-0", "eventType": "click", "itemId": item_id, "sentAt": 1714566896}
    return orjson.dumps({"trackingId": "trk", "sessionId": "s-1", "userId": "u-1", "eventList": [event]})


def test_signed_put_events_are_accepted_and_invalid_ones_rejected(emulator: EmulatorProcess) -> None:
    url = f"{emulator.url}/events"
    good = [_body(f"item-{i}") for i in range(20)]
    bad = _body("x" * 257)  # itemId is at most 256 characters

    async def go() -> tuple[list[Response], Response, int]:
        client = HttpClient(emulator.url, max_connections=4, timeout_s=5)
        try:
            accepted = [await client.post("/events", body, _signed(url, body)) for body in good]
            rejected = await client.post("/events", bad, _signed(url, bad))
            return accepted, rejected, client.open_connections
        finally:
            await client.close()

    accepted, rejected, connections = asyncio.run(asyncio.wait_for(go(), 30))
    assert [(r.status, r.body) for r in accepted] == [(200, b"{}")] * 20
    assert connections == 1, "keep-alive: the emulator kept the one connection"
    assert [orjson.dumps(call) for call in emulator.calls()] == good
    assert rejected.status == 400
    assert rejected.headers["x-amzn-errortype"] == "InvalidInputException"
    assert orjson.loads(rejected.body)["message"].startswith("eventList[0].itemId")
    assert emulator.stats()["unauthenticated"] == 0
