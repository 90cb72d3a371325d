"""Processes the tests, the chaos run and the bench start: how each is stopped, and bounded waits.

Every process started through the harness is stopped by its pid (SIGTERM, a bounded wait, then SIGKILL);
every wait here is bounded in time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# Every process the harness starts; tests/conftest.py stops whatever is still alive after each test,
# so a test that fails half way leaves nothing running.
STARTED: list[subprocess.Popen[Any]] = []
# Credentials that sign requests for the emulator; no AWS account is ever reached with them.
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDTESTFORWARDER",
    "AWS_SECRET_ACCESS_KEY": "test-secret-not-real",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a forwarder or emulator process: ours, the test credentials, no AWS profile."""
    env = {**os.environ, **AWS_TEST_ENV, **extra}
    env.pop("AWS_PROFILE", None)
    return env


def wait_for(
    condition: Callable[[], bool], timeout: float, interval: float = 0.1, what: str = "condition"
) -> None:
    """Poll ``condition`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal a process by its pid and wait; kill it if it does not exit in time. Its exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


@contextlib.contextmanager
def running(processes: list[Any]) -> Iterator[None]:
    """Stop every process in the list (by pid) when the block ends, whatever happens."""
    try:
        yield
    finally:
        for process in processes:
            with contextlib.suppress(Exception):
                process.stop()


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def run_script(name: str, args: list[str], env: dict[str, str], timeout: float) -> str:
    """Run ``scripts/NAME ARGS`` with ``env``, bounded by ``timeout``; its stdout, or a RuntimeError with
    the tail of its stderr."""
    result = subprocess.run(
        [str(REPO / "scripts" / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/{name} {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result.stdout.strip()
