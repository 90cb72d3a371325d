"""A small HTTP CONNECT proxy on loopback, for tests of HTTPS through a proxy (``HTTPS_PROXY``).

:class:`ConnectProxy` runs an asyncio server in a thread of its own: ``CONNECT host:port`` to a loopback
target opens a tunnel and copies bytes both ways until either side closes; anything else is answered
405, a target off loopback 403. It is bounded: at most ``max_tunnels`` at once (503 beyond), a request
head read within 10 s, a tunnel idle for ``idle_s`` is closed, and :meth:`stop` closes the server and
every tunnel and joins the thread. ``tunnels`` counts the tunnels opened, so a test can tell that the
traffic went through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Final

LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})
_HEAD_TIMEOUT_S: Final = 10.0


class ConnectProxy:
    """``with ConnectProxy() as proxy:`` then ``HTTPS_PROXY=proxy.url``."""

    def __init__(self, *, max_tunnels: int = 256, idle_s: float = 60.0) -> None:
        self.tunnels = 0  # tunnels opened so far
        self.refused = 0  # requests answered with an error
        self._max = max_tunnels
        self._idle_s = idle_s
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="connect-proxy", daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        """The proxy's URL, for ``HTTPS_PROXY``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ConnectProxy:
        """Listen on a free loopback port; returns once it accepts connections."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(timeout=10)
        return self

    def stop(self) -> None:
        """Close the server and every tunnel, stop the loop and join its thread (bounded)."""
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> ConnectProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        await asyncio.sleep(0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            target = await self._target(reader, writer)
            if target is None:
                return
            try:
                upstream_reader, upstream_writer = await asyncio.wait_for(
                    asyncio.open_connection(*target), _HEAD_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                await self._refuse(writer, b"502 Bad Gateway")
                return
            self._open.add(upstream_writer)
            self.tunnels += 1
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
        finally:
            self._open.discard(writer)
            writer.transport.abort()

    async def _target(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, int] | None:
        """The ``(host, port)`` of a valid CONNECT request, or ``None`` after answering an error."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT_S)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            return None
        method, _, rest = head.decode("latin-1").partition(" ")
        authority = rest.split(" ", 1)[0]
        host, _, port = authority.rpartition(":")
        host = host.strip("[]")
        if method != "CONNECT" or not port.isdigit():
            await self._refuse(writer, b"405 Method Not Allowed")
            return None
        if host not in LOOPBACK:
            await self._refuse(writer, b"403 Forbidden")
            return None
        if self.tunnels_open() >= self._max:
            await self._refuse(writer, b"503 Service Unavailable")
            return None
        return host, int(port)

    def tunnels_open(self) -> int:
        """Tunnels open now (each holds two streams)."""
        return len(self._open) // 2

    async def _refuse(self, writer: asyncio.StreamWriter, status: bytes) -> None:
        self.refused += 1
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        with contextlib.suppress(OSError):
            await writer.drain()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy until EOF, an error or ``idle_s`` without a byte; then close the writing side."""
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), self._idle_s)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, TimeoutError):
            pass
        finally:
            self._open.discard(writer)
            writer.transport.abort()
