"""Answers the emulator never gives, from a canned loopback server, through both transports: each maps to
its defined kind (forwarder/personalize/errors.py; docs/architecture.md, failure classes)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from confluent_kafka import Message

from forwarder.config import PersonalizeConfig
from forwarder.decode import Event, SessionKey
from forwarder.outcome import Envelope
from forwarder.personalize.errors import Outage, PutEventsError, Retryable
from forwarder.personalize.transport import make_transport
from tests.support import AWS_TEST_ENV

TRANSPORTS = ["boto3", "fast"]
KEY = SessionKey("trk", "u", "s")


class _Canned(BaseHTTPRequestHandler):
    """Answers every POST with the class's current status, headers and body."""

    answer: ClassVar[tuple[int, dict[str, str], bytes]] = (200, {}, b"")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        status, headers, body = self.answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _put(url: str, transport: str, answer: tuple[int, dict[str, str], bytes]) -> None:
    _Canned.answer = answer
    cfg = PersonalizeConfig.model_validate(
        {"tracking_id": "trk", "region": "us-east-1", "endpoint_url": url, "transport": transport}
    )
    event = Event(
        KEY,
        {"eventType": "click", "sentAt": 1.0},
        b'{"eventType":"click","sentAt":1.0}',
        Envelope(Message(topic="t", partition=0, offset=0)),
        False,
    )

    async def go() -> None:
        sender = make_transport(cfg)
        try:
            await sender.put_events(KEY, [event])
        finally:
            await sender.close()

    asyncio.run(go())


def _error(code: str) -> tuple[int, dict[str, str], bytes]:
    return 400, {"x-amzn-ErrorType": code}, b'{"message": "m"}'


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        ((408, {}, b""), Retryable, None),  # botocore names it "408", the fast transport "HTTP408"
        (_error("RequestTimeout"), Retryable, "RequestTimeout"),
        (_error("RequestTimeoutException"), Retryable, "RequestTimeoutException"),
        (_error("PriorRequestNotComplete"), Retryable, "PriorRequestNotComplete"),
        (_error("RequestExpired"), Outage, "RequestExpired"),
        ((301, {"Location": "https://elsewhere.invalid/events"}, b""), Outage, None),
        ((307, {"Location": "https://elsewhere.invalid/events"}, b""), Outage, None),
        ((200, {"Content-Type": "text/html"}, b"<html>welcome</html>"), Outage, "UnexpectedResponse"),
        ((202, {}, b"accepted"), Outage, "UnexpectedResponse"),
    ],
)
def test_each_answer_maps_to_its_kind_in_both_transports(
    server: str, transport: str, answer: tuple[int, dict[str, str], bytes], kind: type, code: str | None
) -> None:
    with pytest.raises(PutEventsError) as info:
        _put(server, transport, answer)
    assert type(info.value) is kind, info.value
    if code is not None:
        assert info.value.code == code
    if answer[0] in (301, 307):
        assert "misconfigured" in info.value.message


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "answer",
    [(200, {}, b""), (200, {}, b"{}"), (204, {}, b""), (202, {}, b'{"ignored": 1}')],
)
def test_a_2xx_with_the_operations_answer_is_a_success(
    server: str, transport: str, answer: tuple[int, dict[str, str], bytes]
) -> None:
    _put(server, transport, answer)
