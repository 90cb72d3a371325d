"""The lean HTTP/1.1 client against small scripted servers on 127.0.0.1 (no external network).

Every test runs under plain asyncio and under uvloop: their transports differ in how EOF and aborts
arrive. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import uvloop
from botocore.auth import SigV4Auth, _host_from_url
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from forwarder.personalize import http as http_client
from forwarder.personalize.http import HttpClient, HttpConnectionError, host_header, proxy_configured

pytestmark = pytest.mark.timeout(30)

Run = Callable[[Coroutine[Any, Any, Any]], Any]
HEADERS = {"Content-Type": "application/json", "X-Amz-Date": "20240101T000000Z", "Authorization": "AWS4 x"}
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    """Run a coroutine to completion, bounded to 10 s, on the parametrized event loop."""

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        bounded = asyncio.wait_for(coro, 10)
        return uvloop.run(bounded) if request.param == "uvloop" else asyncio.run(bounded)

    return runner


class Request(NamedTuple):
    line: str
    headers: list[tuple[str, str]]
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> Request:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")[:-2]
    headers = [(name, value.strip()) for name, _, value in (line.partition(":") for line in head[1:])]
    length = next((int(v) for n, v in headers if n.lower() == "content-length"), 0)
    return Request(head[0], headers, await reader.readexactly(length))


Script = Callable[["Server", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answer(*responses: bytes) -> Script:
    """A server script: answer each request with the next of ``responses`` (the last one repeats)."""

    async def script(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            server.requests.append(await read_request(reader))
            writer.write(responses[min(len(server.requests), len(responses)) - 1])
            await writer.drain()

    return script


class Server:
    """A scripted HTTP server that counts its connections (total, open now, most open at once)."""

    def __init__(self, script: Script, ssl_context: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.ssl_context = ssl_context
        self.requests: list[Request] = []
        self.connections = self.active = self.max_active = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"{'https://localhost' if self.ssl_context else 'http://127.0.0.1'}:{self.port}"

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.wait_for(asyncio.gather(*self._tasks), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.script(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client left, or the test is over (cancelled by __aexit__, which awaits this)
        finally:
            self.active -= 1
            self._tasks.discard(task)
            writer.close()

    async def wait_idle(self) -> None:
        """Until every connection to this server is closed (at most 2 s)."""
        await until(lambda: self.active == 0)


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def test_keep_alive_reuses_one_connection_and_sends_the_request_as_given(run: Run) -> None:
    async def go() -> None:
        async with Server(answer(OK)) as server:
            client = HttpClient(server.url, max_connections=4, timeout_s=2)
            for i in range(5):
                response = await client.post("/events", b'{"n":%d}' % i, HEADERS)
                assert response == (200, {"content-type": "application/json", "content-length": "2"}, b"{}")
            await client.close()
        assert server.connections == 1
        first = server.requests[0]
        assert first.line == "POST /events HTTP/1.1"
        host = ("Host", f"127.0.0.1:{server.port}")
        assert first.headers == [host, ("Content-Length", "7"), *HEADERS.items()]
        assert [r.body for r in server.requests] == [b'{"n":%d}' % i for i in range(5)]

    run(go())


def test_pool_never_opens_more_than_max_connections(run: Run) -> None:
    async def slow(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            server.requests.append(await read_request(reader))
            await asyncio.sleep(0.02)
            writer.write(OK)

    async def go() -> None:
        async with Server(slow) as server:
            client = HttpClient(server.url, max_connections=2, timeout_s=5)
            responses = await asyncio.gather(*(client.post("/", b"x", {}) for _ in range(12)))
            assert [r.status for r in responses] == [200] * 12
            assert client.open_connections == 2
            await client.close()
        assert (server.connections, server.max_active, len(server.requests)) == (2, 2, 12)

    run(go())


CHUNKED = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nX-Amzn-ErrorType: Bad\r\nx-amzn-errortype: Twice\r\n\r\n"
    b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n"
)
CHUNKED_ANSWER = (400, {"transfer-encoding": "chunked", "x-amzn-errortype": "Bad, Twice"}, b"Wikipedia")


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (OK, (200, {"content-type": "application/json", "content-length": "2"}, b"{}")),
        (CHUNKED, CHUNKED_ANSWER),
    ],
    ids=["content-length", "chunked"],
)
@pytest.mark.parametrize("one_byte_writes", [False, True], ids=["one-packet", "byte-by-byte"])
def test_responses_are_parsed_however_they_are_fragmented(
    run: Run, wire: bytes, expected: tuple[Any, ...], one_byte_writes: bool
) -> None:
    async def trickle(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            server.requests.append(await read_request(reader))
            for i in range(len(wire)):
                writer.write(wire[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0.0005)  # TCP_NODELAY is on: one segment each

    async def go() -> None:
        async with Server(trickle if one_byte_writes else answer(wire)) as server:
            client = HttpClient(server.url, max_connections=1, timeout_s=5)
            for _ in range(2):
                assert await client.post("/", b"", {}) == expected
            await client.close()
        assert server.connections == 1, "the connection is reused after a complete response"

    run(go())


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}junk",
    ],
    ids=["connection-close", "http-1.0", "bytes-after-the-response"],
)
def test_a_connection_the_server_will_not_keep_is_not_reused(run: Run, wire: bytes) -> None:
    async def go() -> None:
        # The server keeps its end open: the client alone must decide not to reuse it.
        async with Server(answer(wire)) as server:
            client = HttpClient(server.url, max_connections=1, timeout_s=2)
            for _ in range(2):
                assert await client.post("/", b"", {}) == (200, {"content-length": "2"} | _close(wire), b"{}")
            await server.wait_idle()
            assert (client.open_connections, server.connections) == (0, 2)
            await client.close()

    run(go())


def _close(wire: bytes) -> dict[str, str]:
    return {"connection": "close"} if b"Connection" in wire else {}


def test_a_body_without_length_is_read_until_the_server_closes(run: Run) -> None:
    async def until_eof(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\nslow")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b" down")

    async def go() -> None:
        async with Server(until_eof) as server:
            client = HttpClient(server.url, max_connections=1, timeout_s=2)
            assert await client.post("/", b"", {}) == (503, {"connection": "close"}, b"slow down")
            await client.close()

    run(go())


def test_a_connection_closed_by_the_server_while_idle_is_replaced(run: Run) -> None:
    """The EOF arrived before the next request: the request goes on a new connection, without error."""

    async def once(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.requests.append(await read_request(reader))
        writer.write(OK)  # keep-alive, then closed while idle

    async def go() -> None:
        async with Server(once) as server:
            client = HttpClient(server.url, max_connections=1, timeout_s=2)
            assert (await client.post("/", b"", {})).status == 200
            await until(lambda: client.open_connections == 0)
            assert (await client.post("/", b"", {})).status == 200
            await client.close()
        assert server.connections == 2

    run(go())


def test_a_connection_idle_too_long_is_not_reused(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_client, "KEEPALIVE_S", 0.05)

    async def go() -> None:
        async with Server(answer(OK)) as server:
            client = HttpClient(server.url, max_connections=1, timeout_s=2)
            for pause in (0, 0, 0.1, 0):
                await asyncio.sleep(pause)
                assert (await client.post("/", b"", {})).status == 200
            await client.close()
        assert server.connections == 2, "the connection idle for 0.1 s was replaced, the others reused"

    run(go())


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Le",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ],
    ids=["nothing", "short-body", "short-head", "short-chunked"],
)
def test_eof_before_a_complete_response_raises_connection_error(run: Run, wire: bytes) -> None:
    async def cut(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(wire)

    async def go() -> None:
        async with Server(cut) as server:
            client = HttpClient(server.url, max_connections=1, timeout_s=2)
            with pytest.raises(HttpConnectionError, match="closed before a complete response"):
                await client.post("/", b"", {})
            assert client.open_connections == 0
            await client.close()

    run(go())


@pytest.mark.parametrize(
    "wire",
    [
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"SPDY/3 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n",  # a digit to str.isdigit, not to int()
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20_000,
    ],
)
def test_a_malformed_response_raises_connection_error_and_drops_the_connection(run: Run, wire: bytes) -> None:
    async def go() -> None:
        async with Server(answer(wire)) as server:
            client = HttpClient(server.url, max_connections=1, timeout_s=2)
            with pytest.raises(HttpConnectionError, match="malformed response"):
                await client.post("/", b"", {})
            await server.wait_idle()
            assert client.open_connections == 0
            await client.close()

    run(go())


def test_a_refused_connection_raises_connection_error(run: Run) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed

    async def go() -> None:
        client = HttpClient(f"http://127.0.0.1:{port}", max_connections=1, timeout_s=2)
        with pytest.raises(HttpConnectionError, match="could not connect"):
            await client.post("/", b"", {})
        await client.close()

    run(go())


async def _silent(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    server.requests.append(await read_request(reader))
    await reader.read()  # never answers; returns when the client closes


async def _timed_out(client: HttpClient, match: str) -> float:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=match):
        await client.post("/", b"", {})
    return time.monotonic() - started


def test_timeout_bounds_a_post_without_answer_and_drops_its_connection(run: Run) -> None:
    async def go() -> None:
        async with Server(_silent) as server:
            client = HttpClient(server.url, max_connections=1, timeout_s=0.3)
            assert 0.29 < await _timed_out(client, "no complete response within 0.3 s") < 1.0
            await server.wait_idle()
            assert client.open_connections == 0
            await client.close()

    run(go())


def test_timeout_covers_the_wait_for_a_free_connection(run: Run) -> None:
    async def go() -> None:
        async with Server(_silent) as server:
            client = HttpClient(server.url, max_connections=1, timeout_s=5)
            holder = asyncio.create_task(client.post("/", b"", {}))
            await until(lambda: len(server.requests) == 1)
            client._timeout_s = 0.3  # the next post's bound ends while the holder still has the only slot
            assert 0.29 < await _timed_out(client, "no free connection within 0.3 s") < 1.0
            assert not holder.done()
            await client.close()
            with pytest.raises(HttpConnectionError):
                await holder

    run(go())


def test_a_cancelled_post_drops_its_connection_and_frees_its_slot(run: Run) -> None:
    async def go() -> None:
        async with Server(_silent) as server:
            client = HttpClient(server.url, max_connections=1, timeout_s=2)
            task = asyncio.create_task(client.post("/", b"", {}))
            await until(lambda: len(server.requests) == 1)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await server.wait_idle()
            server.script = answer(OK)
            assert (await client.post("/", b"", {})).status == 200
            await client.close()

    run(go())


def test_close_fails_requests_in_progress_and_later_ones(run: Run) -> None:
    async def go() -> None:
        async with Server(_silent) as server:
            client = HttpClient(server.url, max_connections=2, timeout_s=5)
            task = asyncio.create_task(client.post("/", b"", {}))
            await until(lambda: len(server.requests) == 1)
            await client.close()
            with pytest.raises(HttpConnectionError, match="client was closed"):
                await task
            with pytest.raises(HttpConnectionError, match="client is closed"):
                await client.post("/", b"", {})
            await server.wait_idle()
            assert client.open_connections == 0

    run(go())


def test_a_line_break_in_a_header_is_refused_before_sending(run: Run) -> None:
    async def go() -> None:
        client = HttpClient("http://127.0.0.1:9", max_connections=1, timeout_s=1)
        for headers, path in [({"X": "a\r\nEvil: 1"}, "/"), ({"X\n": "a"}, "/"), ({}, "/\rx")]:
            with pytest.raises(ValueError, match="line break"):
                await client.post(path, b"", headers)
        await client.close()

    run(go())


PROXY_VARS = ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy"]


def test_proxy_configured_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS + [v.upper() for v in PROXY_VARS]:
        monkeypatch.delenv(name, raising=False)
    aws = "https://personalize-events.eu-west-1.amazonaws.com"
    assert not proxy_configured(aws)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert proxy_configured(aws)
    assert not proxy_configured("http://127.0.0.1:8080"), "an https proxy is not used for http"
    monkeypatch.setenv("NO_PROXY", "localhost,.amazonaws.com")
    assert not proxy_configured(aws)
    monkeypatch.setenv("http_proxy", "http://proxy:3128")
    assert proxy_configured("http://127.0.0.1:8080")
    assert not proxy_configured("http://localhost:8080")


def _signed_host(url: str) -> str:
    """The ``host`` botocore's SigV4 signs for a POST to ``url``."""
    request = AWSRequest(method="POST", url=f"{url}/events", data=b"{}")
    host: str = SigV4Auth(Credentials("a", "b"), "personalize", "us-east-1").headers_to_sign(request)["host"]
    return host


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "https://personalize-events.eu-west-1.amazonaws.com",
        "https://personalize-events.eu-west-1.amazonaws.com:443",
        "https://Personalize-Events.eu-west-1.amazonaws.com:8443",
        "http://localhost:80",
        "http://[::1]:8080",
        "https://[::1]",
    ],
)
def test_host_header_is_what_botocore_signs(url: str) -> None:
    assert host_header(url) == _signed_host(url) == _host_from_url(url)


def test_the_host_sent_on_a_non_default_port_is_the_signed_one(run: Run) -> None:
    async def go() -> None:
        async with Server(answer(OK)) as server:
            client = HttpClient(server.url, max_connections=1, timeout_s=2)
            await client.post("/events", b"{}", {})
            await client.close()
        assert server.requests[0].headers[0] == ("Host", _signed_host(server.url))

    run(go())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost``: (cert, key)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def test_https_verifies_with_aws_ca_bundle_and_signs_the_default_port_host(
    run: Run, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def go() -> None:
        async with Server(answer(OK), server_context) as server:
            monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
            untrusted = HttpClient(server.url, max_connections=1, timeout_s=2)
            with pytest.raises(HttpConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusted.post("/events", b"{}", {})
            await untrusted.close()

            monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
            client = HttpClient(server.url, max_connections=1, timeout_s=2)
            assert (await client.post("/events", b"{}", {})).status == 200
            await client.close()
            # The URL botocore signs for port 443; the server listens elsewhere, so only the connection
            # is pointed at its real port: the Host line must still carry no port.
            default_port = HttpClient("https://localhost", max_connections=1, timeout_s=2)
            default_port._port = server.port
            assert (await default_port.post("/events", b"{}", {})).status == 200
            await default_port.close()
        hosts = [request.headers[0] for request in server.requests]
        assert hosts == [("Host", f"localhost:{server.port}"), ("Host", _signed_host("https://localhost"))]
        assert hosts[1] == ("Host", "localhost")

    run(go())
