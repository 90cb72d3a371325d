"""The forwarder as a process (``forwarder run``), and its metrics and probes over HTTP."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.harness.config import ForwarderConfig
from tests.harness.processes import REPO, STARTED, child_env, stop_process


@dataclass
class ForwarderProcess:
    """A running ``forwarder run`` replica."""

    proc: subprocess.Popen[bytes]
    log: Path
    config: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal by pid and wait."""
        return stop_process(self.proc, sig, timeout)

    def log_text(self) -> str:
        """Everything the replica logged."""
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_forwarder(
    tmp_path: Path, cfg: ForwarderConfig, name: str = "replica", env: dict[str, str] | None = None
) -> ForwarderProcess:
    """Start ``forwarder run`` as a real process with test credentials; its log goes to a file."""
    config = cfg.write(tmp_path / f"{name}.yaml")
    log = tmp_path / f"{name}.log"
    full_env = child_env(**(env or {}))
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "forwarder", "run", "--config", str(config)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=full_env,
        )
    STARTED.append(proc)
    return ForwarderProcess(proc, log, config)


def scrape(port: int) -> dict[str, float]:
    """A replica's /metrics as {"name{labels}": value} (comments dropped)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def probe(port: int, path: str) -> int:
    """The HTTP status of a probe endpoint."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
