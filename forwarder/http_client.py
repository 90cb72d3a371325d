"""A lean HTTP/1.1 client for one endpoint: ``POST`` over a keep-alive connection pool.

Why not aiohttp: at ~1,200 PutEvents calls/s its client machinery was 29 % of the forwarder's CPU (~200 µs
a call). This client does only what the ``fast`` transport needs: one origin, ``POST`` with a body the
caller built and signed, responses read whole into memory. No proxies (see :func:`proxy_configured`), no
redirects, no compression, no cookies, no pipelining.

Failures: a connection refused, reset or closed before the response is complete, or a malformed response,
raises :class:`HttpConnectionError`; the total timeout raises :class:`TimeoutError`. Either way the
connection is closed and leaves the pool. Nothing is retried here, so nothing is ever sent twice: an idle
connection the server is known to have closed (its EOF arrived) is skipped before a byte is written to
it, but a server that closes an idle connection while our request is on its way fails that request
with :class:`HttpConnectionError`, for the caller to retry.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import urllib.request
from collections.abc import Mapping
from typing import Final, NamedTuple, cast
from urllib.parse import urlsplit

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
KEEPALIVE_S: Final = 15.0  # a connection idle longer is closed, not reused: the server may be closing it
MAX_HEAD_BYTES: Final = 64 * 1024
MAX_BODY_BYTES: Final = 16 * 1024 * 1024
_HEX_DIGITS: Final = frozenset(b"0123456789abcdefABCDEF")
_UNTIL_EOF: Final = -1
_CHUNKED: Final = -2


class HttpConnectionError(ConnectionError):
    """No complete response came back; the request may or may not have reached the server."""


def _malformed(what: str) -> HttpConnectionError:
    return HttpConnectionError(f"malformed response: {what}")


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
        self._status = 0  # 0 until the response head is parsed
        self._headers: dict[str, str] = {}
        self._length = 0  # body bytes expected, or _UNTIL_EOF, or _CHUNKED
        self._chunk = -1  # chunked: bytes left of the current chunk + CRLF; -1 size line next; -2 trailer
        self._body = bytearray()

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
        if self._status and self._length == _UNTIL_EOF and exc is None:
            waiter.set_result(Response(self._status, self._headers, bytes(self._buffer)))
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
            if not self._parse():
                return
        except HttpConnectionError as exc:
            waiter.set_exception(exc)
            self.abort()
            return
        if self._buffer:
            self.reusable = False  # bytes after the response: the next one would be misread
        waiter.set_result(Response(self._status, self._headers, bytes(self._body)))

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    async def request(self, data: bytes, deadline: float) -> Response:
        """Send ``data`` (a whole request) and wait for the response until ``deadline`` (loop time)."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        self._waiter, self._status, self._chunk = waiter, 0, -1
        self._body.clear()
        self.transport.write(data)  # a few hundred KiB at most, and the answer is awaited: no drain
        # A bare timer: asyncio.timeout() costs ~4-8 µs more a call, asyncio.wait_for() ~7-20 (measured).
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

    def _parse(self) -> bool:
        """Consume what the buffer holds of the response; True once it is complete."""
        buffer = self._buffer
        while not self._status:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise _malformed("head too large")
                return False
            self._parse_head(bytes(buffer[:end]).decode("latin-1"))
            del buffer[: end + 4]
        if self._length >= 0:
            if len(buffer) < self._length:
                return False
            self._body += buffer[: self._length]
            del buffer[: self._length]
            return True
        if self._length == _CHUNKED:
            return self._parse_chunks()
        if len(buffer) > MAX_BODY_BYTES:
            raise _malformed("body too large")
        return False  # until EOF: connection_lost completes it

    def _parse_head(self, head: str) -> None:
        lines = head.split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if version not in ("HTTP/1.1", "HTTP/1.0") or not code.isdigit() or rest[3:4] not in ("", " "):
            raise _malformed(f"status line {lines[0][:100]!r}")
        status = int(code)
        if status == 101:
            raise _malformed("101 Switching Protocols, which was not asked for")
        if status < 200:
            return  # an interim response (100 Continue): the real one follows
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _malformed(f"header line {line[:100]!r}")
            name, value = name.lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        length = headers.get("content-length")
        if status in (204, 304):
            self._length = 0
        elif "transfer-encoding" in headers:
            chunked = headers["transfer-encoding"].lower().rsplit(",", 1)[-1].strip() == "chunked"
            self._length = _CHUNKED if chunked else _UNTIL_EOF
        elif length is not None:
            if not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY_BYTES:
                raise _malformed(f"Content-Length {length[:100]!r}")
            self._length = int(length)
        else:
            self._length = _UNTIL_EOF
        tokens = {t.strip() for t in headers.get("connection", "").lower().split(",")}
        if version != "HTTP/1.1" or "close" in tokens or self._length == _UNTIL_EOF:
            self.reusable = False
        self._status, self._headers = status, headers

    def _parse_chunks(self) -> bool:
        buffer = self._buffer
        while True:
            if self._chunk >= 0:  # chunk data and its CRLF
                if len(buffer) < self._chunk:
                    return False
                if buffer[self._chunk - 2 : self._chunk] != b"\r\n":
                    raise _malformed("chunk not followed by CRLF")
                self._body += buffer[: self._chunk - 2]
                del buffer[: self._chunk]
                self._chunk = -1
                continue
            eol = buffer.find(b"\r\n")
            if eol < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise _malformed("chunk line too long")
                return False
            line = bytes(buffer[:eol])
            del buffer[: eol + 2]
            if self._chunk == -2:  # trailer fields, ignored, until the blank line
                if not line:
                    return True
                continue
            digits = line.split(b";", 1)[0].strip()  # chunk extensions, after ";", are ignored
            if not digits or len(digits) > 8 or not _HEX_DIGITS.issuperset(digits):
                raise _malformed(f"chunk size {line[:100]!r}")
            size = int(digits, 16)
            if len(self._body) + size > MAX_BODY_BYTES:
                raise _malformed("body too large")
            self._chunk = size + 2 if size else -2


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
