"""``python -m tests.chaos``: the full chaos run on its own Kafka (started and stopped here), one table.

Exit status 1 if any event was lost. ``--events`` and ``--produce-seconds`` size it; see docs/reliability.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tests.chaos.run import BrokerControl, ChaosSettings, run_chaos
from tests.harness import REPO, LocalKafka


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--produce-seconds", type=float, default=90.0)
    parser.add_argument("--kill-every", type=float, default=10.0)
    parser.add_argument("--time-limit", type=float, default=540.0)
    parser.add_argument(
        "--commit-interval-ms", type=int, help="kafka.commit_interval_ms (default: the forwarder's)"
    )
    parser.add_argument("--kafka-port", default=os.environ.get("CHAOS_KAFKA_PORT", "39092"))
    args = parser.parse_args()

    data = REPO / ".local" / f"kafka-chaos-{args.kafka_port}"
    shutil.rmtree(data, ignore_errors=True)
    kafka = LocalKafka(int(args.kafka_port), data)
    bootstrap = kafka.start()

    settings = ChaosSettings(
        events=args.events,
        partitions=args.partitions,
        replicas=args.replicas,
        produce_seconds=args.produce_seconds,
        kill_every_s=args.kill_every,
        time_limit_s=args.time_limit,
        commit_interval_ms=args.commit_interval_ms,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="chaos-") as work:
            result = run_chaos(
                BrokerControl(bootstrap, kafka.restart),
                Path(work),
                settings,
                say=lambda s: print(s, flush=True),
            )
    finally:
        kafka.stop()
    print("\nfaults injected:")
    for fault in result.faults:
        print(f"  {fault}")
    print(f"emulator: {result.emulator_stats}")
    print()
    print(result.table())
    print()
    print(result.fault_table())
    if result.lost:
        print(f"\nLOST {result.lost} events, e.g. {result.lost_ids}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
