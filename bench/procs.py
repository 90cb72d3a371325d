"""Processes the harness starts — Kafka (scripts/kafka-local), emulators, the forwarder, the baselines —
and how each is stopped: by its pid, SIGTERM then SIGKILL, also when the harness is interrupted."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDBENCHFORWARDER",
    "AWS_SECRET_ACCESS_KEY": "bench-secret-not-real",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class BenchError(RuntimeError):
    """The benchmark cannot go on (a process did not start, Kafka is unreachable...)."""


def child_env(**extra: str) -> dict[str, str]:
    """The environment of child processes: ours, dummy AWS credentials, no profile."""
    env = {**os.environ, **AWS_ENV, **extra}
    env.pop("AWS_PROFILE", None)
    return env


@dataclass
class Proc:
    """A child process, stopped by its pid."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; the exit status."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(10)
        return self.popen.returncode

    def log_tail(self, lines: int = 15) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Registry:
    """Every process started, so that all of them are stopped whatever happens."""

    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Proc:
        with log.open("ab") as fh:
            popen = subprocess.Popen(
                argv, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, env=env or child_env()
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc, grace: float = 5.0) -> int | None:
        code = proc.stop(grace)
        if proc in self.procs:
            self.procs.remove(proc)
        return code

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            with contextlib.suppress(Exception):
                proc.stop(3.0)
        self.procs.clear()


# ---- Kafka ---------------------------------------------------------------------------------------


@dataclass
class Kafka:
    """A broker run by scripts/kafka-local on a dedicated port and data directory."""

    port: int
    data_dir: Path
    started_here: bool = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_DATA_DIR": str(self.data_dir),
            "PYTHON": PYTHON,
        }

    def _script(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REPO / "scripts" / "kafka-local"), command],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> None:
        result = self._script("start", 240)
        if result.returncode != 0:
            raise BenchError(f"kafka-local start failed:\n{result.stderr[-2000:]}")
        self.started_here = True

    def stop(self) -> None:
        if self.started_here:
            self._script("stop", 60)
            self.started_here = False

    @property
    def pid(self) -> int | None:
        try:
            pid = int((self.data_dir / "kafka.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def version(self) -> str:
        """The broker's version, from its log (``Kafka version: x.y.z``), else KAFKA_VERSION/default."""
        log = self.data_dir / "kafka.log"
        if log.exists():
            found: list[str] = re.findall(r"Kafka version: (\S+)", log.read_text(errors="replace"))
            if found:
                return found[-1]
        return os.environ.get("KAFKA_VERSION", "4.1.1")


# ---- the emulator ----------------------------------------------------------------------------------


def _read_listening(popen: subprocess.Popen[bytes], timeout: float) -> str:
    assert popen.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([popen.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(popen.stdout.fileno(), 4096)
            if not chunk:
                break
            buffer += chunk
            match = re.search(rb"listening on (http://\S+)", buffer)
            if match:
                url: str = match.group(1).decode()
                return url
        if popen.poll() is not None:
            break
    raise BenchError(f"emulator did not start: {buffer.decode(errors='replace')[-500:]}")


def start_emulator(registry: Registry, latency_ms: float, log: Path) -> tuple[Proc, str]:
    """``forwarder emulator`` on a free loopback port with ``latency_ms`` added to every call; its
    stderr goes to ``log``. Its ``GET /_emulator/stats`` carries the counters and ``delay_ms``."""
    argv = [PYTHON, "-m", "forwarder", "emulator", "--host", "127.0.0.1", "--port", "0"]
    argv += ["--latency-ms", str(latency_ms)]
    with log.open("ab") as fh:
        popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=fh, cwd=REPO, env=child_env())
    proc = Proc("emulator", popen, log)
    registry.procs.append(proc)
    try:
        url = _read_listening(popen, 30)
    except BenchError:
        registry.stop(proc)
        raise
    return proc, url


# ---- systems under test --------------------------------------------------------------------------------


def forwarder_config(
    path: Path,
    *,
    bootstrap: str,
    topic: str,
    group: str,
    endpoint: str,
    transport: str,
    concurrency: int,
    linger_ms: int,
    dead_letter: str,
    tracking_id: str,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """Write the forwarder's YAML: defaults everywhere except what a benchmark must set, then
    ``overrides`` (dotted path → value, e.g. ``{"limits.max_buffered_events": 5000}``)."""
    data: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "topics": [topic], "group_id": group},
        "personalize": {
            "tracking_id": tracking_id,
            "region": "us-east-1",
            "endpoint_url": endpoint,
            "transport": transport,
            "max_in_flight": concurrency,
        },
        "batching": {"max_events": 10, "linger_ms": linger_ms},
        "dead_letter": {"topic": dead_letter},
        "shutdown": {"timeout_s": 5},
        "observability": {"port": None},
        "logging": {"level": "INFO"},
    }
    for dotted, value in (overrides or {}).items():
        section, _, rest = dotted.partition(".")
        node = data.setdefault(section, {})
        if section == "kafka" and rest.startswith("client."):  # librdkafka names hold dots
            node.setdefault("client", {})[rest[len("client.") :]] = value
            continue
        *parents, leaf = rest.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def wait_for_log(proc: Proc, pattern: str, timeout: float) -> None:
    """Wait until the process's log matches ``pattern`` (e.g. its partitions were assigned)."""
    assert proc.log is not None
    deadline = time.monotonic() + timeout
    regex = re.compile(pattern)
    while time.monotonic() < deadline:
        if proc.log.exists() and regex.search(proc.log.read_text(errors="replace")):
            return
        if not proc.alive():
            raise BenchError(f"{proc.name} exited (status {proc.popen.returncode}):\n{proc.log_tail()}")
        time.sleep(0.1)
    raise BenchError(f"{proc.name}: no {pattern!r} in its log after {timeout:.0f}s:\n{proc.log_tail()}")
