"""Measurements: CPU and memory of processes from /proc, the machine's busy time, the emulator's counters.

A :class:`Sampler` takes :class:`Snapshot`\\ s (emulator stats + CPU-seconds of every watched process +
the machine's busy CPU-seconds) and a :class:`Window` between two of them gives rates and costs:
events/s and calls/s from the emulator's ``accepted_*`` deltas, CPU-seconds of each process, and the CPU
that none of the watched processes used ("other": other engineers' tests, the kernel, py-spy...).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a whole process (every thread), in seconds; ``None`` if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            text = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def jvm_jit_seconds(pid: int) -> float | None:
    """CPU-seconds of a JVM's JIT compiler threads (``C1/C2 CompilerThread*``): a broker that is still
    compiling its hot paths takes CPU from everything else; this tells when that happened."""
    total = 0.0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm", encoding="ascii", errors="replace") as fh:
                if "Compiler" not in fh.read():
                    continue
            with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii") as fh:
                text = fh.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = text[text.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def status_kib(pid: int, name: str) -> int | None:
    """A ``/proc/<pid>/status`` value in KiB (``VmHWM``: peak RSS, ``VmRSS``: current)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def machine_seconds() -> tuple[float, float]:
    """CPU-seconds since boot: all cores busy (user, nice, system, irq, softirq), and stolen by the
    hypervisor (steal: time this VM wanted a core and the host ran something else)."""
    with open("/proc/stat", encoding="ascii") as fh:
        parts = fh.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in parts[1:9])
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def self_cpu_seconds() -> float:
    """This process's CPU-seconds (every thread)."""
    t = os.times()
    return t.user + t.system


def get_json(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """GET a JSON object."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        result: dict[str, Any] = json.load(response)
        return result


@dataclass(frozen=True)
class Snapshot:
    """Everything measured at one moment."""

    t: float  # monotonic seconds
    stats: Mapping[str, Any]  # the emulator's /_emulator/stats
    cpu: Mapping[str, float]  # CPU-seconds per watched process name (missing if it is gone)
    busy: float  # the machine's busy CPU-seconds
    steal: float  # CPU-seconds the hypervisor took from this VM

    @property
    def events(self) -> int:
        """Events the emulator accepted so far."""
        return int(self.stats.get("accepted_events", 0))

    @property
    def calls(self) -> int:
        """Calls the emulator accepted so far."""
        return int(self.stats.get("accepted_calls", 0))


@dataclass
class Sampler:
    """Takes snapshots of one emulator and a set of processes (the harness itself is ``harness``)."""

    emulator_url: str
    pids: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> Snapshot:
        stats = get_json(f"{self.emulator_url}/_emulator/stats")
        cpu: dict[str, float] = {"harness": self_cpu_seconds()}
        for name, pid in self.pids.items():
            value = cpu_seconds(pid)
            if value is not None:
                cpu[name] = value
        if "kafka" in self.pids:
            jit = jvm_jit_seconds(self.pids["kafka"])
            if jit is not None:
                cpu["kafka-jit"] = jit
        return Snapshot(time.monotonic(), stats, cpu, *machine_seconds())


@dataclass(frozen=True)
class Window:
    """What happened between two snapshots."""

    start: Snapshot
    end: Snapshot

    @property
    def seconds(self) -> float:
        return self.end.t - self.start.t

    @property
    def events(self) -> int:
        return self.end.events - self.start.events

    @property
    def calls(self) -> int:
        return self.end.calls - self.start.calls

    def stat(self, name: str) -> int:
        """Change of an emulator counter."""
        return int(self.end.stats.get(name, 0)) - int(self.start.stats.get(name, 0))

    def cpu(self, name: str) -> float | None:
        """CPU-seconds a watched process used in the window."""
        if name not in self.start.cpu or name not in self.end.cpu:
            return None
        return self.end.cpu[name] - self.start.cpu[name]

    def cores(self, name: str) -> float | None:
        """Average cores a watched process used."""
        used = self.cpu(name)
        return None if used is None or self.seconds <= 0 else used / self.seconds

    @property
    def steal_cores(self) -> float:
        """Average cores the hypervisor took from this VM."""
        return (self.end.steal - self.start.steal) / self.seconds if self.seconds > 0 else 0.0

    def other_cores(self) -> float:
        """Busy cores not used by any watched process (nor the harness)."""
        ours = sum(self.cpu(name) or 0.0 for name in self.end.cpu if name != "kafka-jit")
        return max(0.0, (self.end.busy - self.start.busy) - ours) / self.seconds if self.seconds else 0.0
