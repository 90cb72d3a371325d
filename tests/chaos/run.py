"""A chaos run that counts every event: produced = accepted + dead-lettered, whatever breaks meanwhile.

While a producer writes N interaction events (each with a unique id in its properties, over many users and
sessions, with a sprinkling of poison messages) to an 8-partition topic, three forwarder replicas of one
group consume it against the emulator, which throttles ~20 % of calls, fails ~5 % with 5xx, drops ~1 % of
connections and adds latency spikes. Meanwhile:

- every ``kill_every_s`` one replica is killed with SIGKILL and started again;
- once, one replica gets SIGTERM and must exit 0 after handing its partitions over, then starts again;
- once, in the middle, the broker is stopped and started on the same data directory;
- for a while the dead-letter topic refuses writes, broker-side: its ``min.insync.replicas`` is raised
  to 2 on a single-broker cluster, so every ``acks=all`` produce fails with NOT_ENOUGH_REPLICAS until it is
  set back to 1 (no record is deleted, so the final count still sees every dead letter).

At the end it reads the emulator's record file and the dead-letter topic and prints one table. ``lost`` is
the produced ids found neither accepted nor dead-lettered; the run fails if it is above zero.

Repeats per kill: just before each SIGKILL the replica's /metrics are scraped for the *in-flight bound*,
the events in PutEvents calls plus the messages finished that no accepted commit covers yet
(``forwarder_in_flight_events`` + ``forwarder_finished_uncommitted_messages``): the fewest repeats that
kill can cause. Each repeat (an id accepted again) is counted against the last fault before it, by its
place in the emulator's record (the accepted-events count when the fault was injected).
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource

from tests.harness import (
    EmulatorProcess,
    ForwarderConfig,
    ForwarderProcess,
    create_topic,
    free_port,
    fully_committed,
    probe,
    read_topic,
    scrape,
    start_emulator,
    start_forwarder,
    unique,
    wait_for,
)

EMULATOR_FAULTS = (
    "--throttle-rate", "0.2",
    "--error-rate", "0.05",
    "--drop-rate", "0.01",
    "--latency-ms", "5",
    "--latency-jitter-ms", "5",
    "--spike-rate", "0.01",
    "--spike-ms", "1500",
    "--seed", "7",
)  # fmt: skip
POISON_EVERY = 500  # one poison message per this many events


@dataclass
class ChaosSettings:
    """Sizes and timings of a run."""

    events: int = 200_000
    partitions: int = 8
    replicas: int = 3
    produce_seconds: float = 90.0
    kill_every_s: float = 10.0
    time_limit_s: float = 540.0
    restart_broker: bool = True
    dead_letter_down_s: float = 15.0
    seed: int = 11
    commit_interval_ms: int | None = None  # None: the forwarder's default


@dataclass
class BrokerControl:
    """The broker under test: its address, and how to restart it (None when it cannot be)."""

    bootstrap: str
    restart: Callable[[], None] | None = None


@dataclass
class FaultMark:
    """A fault, where the emulator's record stood when it was injected, and the replica's in-flight
    bound just before (None when not a kill, or the scrape failed); ``repeats`` is filled at the end."""

    label: str
    accepted_at: int
    bound: tuple[int, int] | None = None  # (events in flight, messages finished and not committed)
    repeats: int = 0
    misses: int | None = None  # the killed replica's commits whose finished set did not fit the metadata


def _in_flight_bound(port: int) -> tuple[tuple[int, int] | None, int | None]:
    """(events in flight, messages finished and not committed), and the commit metadata misses so far."""
    try:
        metrics = scrape(port)
    except OSError:
        return None, None
    in_flight = metrics.get("forwarder_in_flight_events")
    finished = metrics.get("forwarder_finished_uncommitted_messages")
    misses = metrics.get("forwarder_commit_metadata_misses_total")
    if in_flight is None or finished is None:
        return None, None
    return (int(in_flight), int(finished)), None if misses is None else int(misses)


def _attribute_repeats(uids: list[str], marks: list[FaultMark]) -> int:
    """Count each repeat against the last mark at or before its place in the record; return the repeats
    before the first mark."""
    seen: set[str] = set()
    before = 0
    starts = [m.accepted_at for m in marks]
    for index, uid in enumerate(uids):
        if uid not in seen:
            seen.add(uid)
            continue
        i = bisect.bisect_right(starts, index) - 1
        if i < 0:
            before += 1
        else:
            marks[i].repeats += 1
    return before


@dataclass
class ChaosResult:
    """The figures of a run."""

    produced: int
    accepted_unique: int
    accepted_total: int
    dead_lettered: int
    lost: int
    lost_ids: list[str]
    calls: int
    wall_s: float
    faults: list[str] = field(default_factory=list)
    emulator_stats: dict[str, Any] = field(default_factory=dict)
    marks: list[FaultMark] = field(default_factory=list)
    repeats_before_faults: int = 0

    @property
    def duplicates(self) -> int:
        """Events accepted more than once."""
        return self.accepted_total - self.accepted_unique

    def table(self) -> str:
        """The one table the run prints."""
        dup_pct = 100.0 * self.duplicates / self.accepted_unique if self.accepted_unique else 0.0
        per_call = self.accepted_total / self.calls if self.calls else 0.0
        rows = [
            ("produced", f"{self.produced}"),
            ("accepted (unique)", f"{self.accepted_unique}"),
            ("dead-lettered", f"{self.dead_lettered}"),
            ("lost", f"{self.lost}"),
            ("duplicates", f"{self.duplicates} ({dup_pct:.2f} %)"),
            ("PutEvents calls accepted", f"{self.calls}"),
            ("mean events per call", f"{per_call:.2f}"),
            ("wall time", f"{self.wall_s:.0f} s"),
        ]
        kills = [m for m in self.marks if "SIGKILL" in m.label]
        bounded = [m for m in kills if m.bound is not None]
        if kills:
            per_kill = sum(m.repeats for m in kills) / len(kills)
            rows.append(("repeats per kill (mean)", f"{per_kill:.0f}"))
        if bounded:
            bound = sum(sum(m.bound or ()) for m in bounded) / len(bounded)
            rows.append(("in-flight bound per kill (mean)", f"{bound:.0f}"))
        width = max(len(k) for k, _ in rows)
        lines = [f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
        lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
        return "\n".join(lines)

    def fault_table(self) -> str:
        """Per fault: the in-flight bound just before it (kills) and the repeats counted against it."""
        lines = [
            "| fault | in-flight bound (in flight + finished uncommitted) | metadata misses | repeats after |",
            "|---|---|---|---|",
        ]
        lines.append(f"| (before any fault) | | | {self.repeats_before_faults} |")
        for m in self.marks:
            bound = "" if m.bound is None else f"{sum(m.bound)} ({m.bound[0]} + {m.bound[1]})"
            misses = "" if m.misses is None else str(m.misses)
            lines.append(f"| {m.label.strip()} | {bound} | {misses} | {m.repeats} |")
        return "\n".join(lines)


class _ProducerThread(threading.Thread):
    """Writes the events at an even pace over ``seconds``; remembers every id it wrote."""

    def __init__(self, bootstrap: str, topic: str, settings: ChaosSettings) -> None:
        super().__init__(daemon=True, name="chaos-producer")
        self.bootstrap = bootstrap
        self.topic = topic
        self.settings = settings
        self.ids: set[str] = set()
        self.acked = 0
        self.failed: list[str] = []
        self.done = threading.Event()

    def _messages(self) -> Any:
        rng = random.Random(self.settings.seed)
        sessions = max(50, self.settings.events // 25)
        for n in range(self.settings.events):
            if n % POISON_EVERY == POISON_EVERY - 1:
                uid = f"poison-{n}"
                yield uid, uid.encode(), b'{"sessionId": "broken", "eventType": '
                continue
            s = rng.randrange(sessions)
            uid = f"ev-{n}"
            event: dict[str, Any] = {
                "sessionId": f"session-{s}",
                "userId": f"user-{s % (sessions // 2)}",
                "eventType": rng.choice(("view", "click", "purchase")),
                "itemId": f"item-{rng.randrange(5000)}",
                "sentAt": round(time.time(), 3),
                "properties": {"uid": uid},
            }
            if n % 3 == 0:
                event["impression"] = [f"item-{rng.randrange(5000)}" for _ in range(rng.randint(1, 10))]
            if n % 4 == 0:
                event["recommendationId"] = f"RID-{n}"
            yield uid, event["sessionId"].encode(), json.dumps(event).encode()

    def run(self) -> None:
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "linger.ms": 20,
                "message.timeout.ms": 300_000,  # the broker restarts in the middle: wait it out
            }
        )

        def delivered(err: Any, msg: Any) -> None:
            if err is None:
                self.acked += 1
            else:
                self.failed.append(str(err))

        start = time.monotonic()
        per_event = self.settings.produce_seconds / max(1, self.settings.events)
        for n, (uid, key, value) in enumerate(self._messages()):
            while True:
                try:
                    producer.produce(self.topic, key=key, value=value, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
            self.ids.add(uid)
            if n % 200 == 0:
                producer.poll(0)
                ahead = start + n * per_event - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush(300)
        self.done.set()


def _set_dead_letter_writable(bootstrap: str, topic: str, writable: bool) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(
                "min.insync.replicas", "1" if writable else "2", incremental_operation=AlterConfigOpType.SET
            )
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def _uid(event: dict[str, Any]) -> str | None:
    try:
        uid = json.loads(event.get("properties", "{}")).get("uid")
    except (ValueError, AttributeError):
        return None
    return uid if isinstance(uid, str) else None


def _serving(port: int) -> bool:
    try:
        return probe(port, "/healthz") == 200
    except OSError:
        return False


def run_chaos(
    broker: BrokerControl, work_dir: Path, settings: ChaosSettings, say: Callable[[str], None] = print
) -> ChaosResult:
    """Run the whole scenario; stop every process it started; return the figures."""
    started = time.monotonic()
    rng = random.Random(settings.seed)
    topic = create_topic(broker.bootstrap, unique("chaos"), partitions=settings.partitions)
    dlq = create_topic(broker.bootstrap, unique("chaos-dlq"))
    emulator: EmulatorProcess = start_emulator(work_dir, *EMULATOR_FAULTS)
    cfg = ForwarderConfig(
        broker.bootstrap,
        [topic],
        unique("chaos-group"),
        dlq,
        emulator.url,
        client={},  # the shipped session timeout and heartbeat (issue #17): what a user deploys
        extra={
            "kafka": {}
            if settings.commit_interval_ms is None
            else {"commit_interval_ms": settings.commit_interval_ms},
            "personalize": {"max_in_flight": 32, "transport": "fast"},
            "batching": {"linger_ms": 100},
            "retry": {
                "max_attempts": 15,
                "max_elapsed_s": 180,
                "initial_backoff_ms": 50,
                "max_backoff_ms": 2000,
            },
            "dead_letter": {"producer": {"message.timeout.ms": 5000}},
            "shutdown": {"timeout_s": 15},
            "logging": {"level": "WARNING"},
        },
    )
    ports = [free_port() for _ in range(settings.replicas)]

    def start(i: int, generation: int) -> ForwarderProcess:
        # Each replica serves /metrics on its own port: the in-flight bound is read there before a kill.
        own = dataclasses.replace(cfg, extra={**cfg.extra, "observability": {"port": ports[i]}})
        return start_forwarder(work_dir, own, name=f"replica-{i}-{generation}")

    replicas: list[ForwarderProcess] = [start(i, 0) for i in range(settings.replicas)]
    # The faults are timed from here: on a loaded machine a replica may take many seconds to import and
    # pass its preflight, and a SIGTERM before it handles signals is not the graceful stop under test.
    wait_for(lambda: all(_serving(port) for port in ports), 120, interval=0.5, what="every replica serving")
    started = time.monotonic()
    generation = [0] * settings.replicas
    faults: list[str] = []
    marks: list[FaultMark] = []

    def mark(label: str, bound: tuple[int, int] | None = None, misses: int | None = None) -> None:
        faults.append(label)
        marks.append(FaultMark(label, int(emulator.stats()["accepted_events"]), bound, misses=misses))

    producer = _ProducerThread(broker.bootstrap, topic, settings)
    producer.start()

    def restart(i: int) -> None:
        generation[i] += 1
        replicas[i] = start(i, generation[i])

    sigterm_at = settings.produce_seconds * 0.3
    broker_at = settings.produce_seconds * 0.5
    dlq_down_at = settings.produce_seconds * 0.6
    dlq_up_at = dlq_down_at + settings.dead_letter_down_s
    done_sigterm = done_broker = dlq_down = dlq_restored = False
    next_kill = settings.kill_every_s
    last_report = last_settle_check = 0.0
    can_restart = settings.restart_broker and broker.restart is not None
    try:
        while True:
            elapsed = time.monotonic() - started
            if elapsed > settings.time_limit_s:
                faults.append(f"time limit {settings.time_limit_s:.0f}s reached")
                break
            if not done_sigterm and elapsed >= sigterm_at:
                i = rng.randrange(settings.replicas)
                accepted_now = int(emulator.stats()["accepted_events"])
                code = replicas[i].stop(signal.SIGTERM, timeout=60)
                faults.append(f"{elapsed:5.0f}s SIGTERM replica {i}: exit {code}")
                marks.append(FaultMark(faults[-1], accepted_now))
                if code != 0:
                    raise AssertionError(
                        f"SIGTERM'd replica exited {code}:\n{replicas[i].log_text()[-3000:]}"
                    )
                restart(i)
                done_sigterm = True
            if can_restart and not done_broker and elapsed >= broker_at:
                assert broker.restart is not None
                mark(f"{elapsed:5.0f}s broker stopped and started on the same data")
                broker.restart()
                done_broker = True
            if not dlq_down and elapsed >= dlq_down_at:
                _set_dead_letter_writable(broker.bootstrap, dlq, writable=False)
                faults.append(f"{elapsed:5.0f}s dead-letter topic refuses writes (min.insync.replicas=2)")
                dlq_down = True
            if dlq_down and not dlq_restored and elapsed >= dlq_up_at:
                _set_dead_letter_writable(broker.bootstrap, dlq, writable=True)
                faults.append(f"{elapsed:5.0f}s dead-letter topic writable again")
                dlq_restored = True
            if not producer.done.is_set() and elapsed >= next_kill:
                i = rng.randrange(settings.replicas)
                bound, misses = _in_flight_bound(ports[i])
                mark(f"{elapsed:5.0f}s SIGKILL replica {i}", bound, misses)
                replicas[i].stop(signal.SIGKILL, timeout=10)
                restart(i)
                next_kill += settings.kill_every_s
            planned_done = done_sigterm and dlq_restored and (done_broker or not can_restart)
            if producer.done.is_set() and planned_done and elapsed - last_settle_check >= 2:
                # Every message finished (accepted, or dead-lettered and acknowledged) = committed to the end.
                last_settle_check = elapsed
                if fully_committed(broker.bootstrap, cfg.group, topic):
                    break
            if elapsed - last_report >= 5:
                last_report = elapsed
                stats = emulator.stats()
                say(
                    f"chaos {elapsed:5.0f}s: produced {producer.acked}/{settings.events}, "
                    f"accepted {stats['accepted_events']} in {stats['accepted_calls']} calls, "
                    f"throttled {stats['throttled']}, 5xx {stats['errors']}, dropped {stats['dropped']}"
                )
            time.sleep(0.5)
        for i, replica in enumerate(replicas):
            code = replica.stop(signal.SIGTERM, timeout=60)
            if code != 0:
                faults.append(f"final stop of replica {i}: exit {code}")
        emulator_stats = emulator.stats()
    finally:
        for replica in replicas:
            replica.stop(signal.SIGKILL, timeout=10)
        emulator.stop()
        producer.join(timeout=60)

    uids = [uid for ev in emulator.events() if (uid := _uid(ev)) is not None]
    accepted = Counter(uids)
    before_faults = _attribute_repeats(uids, marks)
    dead = set()
    for message in read_topic(broker.bootstrap, dlq, timeout=30):
        key = (message.key() or b"").decode("utf-8", "replace")
        if key.startswith("poison-"):
            dead.add(key)
        else:
            try:
                dead.add(json.loads(message.value())["properties"]["uid"])
            except (ValueError, KeyError, TypeError):
                continue
    lost_ids = sorted(producer.ids - set(accepted) - dead)
    return ChaosResult(
        produced=len(producer.ids),
        accepted_unique=len(accepted),
        accepted_total=sum(accepted.values()),
        dead_lettered=len(dead - set(accepted)),
        lost=len(lost_ids),
        lost_ids=lost_ids[:20],
        calls=int(emulator_stats.get("accepted_calls", 0)),
        wall_s=time.monotonic() - started,
        faults=faults,
        emulator_stats=emulator_stats,
        marks=marks,
        repeats_before_faults=before_faults,
    )
