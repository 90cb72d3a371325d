"""The PutEvents emulator as a process, and raw HTTP to it: one way to start it for the tests, the chaos
run and the bench.

:func:`start_emulator` runs ``python -m forwarder emulator --port 0`` and waits (bounded) for the one line
the emulator prints on stdout once it listens; the process is registered in
:data:`~tests.harness.processes.STARTED` and stopped by its pid.
"""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from tests.harness.processes import REPO, STARTED, stop_process, unique

START_TIMEOUT = 30.0
_SESSION = boto3.session.Session()


@dataclass
class Response:
    """A raw HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class EmulatorProcess:
    """A running ``forwarder emulator``: its process, its base URL, its record file (never written when
    started with ``record=False``) and the file of its stderr."""

    proc: subprocess.Popen[str]
    url: str
    record: Path
    stderr: Path
    ca: Path | None = None  # the CA that signed its certificate, when it serves HTTPS
    _client: Any = field(default=None, repr=False)

    @property
    def client(self) -> Any:
        """A stock boto3 ``personalize-events`` client on this emulator, one attempt per call."""
        if self._client is None:
            self._client = _SESSION.client(
                "personalize-events",
                endpoint_url=self.url,
                region_name="us-east-1",
                aws_access_key_id="x",
                aws_secret_access_key="y",
                config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=20),
                verify=str(self.ca) if self.ca else None,
            )
        return self._client

    def get(self, path: str) -> Response:
        return http(f"{self.url}{path}", ca=self.ca)

    def stats(self) -> dict[str, Any]:
        """The emulator's counters."""
        response = self.get("/_emulator/stats")
        assert response.status == 200, response.body
        result: dict[str, Any] = response.json()
        return result

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change fault settings while it runs; the settings now in force."""
        body = json.dumps(changes).encode()
        response = http(f"{self.url}/_emulator/faults", body, method="POST", ca=self.ca)
        assert response.status == 200, response.body
        result: dict[str, Any] = response.json()
        return result

    def calls(self, operation: str = "PutEvents") -> list[dict[str, Any]]:
        """Every recorded call of ``operation``, without the record's ``operation`` field."""
        return [body for name, body in self.recorded() if name == operation]

    def recorded(self) -> list[tuple[str, dict[str, Any]]]:
        """Every recorded call, in order, as (operation, body). Lines are split on "\\n" only, as a JSON
        string may hold U+2028; a last line still being written is left for the next read."""
        if not self.record.exists():
            return []
        lines = self.record.read_bytes().split(b"\n")
        out = []
        for line in lines[:-1]:
            body = json.loads(line)
            assert next(iter(body)) == "operation", "the operation comes first"
            out.append((body.pop("operation"), body))
        return out

    def events(self) -> list[dict[str, Any]]:
        """Every accepted event, with its call's userId/sessionId/trackingId merged in."""
        out = []
        for call in self.calls():
            for ev in call["eventList"]:
                out.append(
                    {
                        **ev,
                        "_trackingId": call["trackingId"],
                        "_sessionId": call["sessionId"],
                        "_userId": call.get("userId"),
                    }
                )
        return out

    def post_events(self, body: bytes, *, service: str | None = "personalize") -> Response:
        """POST ``body`` to ``/events``, SigV4-signed for ``service`` (unsigned when ``None``)."""
        return signed_post(f"{self.url}/events", body, service=service)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal by pid and wait (bounded); the exit status."""
        return stop_process(self.proc, sig, timeout)


def start_emulator(
    directory: Path,
    *args: str,
    record: bool = True,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    ca: Path | None = None,
) -> EmulatorProcess:
    """Start the emulator on a free loopback port with the options ``args`` and wait (bounded) for its
    listening line. Its record file and its stderr (``log``) go to ``directory`` under unique names.
    ``ca``: the CA that signed the certificate of ``--tls-cert``, trusted by the control requests."""
    record_path = directory / f"{unique('record')}.jsonl"
    log = log or directory / f"{unique('emulator')}.log"
    argv = [sys.executable, "-m", "forwarder", "emulator", "--port", "0"]
    if record:
        argv += ["--record", str(record_path)]
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [*argv, *args], stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO, env=env
        )
    STARTED.append(proc)
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        readable, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if readable:
            line = proc.stdout.readline()
            break
    match = re.fullmatch(r"emulator listening on (https?://\S+)\n", line)
    if match is None:
        stop_process(proc)
        raise AssertionError(f"emulator did not start: {line!r}; stderr: {log.read_text()[-2000:]!r}")
    return EmulatorProcess(proc, match.group(1), record_path, log, ca)


def http(
    url: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    ca: Path | None = None,
) -> Response:
    """One HTTP request with urllib (no proxy; HTTPS trusting ``ca``); 4xx and 5xx are returned, not raised."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(request, timeout=10) as response:
            return Response(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Response(exc.code, dict(exc.headers.items()), exc.read())


def signed_headers(url: str, body: bytes, *, service: str | None = "personalize") -> dict[str, str]:
    """Headers of a JSON POST of ``body``, signed with SigV4 for ``service`` (key "x"), or unsigned."""
    request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/json"})
    if service is not None:
        SigV4Auth(Credentials("x", "y"), service, "us-east-1").add_auth(request)
    return dict(request.headers.items())


def signed_post(url: str, body: bytes, *, service: str | None = "personalize") -> Response:
    """POST ``body`` as JSON, signed with SigV4 for ``service`` (the HMAC of key "x"), or unsigned."""
    return http(url, body, signed_headers(url, body, service=service), method="POST")


class RawConnection:
    """A bare TCP connection to the emulator, to send exact bytes and read answers one by one."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> Response:
        """Read one answer: status line, headers, then a Content-Length body."""
        status_line = self.reader.readline()
        assert status_line.startswith(b"HTTP/1.1 "), status_line
        headers: dict[str, str] = {}
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.reader.read(int(headers.get("content-length", "0")))
        return Response(int(status_line.split()[1]), headers, body)

    def closed_by_peer(self) -> bool:
        """True once the emulator has closed its side (reads end of file)."""
        return self.reader.read(1) == b""

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def request_bytes(
    method: str, path: str, headers: dict[str, str], body: bytes = b"", version: str = "1.1"
) -> bytes:
    """An HTTP request as bytes; Content-Length is added when there is a body and none is given."""
    lines = [f"{method} {path} HTTP/{version}", "Host: emulator"]
    if body and not any(name.lower() in ("content-length", "transfer-encoding") for name in headers):
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def request_of(event: Any) -> dict[str, Any]:
    """The PutEvents request that sends one decoded :class:`~forwarder.decode.Event` alone."""
    body: dict[str, Any] = {
        "trackingId": event.key.tracking_id,
        "sessionId": event.key.session_id,
        "eventList": [event.wire],
    }
    if event.key.user_id is not None:
        body["userId"] = event.key.user_id
    return body
