"""HTTP/1.1: one message parser for both sides, and the fast transport's keep-alive client pool.

**Parsing** (:func:`take_head`, :func:`parse_request_head`, :func:`parse_response_head`,
:class:`BodyReader`) is shared by :class:`HttpClient` (responses) and the emulator's wire layer
(requests), so the two read the framing the same way: a head of at most :data:`MAX_HEAD_BYTES`, header
names lower-cased and repeated headers joined with ``", "``, a body framed by ``Content-Length``, by the
chunked coding (extensions and trailers ignored) or, for a response only, by the end of the connection.
Whatever breaks the framing raises :class:`HttpParseError`, whose ``status`` is what a server answers.

**The client** (:class:`HttpClient`) does only what the ``fast`` transport needs: one origin, ``POST``
with a body the caller built and signed, responses read whole into memory. No proxies (see
:func:`proxy_configured`; the transport uses aiohttp then), no redirects, no compression, no cookies, no
pipelining. Why not aiohttp everywhere: docs/benchmarks.md measures what its client costs per call.

Client failures: a connection refused, reset or closed before the response is complete, or a malformed
response, raises :class:`HttpConnectionError`; the total timeout raises :class:`TimeoutError`. Either way
the connection is closed and leaves the pool. Nothing is retried here, so nothing is ever sent twice: an
idle connection the server is known to have closed (its EOF arrived) is skipped before a byte is written
to it, but a server that closes an idle connection while our request is on its way fails that request
with :class:`HttpConnectionError`, for the caller to retry.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Final, NamedTuple, cast
from urllib.parse import urlsplit

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
KEEPALIVE_S: Final = 15.0  # a connection idle longer is closed, not reused: the server may be closing it
MAX_HEAD_BYTES: Final = 64 * 1024
MAX_LINE_BYTES: Final = 4096  # a chunk-size or trailer line
MAX_RESPONSE_BODY_BYTES: Final = 16 * 1024 * 1024
_HEX_DIGITS: Final = frozenset(b"0123456789abcdefABCDEF")
UNTIL_EOF: Final = -1  # a body length: the body ends when the connection does (responses only)
CHUNKED: Final = -2  # a body length: the chunked transfer coding
_SIZE_LINE: Final = -1  # BodyReader._chunk: a chunk-size line comes next
_TRAILER: Final = -2  # BodyReader._chunk: trailer lines come next, until a blank one


# --- Parsing, shared by the client and the emulator's server -----------------------------------------


class HttpParseError(ValueError):
    """A message that breaks HTTP/1.1's framing; ``status`` is what a server answers it with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def take_head(buffer: bytearray) -> str | None:
    """Remove the head (start line and header lines) from the front of ``buffer`` and return it.

    ``None`` while the blank line that ends it has not arrived; the head is decoded as latin-1 and
    returned without that blank line. A head over :data:`MAX_HEAD_BYTES` raises :class:`HttpParseError`
    (431) whether or not it is complete.
    """
    end = buffer.find(b"\r\n\r\n")
    if end > MAX_HEAD_BYTES or (end < 0 and len(buffer) > MAX_HEAD_BYTES):
        raise HttpParseError("head too large", 431)
    if end < 0:
        return None
    head = bytes(buffer[:end]).decode("latin-1")
    del buffer[: end + 4]
    return head


def parse_fields(lines: Sequence[str]) -> dict[str, str]:
    """Header lines as a dict: lower-case names, stripped values, a repeated name's values joined by ``", "``.

    A line without a colon, with an empty name or with whitespace around the name (which also refuses
    obsolete line folding) raises :class:`HttpParseError`.
    """
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpParseError(f"malformed header line {line[:100]!r}")
        name, value = name.lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _tokens(value: str) -> set[str]:
    return {token.strip() for token in value.lower().split(",")}


def _content_length(value: str, max_body: int) -> int:
    """The body length a ``Content-Length`` value gives (repeats, joined by ``", "``, must be equal).

    :class:`HttpParseError` if it is not a decimal number (400) or exceeds ``max_body`` (413).
    """
    values = {v.strip() for v in value.split(",")}
    text = values.pop() if len(values) == 1 else ""
    if not (text.isascii() and text.isdigit()):  # isdigit() alone takes "²", which int() refuses
        raise HttpParseError(f"bad Content-Length {value[:100]!r}")
    length = int(text)
    if length > max_body:
        raise HttpParseError(f"body over {max_body} bytes", 413)
    return length


class RequestHead(NamedTuple):
    """A parsed request head. ``length`` is the body's size in bytes, or :data:`CHUNKED`."""

    method: str
    path: str  # the target without its query
    headers: dict[str, str]
    keep_alive: bool  # HTTP/1.1 without ``Connection: close``
    length: int
    expect_continue: bool


def parse_request_head(head: str, max_body: int) -> RequestHead:
    """Parse a request head (from :func:`take_head`).

    Served: HTTP/1.0 (closed after the answer) and HTTP/1.1 (505 otherwise); ``Content-Length`` or the
    chunked coding alone (501 for another coding, 400 for both); ``Expect: 100-continue`` (417 for another
    expectation); a declared body over ``max_body`` is 413.
    """
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HttpParseError("malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if version.startswith("HTTP/"):
            raise HttpParseError("only HTTP/1.0 and HTTP/1.1 are served", 505)
        raise HttpParseError("malformed request line")
    headers = parse_fields(lines[1:])
    coding = headers.get("transfer-encoding")
    length = headers.get("content-length")
    if coding is not None:
        if coding.lower() != "chunked":
            raise HttpParseError("only the chunked transfer coding is served", 501)
        if length is not None:
            raise HttpParseError("both Content-Length and Transfer-Encoding")
        size = CHUNKED
    else:
        size = 0 if length is None else _content_length(length, max_body)
    expect = headers.get("expect")
    if expect is not None and expect.lower() != "100-continue":
        raise HttpParseError("only Expect: 100-continue is served", 417)
    # HTTP/1.0 connections are closed after the answer even when the client asks otherwise.
    keep_alive = version == "HTTP/1.1" and "close" not in _tokens(headers.get("connection", ""))
    path = target.split("?", 1)[0]
    return RequestHead(method, path, headers, keep_alive, size, expect is not None)


class ResponseHead(NamedTuple):
    """A parsed response head. ``length``: the body's size in bytes, :data:`CHUNKED` or :data:`UNTIL_EOF`."""

    status: int
    headers: dict[str, str]
    length: int
    keep_alive: bool  # HTTP/1.1, no ``Connection: close`` and a body that does not end with the connection


def parse_response_head(head: str, max_body: int) -> ResponseHead:
    """Parse a response head (from :func:`take_head`).

    An interim response (1xx but 101) comes back with its status and no headers, for the caller to skip;
    101 Switching Protocols, never asked for, raises :class:`HttpParseError`.
    """
    lines = head.split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not code.isdigit() or rest[3:4] not in ("", " "):
        raise HttpParseError(f"status line {lines[0][:100]!r}")
    status = int(code)
    if status == 101:
        raise HttpParseError("101 Switching Protocols, which was not asked for")
    if status < 200:
        return ResponseHead(status, {}, 0, True)
    headers = parse_fields(lines[1:])
    length = headers.get("content-length")
    if status in (204, 304):
        size = 0
    elif "transfer-encoding" in headers:
        chunked = headers["transfer-encoding"].lower().rsplit(",", 1)[-1].strip() == "chunked"
        size = CHUNKED if chunked else UNTIL_EOF
    elif length is not None:
        size = _content_length(length, max_body)
    else:
        size = UNTIL_EOF
    closes = "close" in _tokens(headers.get("connection", ""))
    keep_alive = version == "HTTP/1.1" and not closes and size != UNTIL_EOF
    return ResponseHead(status, headers, size, keep_alive)


class BodyReader:
    """Reads one message body at a time from the front of a buffer, as its bytes arrive.

    :meth:`reset` with the head's length starts a message; :meth:`feed` consumes from the buffer what
    belongs to the body and returns the whole body once it is complete (``None`` until then, leaving
    what follows the body in the buffer). A body framed by :data:`UNTIL_EOF` is complete only when the
    connection ends: :meth:`at_eof`. A malformed chunk raises :class:`HttpParseError` (400), a body over
    ``max_body`` bytes too (413).
    """

    __slots__ = ("_body", "_chunk", "_length", "_max_body")

    def __init__(self, max_body: int) -> None:
        self._max_body = max_body
        self._length = 0
        self._chunk = _SIZE_LINE  # chunked: bytes left of the current chunk and its CRLF, or a state
        self._body = bytearray()

    def reset(self, length: int) -> None:
        """Start reading a body of ``length`` bytes, or :data:`CHUNKED`, or :data:`UNTIL_EOF`."""
        self._length = length
        self._chunk = _SIZE_LINE
        self._body.clear()

    def feed(self, buffer: bytearray) -> bytes | None:
        """The body, once ``buffer`` has held all of it (consumed from its front); else ``None``."""
        length = self._length
        if length >= 0:
            if len(buffer) < length:
                return None
            body = bytes(buffer[:length])
            del buffer[:length]
            return body
        if length == CHUNKED:
            return self._feed_chunks(buffer)
        if len(buffer) > self._max_body:
            raise HttpParseError(f"body over {self._max_body} bytes", 413)
        return None

    def at_eof(self, buffer: bytearray) -> bytes | None:
        """The body when the connection has ended: all of ``buffer`` if framed by EOF, else ``None``."""
        if self._length != UNTIL_EOF:
            return None
        body = bytes(buffer)
        buffer.clear()
        return body

    def _feed_chunks(self, buffer: bytearray) -> bytes | None:
        while True:
            if self._chunk >= 0:  # chunk data and its CRLF
                if len(buffer) < self._chunk:
                    return None
                if buffer[self._chunk - 2 : self._chunk] != b"\r\n":
                    raise HttpParseError("chunk not followed by CRLF")
                self._body += buffer[: self._chunk - 2]
                del buffer[: self._chunk]
                self._chunk = _SIZE_LINE
                continue
            eol = buffer.find(b"\r\n")
            if eol < 0:
                if len(buffer) > MAX_LINE_BYTES:
                    raise HttpParseError("chunk-size or trailer line too long")
                return None
            line = bytes(buffer[:eol])
            del buffer[: eol + 2]
            if self._chunk == _TRAILER:  # trailer fields, ignored, until the blank line
                if not line:
                    return bytes(self._body)
                continue
            digits = line.split(b";", 1)[0].strip()  # chunk extensions, after ";", are ignored
            if not digits or len(digits) > 8 or not _HEX_DIGITS.issuperset(digits):
                raise HttpParseError(f"malformed chunk size {line[:100]!r}")
            size = int(digits, 16)
            if len(self._body) + size > self._max_body:
                raise HttpParseError(f"body over {self._max_body} bytes", 413)
            self._chunk = size + 2 if size else _TRAILER


# --- The client ----------------------------------------------------------------------------------------


class HttpConnectionError(ConnectionError):
    """No complete response came back; the request may or may not have reached the server."""


class Response(NamedTuple):
    """A complete response; header names are lower-case, repeated headers joined with ``", "``."""

    status: int
    headers: dict[str, str]
    body: bytes


def host_header(url: str) -> str:
    """The ``Host`` botocore's SigV4 signs for ``url``: the lower-case host, ``:port`` unless the default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def proxy_configured(url: str) -> bool:
    """Whether the environment routes ``url`` through a proxy (``*_PROXY`` set, host not in ``NO_PROXY``)."""
    parts = urlsplit(url)
    return parts.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host_header(url))


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection, carrying one request at a time."""

    def __init__(self, client: HttpClient) -> None:
        self._client = client
        self.transport: asyncio.Transport | None = None
        self.reusable = False  # connected, no EOF, no error, and the last response allows keep-alive
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Response] | None = None
        self._buffer = bytearray()
        self._head: ResponseHead | None = None  # None until the (final) response head is parsed
        self._reader = BodyReader(MAX_RESPONSE_BODY_BYTES)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport, hence a cast, not a check.
        self.transport = cast(asyncio.Transport, transport)
        self.reusable = True
        self._client._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._client._connections.discard(self)
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        head = self._head
        body = self._reader.at_eof(self._buffer) if head is not None and exc is None else None
        if head is not None and body is not None:
            waiter.set_result(Response(head.status, head.headers, body))
        elif self._client._closed:
            waiter.set_exception(HttpConnectionError("the client was closed"))
        else:
            detail = f": {exc}" if exc else ""
            waiter.set_exception(HttpConnectionError(f"connection closed before a complete response{detail}"))

    def eof_received(self) -> bool:
        self.reusable = False  # returning False closes the transport; connection_lost ends a request
        return False

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.abort()  # bytes nobody asked for: this connection cannot be trusted with a request
            return
        self._buffer += data
        try:
            response = self._parse()
        except HttpParseError as exc:
            waiter.set_exception(HttpConnectionError(f"malformed response: {exc.message}"))
            self.abort()
            return
        if response is None:
            return
        if self._buffer:
            self.reusable = False  # bytes after the response: the next one would be misread
        waiter.set_result(response)

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    async def request(self, data: bytes, deadline: float) -> Response:
        """Send ``data`` (a whole request) and wait for the response until ``deadline`` (loop time)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        self._waiter, self._head = waiter, None
        self.transport.write(data)  # a few hundred KiB at most, and the answer is awaited: no drain
        # A bare timer rather than asyncio.timeout() or wait_for(): it costs less a call (docs/benchmarks.md).
        timer = loop.call_at(deadline, self._time_out)
        try:
            return await waiter
        except BaseException:
            self.abort()  # timeout, error or cancellation: a late response would be misread later
            raise
        finally:
            timer.cancel()
            self._waiter = None

    def _time_out(self) -> None:
        if self._waiter is not None and not self._waiter.done():  # else the response just made it
            timeout = self._client._timeout_s
            self._waiter.set_exception(TimeoutError(f"no complete response within {timeout:g} s"))
            self.abort()

    def _parse(self) -> Response | None:
        """Consume what the buffer holds of the response; the response once it is complete."""
        head = self._head
        while head is None:
            text = take_head(self._buffer)
            if text is None:
                return None
            parsed = parse_response_head(text, MAX_RESPONSE_BODY_BYTES)
            if parsed.status >= 200:  # else an interim response (100 Continue): the real one follows
                head = self._head = parsed
                self._reader.reset(parsed.length)
                if not parsed.keep_alive:
                    self.reusable = False
        body = self._reader.feed(self._buffer)
        return None if body is None else Response(head.status, head.headers, body)


class HttpClient:
    """``POST`` to one endpoint over at most ``max_connections`` keep-alive connections.

    ``url`` is the endpoint's base (``http://host:port`` or ``https://host``); its path, if any, prefixes
    every request's. A request takes the most recently used idle connection, or opens one while fewer
    than ``max_connections`` exist, or waits for one in FIFO order. ``timeout_s`` bounds each
    :meth:`post` whole: waiting for a connection, connecting, sending and receiving. For https the
    context is ``ssl_context``, else the default one with ``AWS_CA_BUNDLE`` as its CA file if set.
    """

    def __init__(
        self, url: str, *, max_connections: int, timeout_s: float, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or max_connections < 1 or timeout_s <= 0:
            raise ValueError(f"need an http(s) URL with a host, max_connections >= 1, timeout_s > 0: {url!r}")
        self._hostname = parts.hostname
        self._port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self._prefix = parts.path.rstrip("/")
        self._host = host_header(url)
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            cafile = os.environ.get("AWS_CA_BUNDLE") or None
            self._ssl = ssl_context or ssl.create_default_context(cafile=cafile)
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_connections)  # one per request in progress
        self._idle: list[_Connection] = []
        self._connections: set[_Connection] = set()
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections established now, idle or busy."""
        return len(self._connections)

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> Response:
        """Send ``POST path`` with ``Host``, ``Content-Length`` and ``headers`` (which must name neither).

        Raises :class:`HttpConnectionError` or :class:`TimeoutError` (see the module's docstring), and
        :class:`ValueError` before sending anything if the path or a header holds a line break.
        """
        head = f"POST {self._prefix}{path} HTTP/1.1\r\nHost: {self._host}\r\nContent-Length: {len(body)}\r\n"
        head += "".join([f"{name}: {value}\r\n" for name, value in headers.items()]) + "\r\n"
        # Exactly one CRLF per line, and no lone CR or LF: a value cannot smuggle in a header of its own.
        lines = len(headers) + 4
        if head.count("\n") != lines or head.count("\r") != lines:
            raise ValueError("a header name, a header value or the path holds a line break")
        data = head.encode("latin-1") + body
        if self._closed:
            raise HttpConnectionError("the client is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        if self._slots.locked():
            try:
                async with asyncio.timeout_at(deadline):
                    await self._slots.acquire()
            except TimeoutError:
                raise TimeoutError(f"no free connection within {self._timeout_s:g} s") from None
        else:
            await self._slots.acquire()  # returns at once
        try:
            connection = self._take_idle(loop.time()) or await self._connect(deadline)
            response = await connection.request(data, deadline)
            if connection.reusable and not self._closed:
                connection.idle_since = loop.time()
                self._idle.append(connection)
            else:
                connection.abort()
            return response
        finally:
            self._slots.release()

    def _take_idle(self, now: float) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            transport = connection.transport
            fresh = now - connection.idle_since < KEEPALIVE_S
            if connection.reusable and fresh and transport is not None and not transport.is_closing():
                return connection
            connection.abort()
        return None

    async def _connect(self, deadline: float) -> _Connection:
        if self._closed:
            raise HttpConnectionError("the client is closed")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self), self._hostname, self._port, ssl=self._ssl
                )
        except TimeoutError:
            raise TimeoutError(f"could not connect to {self._host} within {self._timeout_s:g} s") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS verification
            raise HttpConnectionError(f"could not connect to {self._host}: {exc}") from exc
        if self._closed:  # closed while connecting
            connection.abort()
            raise HttpConnectionError("the client is closed")
        return connection

    async def close(self) -> None:
        """Close every connection: requests in progress and later ones raise :class:`HttpConnectionError`."""
        self._closed = True
        self._idle.clear()
        for connection in list(self._connections):
            connection.abort()  # not close(): a TLS close waits for the server's close_notify, up to 30 s
        await asyncio.sleep(0)  # let the transports call connection_lost
