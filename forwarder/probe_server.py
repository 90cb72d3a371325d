"""``/metrics`` (Prometheus text), ``/healthz`` and ``/readyz`` of one replica, served from a thread of
their own.

Not from the event loop they observe: a loop that stopped turning (a blocking call, a livelock) would
answer nothing at all there, and ``/metrics`` would go dark exactly when it is needed. From this thread
``/healthz`` answers 503 with the reason ("event loop stalled for 16s") and the metrics stay readable.
What the handlers read is safe from another thread: prometheus_client's registry is thread-safe, and the
probes (:class:`HealthSource`) only read flags and timestamps the loop writes.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from forwarder.metrics import HealthSource, Metrics, PortInUseError
from forwarder.redaction import redact

REQUEST_TIMEOUT_S = 10.0  # a client that sends nothing does not hold a handler thread longer


class _Handler(BaseHTTPRequestHandler):
    """One request; the server it belongs to holds the metrics and the health source."""

    server: _Server
    timeout: ClassVar[float] = REQUEST_TIMEOUT_S

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        health = self.server.health
        if path == "/metrics":
            self._send(200, generate_latest(self.server.metrics.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._probe(health.liveness())
        elif path == "/readyz":
            self._probe(health.readiness())
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _probe(self, check: tuple[bool, str]) -> None:
        ok, detail = check
        # The detail may quote a service's error message: no credential it holds is served.
        text = ("ok: " if ok else "not ok: ") + redact(detail) + "\n"
        self._send(200 if ok else 503, text.encode(), "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """No access log (a probe every few seconds is noise)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a request in progress never holds the process at exit

    def __init__(self, address: tuple[str, int], metrics: Metrics, health: HealthSource) -> None:
        self.metrics = metrics
        self.health = health
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)


class ObservabilityServer:
    """The probe and metrics server; :meth:`start` binds and serves on a daemon thread."""

    def __init__(self, metrics: Metrics, health: HealthSource) -> None:
        self._metrics = metrics
        self._health = health
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        """Bind and serve; return the port (useful when ``port`` is 0).

        Raises :class:`PortInUseError` when the address cannot be bound."""
        try:
            server = _Server((host, port), self._metrics, self._health)
        except OSError as exc:
            raise PortInUseError(host, port, exc.strerror or str(exc)) from None
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="probes", daemon=True
        )
        self._thread.start()
        return self.port

    async def stop(self) -> None:
        """Stop serving (bounded: the serving loop notices within its poll interval)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        await asyncio.to_thread(server.shutdown)
        server.server_close()
        thread.join(5)
        self._server = self._thread = None
