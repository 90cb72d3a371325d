"""Processes the bench starts — the forwarder, the baselines, emulators — in one registry, so each is
stopped by its pid (SIGTERM then SIGKILL) also when the bench is interrupted. Kafka, the emulator and
the forwarder's configuration come from the shared harness, :mod:`tests.harness`."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness import REPO, EmulatorProcess, child_env, start_emulator, stop_process

PYTHON = sys.executable


class BenchError(RuntimeError):
    """The benchmark cannot go on (a process did not start, Kafka is unreachable...)."""


@dataclass
class Proc:
    """A child process, stopped by its pid."""

    name: str
    popen: subprocess.Popen[Any]
    log: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; the exit status."""
        return stop_process(self.popen, timeout=grace)

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


def start_latency_emulator(registry: Registry, latency_ms: float, log: Path) -> tuple[Proc, str]:
    """The harness's emulator, not recording, with ``latency_ms`` added to every call and its stderr in
    ``log``, registered so that :meth:`Registry.stop_all` stops it. Its ``GET /_emulator/stats`` carries
    the counters and ``delay_ms``."""
    try:
        emulator: EmulatorProcess = start_emulator(
            log.parent, "--latency-ms", str(latency_ms), record=False, log=log, env=child_env()
        )
    except AssertionError as exc:
        raise BenchError(str(exc)) from None
    proc = Proc("emulator", emulator.proc, log)
    registry.procs.append(proc)
    return proc, emulator.url


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
