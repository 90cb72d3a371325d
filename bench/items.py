"""``python -m bench.items``: the items route at full batches (issue #13), one row per mode.

A backlog of ``--records`` items with distinct ids (so every call can be full) on an 8-partition topic;
one forwarder whose only busy route is ``items`` (its events topic stays empty); a fresh emulator per mode
with ``--latency-ms``. Two modes:

- ``quota``: the route at its defaults, so its limiter starts at PutItems' documented quota (10 calls/s,
  ``forwarder/personalize/limits.py``), and the emulator enforces the same quota
  (``--operation-quota-rps PutItems=10``): calls/s against the quota, and whether anything is throttled;
- ``uncapped``: no limiter, no quota: what the items path costs (records per CPU-second), to compare with
  the events rows of docs/benchmarks.md.

Needs a broker (``--bootstrap``, e.g. scripts/kafka-local's); talks only to loopback; stops every process
it starts, by pid; bounded in records and time. Prints one markdown row per mode, in the columns of
docs/benchmarks.md's items table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.harness import REPO, child_env, create_topic, produce, start_emulator, stop_process

ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/bench/ITEMS"
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime, every thread


def _items(n: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        item_id = f"item-{i}"
        item = {"itemId": item_id, "GENRES": ["Comedy", "Drama"], "PRICE": i % 100, "title": f"Item {i}"}
        out.append((item_id.encode(), json.dumps(item).encode()))
    return out


def _config(work: Path, bootstrap: str, topic: str, url: str, mode: str) -> Path:
    route: dict[str, Any] = {"operation": "items", "topics": [topic], "dataset_arn": ARN, "max_in_flight": 64}
    if mode == "uncapped":
        route["max_calls_per_second"] = 1_000_000
    data = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": [create_topic(bootstrap, f"bench-items-events-{uuid.uuid4().hex[:8]}")],
            "group_id": f"bench-items-{mode}-{uuid.uuid4().hex[:8]}",
        },
        "personalize": {"tracking_id": "bench-tracking", "region": "us-east-1", "endpoint_url": url},
        "dead_letter": {"topic": "bench-dead-letter", "create_topic": True},
        "routes": [route],
        "observability": {"port": None},
        "shutdown": {"timeout_s": 5},
    }
    path = work / f"items-{mode}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _accepted(emulator: Any) -> dict[str, int]:
    ops: dict[str, dict[str, int]] = emulator.stats()["operations"]
    return ops["PutItems"]


def run_mode(args: argparse.Namespace, topic: str, mode: str, work: Path) -> dict[str, Any]:
    """One forwarder against a fresh emulator; the window's figures."""
    quota = ["--operation-quota-rps", "PutItems=10"] if mode == "quota" else []
    emulator = start_emulator(
        work,
        "--latency-ms",
        str(args.latency_ms),
        "--dataset-arn",
        ARN,
        *quota,
        record=False,
        env=child_env(),
    )
    config = _config(work, args.bootstrap, topic, emulator.url, mode)
    log = (work / f"items-{mode}.log").open("ab")
    sut = subprocess.Popen(
        [sys.executable, "-m", "forwarder", "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env=child_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while not _accepted(emulator)["accepted_calls"]:
            if time.monotonic() > deadline or sut.poll() is not None:
                raise SystemExit(f"items bench: nothing accepted; see {work / f'items-{mode}.log'}")
            time.sleep(0.2)
        time.sleep(args.warmup_s)
        total = args.quota_records if mode == "quota" else args.records
        t0, cpu0, s0 = time.monotonic(), _cpu_s(sut.pid), _accepted(emulator)
        while time.monotonic() - t0 < args.window_s and _accepted(emulator)["accepted_records"] < total:
            time.sleep(0.5)
        t1, cpu1, s1 = time.monotonic(), _cpu_s(sut.pid), _accepted(emulator)
    finally:
        stop_process(sut, timeout=20)
        stop_process(emulator.proc, timeout=20)
        log.close()
    seconds, cpu = t1 - t0, cpu1 - cpu0
    records = s1["accepted_records"] - s0["accepted_records"]
    calls = s1["accepted_calls"] - s0["accepted_calls"]
    return {
        "mode": mode,
        "seconds": seconds,
        "records": records,
        "records_s": records / seconds,
        "calls_s": calls / seconds,
        "per_call": records / calls if calls else 0.0,
        "throttled": s1["throttled"] - s0["throttled"],
        "cpu_10k": cpu / records * 10_000 if records else 0.0,
        "per_cpu_s": records / cpu if cpu else 0.0,
    }


def row(figures: dict[str, Any], latency_ms: float) -> str:
    """The figures as a row of docs/benchmarks.md's items table."""
    f = figures
    quota = "10 (PutItems)" if f["mode"] == "quota" else "none"
    return (
        f"| items, full batches | {latency_ms:g} | {f['mode']} | {quota} | {f['seconds']:.1f} | {f['records']:,} | "
        f"{f['records_s']:,.0f} | {f['calls_s']:,.1f} | {f['per_call']:.2f} | {f['throttled']:,} | "
        f"{f['cpu_10k']:.2f} | {f['per_cpu_s']:,.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.items", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), required=False)
    parser.add_argument("--records", type=int, default=200_000, help="the uncapped mode's backlog")
    parser.add_argument(
        "--quota-records", type=int, default=3_000, help="the quota mode's (> 10 calls/s × window)"
    )
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--window-s", type=float, default=15.0)
    parser.add_argument("--warmup-s", type=float, default=2.0)
    parser.add_argument("--modes", default="quota,uncapped")
    args = parser.parse_args(argv)
    if not args.bootstrap:
        parser.error("--bootstrap (or KAFKA_BOOTSTRAP_SERVERS) is required")
    work = REPO / ".local" / "bench-items"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for mode in args.modes.split(","):
        topic = create_topic(args.bootstrap, f"bench-items-{uuid.uuid4().hex[:8]}", partitions=8)
        produce(args.bootstrap, topic, _items(args.quota_records if mode == "quota" else args.records))
        rows.append(row(run_mode(args, topic, mode, work), args.latency_ms))
    print(
        "| workload | emu ms | mode | quota calls/s | window s | records | records/s | calls/s | rec/call | "
        "throttled | CPU s/10k rec | rec/CPU-s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
