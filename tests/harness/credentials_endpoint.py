"""A container-credentials endpoint on loopback (what ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` points at), and
the environment that makes botocore's chain use it alone.

:class:`CredentialsEndpoint` answers ``GET`` with temporary credentials expiring ``expires_in_s`` from
now; from request number ``slow_from`` on it first sleeps ``delay_s`` (longer than botocore's 2 s
timeout, so each refresh attempt fails after its retries). It runs in a thread; :meth:`stop` shuts it
down and joins the thread (a handler still sleeping ends within ``delay_s``, as a daemon thread).
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ACCESS_KEY = "ASIAFORWARDERTEST"


class CredentialsEndpoint:
    """``with CredentialsEndpoint(...) as endpoint:`` then ``endpoint.env()`` for the process."""

    def __init__(self, *, expires_in_s: float = 12 * 60, slow_from: int = 2, delay_s: float = 3.0) -> None:
        self.requests = 0
        self.expires_in_s = expires_in_s
        self.slow_from = slow_from
        self.delay_s = delay_s
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="credentials", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/credentials"

    def env(self, directory: Path) -> dict[str, str]:
        """Environment with this endpoint as the only source of credentials (the others emptied)."""
        return {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": self.url,
            **no_credentials_env(directory),
        }

    def __enter__(self) -> CredentialsEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _answer(self) -> tuple[int, bytes]:
        with self._lock:
            self.requests += 1
            number = self.requests
        if number >= self.slow_from:
            time.sleep(self.delay_s)
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=self.expires_in_s)
        body = {
            "AccessKeyId": ACCESS_KEY,
            "SecretAccessKey": f"secret-{number}",
            "Token": f"token-{number}",
            "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return 200, json.dumps(body).encode()

    def _handler(self) -> Any:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = endpoint._answer()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def no_credentials_env(directory: Path) -> dict[str, str]:
    """Variables under which botocore's chain finds no credentials (none in the environment, no files,
    no instance metadata), except what is later written to ``directory / "credentials"``, the shared
    credentials file."""
    return {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
        "AWS_SHARED_CREDENTIALS_FILE": str(directory / "credentials"),
        "AWS_CONFIG_FILE": str(directory / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def write_credentials_file(directory: Path, access_key: str = "AKIDLATEFORWARDER") -> Path:
    """Write the shared credentials file :func:`no_credentials_env` names; its path."""
    path = directory / "credentials"
    path.write_text(f"[default]\naws_access_key_id = {access_key}\naws_secret_access_key = late-secret\n")
    return path
