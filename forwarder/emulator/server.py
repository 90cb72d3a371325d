"""The Personalize emulator's wire layer: an asyncio HTTP/1.1 server in front of the service model.

It reads requests with the project's one HTTP/1.1 parser (:mod:`forwarder.personalize.http`), routes them
and writes the answers; every decision about a call is the model's (:class:`~forwarder.emulator.service.
Emulator`). ``POST`` to one of the operations' paths (``/events``, ``/items``, ``/users``, ``/actions``,
``/action-interactions``: :data:`~forwarder.emulator.service.SERVED`) is the service; ``GET /_emulator/health``, ``GET /_emulator/stats``,
``POST /_emulator/reset``, ``GET /_emulator/faults`` and ``POST /_emulator/faults`` (a JSON object of
settings, applied all at once or not at all; answers the new settings) are the control endpoints.

A plain asyncio.Protocol rather than aiohttp.web, which costs more CPU per call (docs/benchmarks.md), and
the emulator shares the machine's cores with the forwarder and Kafka in benchmarks. It speaks the part
of HTTP/1.1 that clients of this API use: Content-Length or chunked bodies, keep-alive, pipelining,
Expect: 100-continue. A request it cannot take is answered with the parser's status and the connection
closed; such a request moves no counter.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Final, NamedTuple, cast

import orjson

from forwarder.emulator.service import SERVED, Emulator, InvalidSettingError, Served
from forwarder.personalize.http import (
    MAX_HEAD_BYTES,
    BodyReader,
    HttpParseError,
    RequestHead,
    parse_request_head,
    take_head,
)

MAX_BODY_BYTES: Final = 1024 * 1024
EVENTS_PATH: Final = "/events"  # PutEvents'; every served path is in SERVED
CONTROL_PREFIX: Final = "/_emulator/"
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_CONTROL_METHODS: Final = {"health": "GET", "stats": "GET", "faults": "GET, POST", "reset": "POST"}
_REASONS: Final = {status.value: status.phrase.encode() for status in HTTPStatus}


class _Answer(NamedTuple):
    """A control endpoint's answer: status, JSON document and extra header lines."""

    status: int
    document: object
    extra: bytes = b""


def control(emulator: Emulator, method: str, name: str, body: bytes) -> _Answer:
    """Answer ``method /_emulator/<name>`` with ``body``; see the module's docstring for the endpoints."""
    if name == "health" and method == "GET":
        return _Answer(200, {"status": "ok"})
    if name == "stats" and method == "GET":
        return _Answer(200, emulator.stats_json())
    if name == "reset" and method == "POST":
        emulator.reset_stats()
        return _Answer(200, emulator.stats_json())
    if name == "faults" and method == "GET":
        return _Answer(200, emulator.faults.as_json())
    if name == "faults" and method == "POST":
        try:
            return _Answer(200, emulator.apply_faults(orjson.loads(body)).as_json())
        except orjson.JSONDecodeError as exc:
            return _Answer(400, {"message": f"body: not valid JSON: {exc}"})
        except InvalidSettingError as exc:
            return _Answer(400, {"message": str(exc)})
    if name in _CONTROL_METHODS:
        allow = b"Allow: " + _CONTROL_METHODS[name].encode() + b"\r\n"
        return _Answer(405, {"message": "method not allowed"}, allow)
    return _Answer(404, {"message": f"no such control endpoint: {name}"})


class _Connection(asyncio.Protocol):
    """One client connection: parses requests in order and answers them in the same order.

    While a call waits out its injected latency the connection is *busy*: later requests (pipelined)
    stay in the buffer until it is answered. A client that leaves during the wait does not cancel
    the call: it is decided, and recorded if accepted, as a real service would; only the answer is lost.
    """

    def __init__(self, server: EmulatorServer) -> None:
        self._server = server
        self._emulator = server.emulator
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: RequestHead | None = None  # a request whose body has not fully arrived
        self._reader = BodyReader(MAX_BODY_BYTES)
        self._continue_sent = False
        self._busy: asyncio.TimerHandle | None = None
        self._paused = False
        self._open = False
        self._eof = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not registered as an asyncio.Transport, so no isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        self._open = True
        self._server.connections.add(self)
        if self._server.closing:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._open = False
        self._transport = None
        self._server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if not self._open:
            return
        self._buffer += data
        if self._busy is not None:
            if len(self._buffer) > MAX_HEAD_BYTES + MAX_BODY_BYTES and not self._paused:
                assert self._transport is not None
                self._transport.pause_reading()  # a pipelining client must wait for the slow call
                self._paused = True
            return
        self._process()

    def eof_received(self) -> bool:
        # The client will send nothing more: answer a call still in progress, then close.
        self._eof = True
        return self._busy is not None

    # state

    @property
    def idle(self) -> bool:
        """No call in progress and no request partly received."""
        return self._busy is None and self._head is None and not self._buffer

    def close(self) -> None:
        """Close once what was written is sent; a call in progress is still decided."""
        self._open = False
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close at once without an answer; a call waiting out its latency is cut, never decided."""
        if self._busy is not None:
            self._busy.cancel()
            self._busy = None
            self._server.pending.discard(self)
        self._open = False
        if self._transport is not None:
            self._transport.abort()

    # requests

    def _process(self) -> None:
        """Answer every complete request in the buffer, in order, until one must wait."""
        try:
            while self._open and self._busy is None:
                head = self._head or self._take_head()
                if head is None:
                    if self._eof:
                        self.close()
                    return
                body = self._reader.feed(self._buffer)
                if body is None:
                    if self._eof:
                        self.close()
                    elif head.expect_continue and not self._continue_sent and self._transport is not None:
                        self._transport.write(_CONTINUE)
                        self._continue_sent = True
                    return
                self._head = None
                self._dispatch(head, body)
        except HttpParseError as exc:
            self._head = None
            self._buffer.clear()
            self._respond(exc.status, orjson.dumps({"message": exc.message}), keep_alive=False)

    def _take_head(self) -> RequestHead | None:
        """Parse the request head at the start of the buffer, if it has fully arrived."""
        text = take_head(self._buffer)
        if text is None:
            return None
        self._head = head = parse_request_head(text, MAX_BODY_BYTES)
        self._reader.reset(head.length)
        self._continue_sent = False
        return head

    def _dispatch(self, head: RequestHead, body: bytes) -> None:
        path = head.path
        served = SERVED.get(path)
        if served is not None:
            if head.method != "POST":
                self._respond_json(405, {"message": "use POST"}, head.keep_alive, extra=b"Allow: POST\r\n")
                return
            delay = self._emulator.begin_call(served)
            if delay > 0:
                loop = asyncio.get_running_loop()
                self._busy = loop.call_later(delay, self._after_delay, head, body, served)
                self._server.pending.add(self)
                return
            self._finish_call(head, body, served)
        elif path.startswith(CONTROL_PREFIX):
            answer = control(self._emulator, head.method, path[len(CONTROL_PREFIX) :], body)
            self._respond_json(answer.status, answer.document, head.keep_alive, extra=answer.extra)
        else:
            self._respond_json(404, {"message": f"no such path: {path}"}, head.keep_alive)

    def _after_delay(self, head: RequestHead, body: bytes, served: Served) -> None:
        self._busy = None
        self._server.pending.discard(self)
        self._finish_call(head, body, served)
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        if self._transport is None:
            return  # the client left: the call was decided all the same
        if self._open:
            self._process()

    def _finish_call(self, head: RequestHead, body: bytes, served: Served) -> None:
        headers = head.headers
        reply = self._emulator.finish_call(
            body, headers.get("authorization"), served, headers.get("x-amz-security-token")
        )
        if reply is None:
            self._open = False
            if self._transport is not None:
                self._transport.abort()
            return
        self._respond(reply.status, reply.body, keep_alive=head.keep_alive, error_type=reply.error_type)

    def _respond_json(self, status: int, document: object, keep_alive: bool, *, extra: bytes = b"") -> None:
        self._respond(status, orjson.dumps(document), keep_alive=keep_alive, extra=extra)

    def _respond(
        self,
        status: int,
        body: bytes,
        *,
        keep_alive: bool,
        error_type: str | None = None,
        extra: bytes = b"",
    ) -> None:
        transport = self._transport
        if transport is None or not self._open:
            return
        keep_alive = keep_alive and not self._server.closing
        transport.write(self._server.response(status, body, keep_alive, error_type, extra))
        if not keep_alive:
            self.close()


class EmulatorServer:
    """The HTTP front-end of an :class:`~forwarder.emulator.service.Emulator` on a listening socket."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.connections: set[_Connection] = set()
        self.pending: set[_Connection] = set()  # connections whose call waits out a latency
        self.closing = False
        self._server: asyncio.AbstractServer | None = None
        self._request_ids = 0
        self._date_second = -1
        self._date = b""

    async def start(self, sock: socket.socket, tls: ssl.SSLContext | None = None) -> None:
        """Serve on ``sock``, a listening TCP socket (see :func:`bind_socket`); HTTPS with ``tls``."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), sock=sock, backlog=1024, ssl=tls)

    async def close(self, grace: float = 1.0) -> None:
        """Stop accepting, close idle connections, give calls in progress ``grace`` seconds, cut the rest.

        A call cut while it waits out its injected latency is never decided nor recorded: it counts
        in ``requests`` only, and its client sees the connection close without an answer.
        """
        self.closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.idle:
                connection.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while (self.connections or self.pending) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections | self.pending):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()

    def response(
        self, status: int, body: bytes, keep_alive: bool, error_type: str | None, extra: bytes
    ) -> bytes:
        """A whole JSON response, with the service's headers (``x-amzn-ErrorType``, ``x-amzn-RequestId``)."""
        head = b"HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
            status,
            _REASONS.get(status, b"Unknown"),
            self._http_date(),
            len(body),
        )
        if error_type is not None:
            head += b"x-amzn-ErrorType: " + error_type.encode() + b"\r\n"
        head += b"x-amzn-RequestId: " + self._next_request_id() + b"\r\n" + extra
        if not keep_alive:
            head += b"Connection: close\r\n"
        return head + b"\r\n" + body

    def _next_request_id(self) -> bytes:
        # Shaped like the service's UUIDs, but a counter: cheap, and ordered for whoever debugs a run.
        self._request_ids += 1
        return b"00000000-0000-4000-8000-%012x" % self._request_ids

    def _http_date(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = formatdate(now, usegmt=True).encode()
        return self._date


def bind_socket(host: str, port: int, *, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on the first address ``host`` resolves to; port 0 picks a free port.

    Binding one socket ourselves (rather than letting the loop bind every address of a name such as
    ``localhost``) guarantees one port to report even when ``port`` is 0.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    return socket.create_server(sockaddr[:2], family=family, backlog=backlog)


def format_url(host: str, port: int, *, tls: bool = False) -> str:
    """``http://host:port`` (``https://`` with ``tls``), with an IPv6 literal in brackets."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


async def serve(
    emulator: Emulator,
    sock: socket.socket,
    *,
    stop: asyncio.Event,
    ready: Callable[[], None] | None = None,
    grace: float = 1.0,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Serve ``emulator`` on the listening ``sock`` until ``stop`` is set, then close (see
    :meth:`EmulatorServer.close`). ``ready`` is called once connections are accepted. ``sock`` is
    closed on return. With ``tls`` it serves HTTPS.
    """
    server = EmulatorServer(emulator)
    try:
        await server.start(sock, tls)
        if ready is not None:
            ready()
        await stop.wait()
    finally:
        await server.close(grace)
        sock.close()
