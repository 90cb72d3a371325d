"""One measured run: a fresh emulator, the system under test, sampling, a steady-state window, a row.

Three kinds of run:

- :func:`catchup_run` — the system reads the backlog topic with a fresh consumer group. The window opens
  ``warmup_s`` seconds after the first event was accepted (process start, imports, the group join and the
  first connections are left out) and closes when the whole backlog was accepted, or after ``cap_s``.
- :func:`live_run` — a fresh topic; once the system has its partitions the harness produces the live
  trace at its pace (``sentAt`` = produce time). The window runs from 2 s into production to its end;
  then the harness waits for the backlog to drain and reads the emulator's ``delay_ms``.
- :func:`ceiling_run` — no Kafka: the window opens after 200 accepted calls and lasts ``cap_s``.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bench.measure import Sampler, Snapshot, Window, cpu_seconds, status_kib
from bench.procs import PYTHON, BenchError, Proc, Registry, start_latency_emulator, wait_for_log
from bench.report import Row
from bench.workloads import LIVE_PRODUCER_LINGER_MS, LiveTrace
from tests.harness import LocalKafka, forwarder_config

SAMPLE_S = 0.25
WARMUP_TIMEOUT_S = 90.0
STALL_S = 10.0
PARTITIONS = 8


@dataclass(frozen=True)
class System:
    """A system under test."""

    name: str  # as shown in the table
    kind: str  # forwarder | batched | single | transit | ceiling
    transport: str = ""  # forwarder: personalize.transport (its event loop is its own choice: uvloop)
    loop: str = "asyncio"  # ceiling: the event loop
    client: str = "aiohttp"  # ceiling: the HTTP client (lean: the forwarder's own)
    input: str = "json"  # forwarder: input.format (a registry format reads Bench.schema_registry_url)

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


@dataclass
class Bench:
    """What every run shares."""

    registry: Registry
    kafka: LocalKafka
    run_dir: Path
    concurrency: int
    linger_ms: int
    tracking_id: str
    dead_letter: str
    progress: Callable[[str], None]
    profile_for: str | None = None  # tag of the run to profile with py-spy
    profile_out: Path | None = None
    overrides: dict[str, Any] | None = None  # forwarder configuration, dotted path → value
    launcher: Path | None = None  # a script run instead of `-m forwarder` (to try a change to the daemon)
    schema_registry_url: str | None = None  # for a forwarder System whose input is a registry format

    # ---- Kafka topics ---------------------------------------------------------------------------------

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.kafka.bootstrap})

    def topic_size(self, topic: str) -> int | None:
        """Messages in a topic (sum of high watermarks), ``None`` if it does not exist."""
        md = self.admin().list_topics(timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            return None
        consumer = Consumer({"bootstrap.servers": self.kafka.bootstrap, "group.id": "bench-watermarks"})
        try:
            return sum(
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions
            )
        finally:
            consumer.close()

    def create_topic(self, topic: str, partitions: int = PARTITIONS) -> None:
        admin = self.admin()
        futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        try:
            futures[topic].result(30)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            md = admin.list_topics(topic, timeout=5).topics.get(topic)
            if md is not None and md.error is None and len(md.partitions) == partitions:
                return
            time.sleep(0.1)
        raise BenchError(f"topic {topic} did not appear")

    def delete_topics(self, topics: list[str]) -> None:
        if topics:
            for future in self.admin().delete_topics(topics).values():
                with contextlib.suppress(Exception):
                    future.result(30)

    def _read(self, topic: str, count: int, timeout: float) -> int:
        """Read a topic from the start without a group until ``count`` messages or ``timeout``; how many
        were read."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.kafka.bootstrap,
                "group.id": "bench-warmup",
                "enable.auto.commit": False,
            }
        )
        try:
            md = consumer.list_topics(topic, timeout=10).topics[topic]
            consumer.assign([TopicPartition(topic, p, 0) for p in md.partitions])
            read = 0
            deadline = time.monotonic() + timeout
            while read < count and time.monotonic() < deadline:
                read += sum(1 for m in consumer.consume(1000, 0.05) if m.error() is None)
            return read
        finally:
            consumer.close()

    def warm_up(self, backlog_topic: str, backlog_events: int, rate: float, seconds: float) -> str:
        """Warm the broker's JIT before measuring: read the backlog once, then produce and consume a live
        trace at ``rate`` for ``seconds`` (the broker compiles its hot paths during its first minutes)."""
        began = time.monotonic()
        read = self._read(backlog_topic, backlog_events, 120)
        topic = f"bench-warmup-{uuid.uuid4().hex[:8]}"
        self.create_topic(topic)
        trace = LiveTrace(rate, seconds, seed=99)
        producer = LiveProducer(self.kafka.bootstrap, topic, trace)
        producer.start()
        try:
            live = self._read(topic, len(trace.events), seconds + 30)
        finally:
            producer.stop()
            self.delete_topics([topic])
        return (
            f"warmed Kafka up in {time.monotonic() - began:.0f}s: read {read:,} backlog events, "
            f"produced and consumed {live:,} at {rate:,.0f}/s"
        )

    # ---- processes ------------------------------------------------------------------------------------

    def start_system(self, system: System, tag: str, url: str, topic: str | None) -> Proc:
        group = f"bench-{tag}-{uuid.uuid4().hex[:8]}"
        log = self.run_dir / f"{tag}.log"
        if system.kind == "forwarder":
            assert topic is not None
            config = forwarder_config(
                self.run_dir / f"{tag}.yaml",
                bootstrap=self.kafka.bootstrap,
                topic=topic,
                group=group,
                endpoint=url,
                transport=system.transport,
                concurrency=self.concurrency,
                linger_ms=self.linger_ms,
                dead_letter=self.dead_letter,
                tracking_id=self.tracking_id,
                overrides=self._overrides(system),
            )
            argv = [PYTHON, *([str(self.launcher)] if self.launcher else ["-m", "forwarder"])]
            argv += ["run", "--config", str(config)]
        else:
            argv = [PYTHON, "-m", "bench.baselines", system.kind, "--endpoint", url]
            argv += ["--concurrency", str(self.concurrency), "--tracking-id", self.tracking_id]
            if system.kind == "ceiling":
                argv += ["--loop", system.loop, "--client", system.client]
            else:
                assert topic is not None
                argv += ["--bootstrap", self.kafka.bootstrap, "--topic", topic, "--group", group]
                argv += ["--linger-ms", str(self.linger_ms)]
        return self.registry.start(system.name, argv, log)

    def _overrides(self, system: System) -> dict[str, Any] | None:
        if system.input == "json":
            return self.overrides
        if self.schema_registry_url is None:
            raise BenchError(f"{system.name} needs a schema registry")
        registry = {"input.format": system.input, "input.schema_registry.url": self.schema_registry_url}
        return {**(self.overrides or {}), **registry}

    def sampler(self, url: str, sut: Proc, emulator: Proc) -> Sampler:
        pids = {"sut": sut.pid, "emulator": emulator.pid}
        kafka_pid = self.kafka.pid
        if kafka_pid is not None:
            pids["kafka"] = kafka_pid
        return Sampler(url, pids)

    def _row(self, workload: str, latency: float, system: System, window: Window, **extra: Any) -> Row:
        rejected = sum(
            window.stat(k)
            for k in (
                "invalid",
                "throttled",
                "errors",
                "dropped",
                "not_found",
                "access_denied",
                "unauthenticated",
            )
        )
        row = Row(
            workload=workload,
            latency_ms=latency,
            system=system.name,
            seconds=window.seconds,
            events=window.events,
            calls=window.calls,
            cpu_s=window.cpu("sut"),
            emulator_cores=window.cores("emulator"),
            kafka_cores=window.cores("kafka"),
            other_cores=window.other_cores(),
            **extra,
        )
        if rejected:
            row.notes.append(f"{rejected} calls not accepted")
        if window.steal_cores >= 0.05:
            row.notes.append(f"the host took {window.steal_cores:.2f} cores (steal)")
        jit = window.cores("kafka-jit")
        if jit is not None and jit >= 0.05:
            row.notes.append(f"Kafka's JIT compiler used {jit:.2f} cores")
        return row

    # ---- profiling ------------------------------------------------------------------------------------

    def _start_profiler(self, tag: str, pid: int) -> subprocess.Popen[bytes] | None:
        if self.profile_for != tag or self.profile_out is None:
            return None
        py_spy = Path(PYTHON).parent / "py-spy"
        if not py_spy.exists():
            self.progress("py-spy is not installed in the venv: no profile (.venv/bin/pip install py-spy)")
            return None
        argv = [str(py_spy), "record", "--pid", str(pid), "--rate", "100", "--nonblocking"]
        argv += ["--format", "raw", "--output", str(self.profile_out)]
        self.progress(f"profiling pid {pid} with py-spy → {self.profile_out}")
        with (self.run_dir / "py-spy.log").open("ab") as fh:
            return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)

    @staticmethod
    def _stop_profiler(profiler: subprocess.Popen[bytes] | None) -> float | None:
        """Stop py-spy; the CPU-seconds it used."""
        if profiler is None:
            return None
        used = cpu_seconds(profiler.pid)
        profiler.send_signal(2)  # SIGINT: py-spy writes its output and exits
        try:
            profiler.wait(30)
        except subprocess.TimeoutExpired:
            profiler.kill()
            profiler.wait(5)
        return used

    # ---- the runs -------------------------------------------------------------------------------------

    def catchup_run(
        self,
        system: System,
        latency: float,
        topic: str,
        total: int,
        best_mean: float,
        cap_s: float,
        warmup_s: float,
    ) -> Row:
        tag = f"catchup-{latency:g}ms-{system.slug}"
        emulator, url = start_latency_emulator(
            self.registry, latency, log=self.run_dir / f"{tag}.emulator.log"
        )
        sut = self.start_system(system, tag, url, topic)
        profiler = None
        profiler_cpu: float | None = None
        try:
            sampler = self.sampler(url, sut, emulator)
            began = time.monotonic()
            start: Snapshot | None = None
            end: Snapshot | None = None
            first_at: float | None = None  # when the first event was accepted
            complete = stalled = False
            progress_at = last_events = 0
            progress_t = began
            while end is None:
                snap = _next_snapshot(sampler, system, sut)
                if snap.events != last_events:
                    last_events, progress_t = snap.events, snap.t
                if start is None:
                    if first_at is None and snap.events:
                        first_at = snap.t
                    if first_at is not None and snap.t - first_at >= warmup_s:
                        start = snap
                        profiler = self._start_profiler(tag, sut.pid)
                    elif snap.t - began > WARMUP_TIMEOUT_S:
                        raise BenchError(f"{system.name}: {snap.events} events after {WARMUP_TIMEOUT_S:.0f}s")
                    continue
                if snap.events >= total:
                    end, complete = snap, True
                elif snap.t - start.t >= cap_s:
                    end = snap
                elif snap.t - progress_t >= STALL_S:
                    end, stalled = snap, True
                elif snap.events - progress_at >= 200_000:
                    progress_at = snap.events
                    self.progress(f"  … {snap.events:,} of {total:,} events accepted")
            rss = status_kib(sut.pid, "VmHWM")
        finally:
            profiler_cpu = self._stop_profiler(profiler)
            self.registry.stop(sut, grace=1)
            self.registry.stop(emulator, grace=1)
        assert start is not None
        assert end is not None
        row = self._row(
            "catch-up", latency, system, Window(start, end), best_mean=best_mean, peak_rss_kib=rss
        )
        if profiler_cpu is not None:
            row.notes.append(f"py-spy attached ({profiler_cpu / max(row.seconds, 1e-9):.2f} cores, in other)")
        if complete:
            row.notes.append(f"whole backlog ({total:,} events; RSS through all of it)")
        if stalled:
            row.notes.append(f"stalled: no progress for {STALL_S:.0f}s at {end.events:,} events")
        return row

    def live_run(self, system: System, latency: float, trace: LiveTrace, drain_s: float) -> Row:
        tag = f"live{trace.rate:g}-{latency:g}ms-{system.slug}"
        topic = f"bench-live-{uuid.uuid4().hex[:8]}"
        self.create_topic(topic)
        emulator, url = start_latency_emulator(
            self.registry, latency, log=self.run_dir / f"{tag}.emulator.log"
        )
        sut = self.start_system(system, tag, url, topic)
        producer: LiveProducer | None = None
        try:
            wait_for_log(sut, r"assigned ", 60)
            time.sleep(1.0)  # let the fetchers start on the assigned partitions
            sampler = self.sampler(url, sut, emulator)
            before = sampler.snapshot()
            producer = LiveProducer(self.kafka.bootstrap, topic, trace)
            producer.start()
            start: Snapshot | None = None
            end: Snapshot | None = None
            while end is None:
                snap = _next_snapshot(sampler, system, sut)
                if producer.error:
                    raise BenchError(f"live producer: {producer.error}")
                if start is None and producer.elapsed() >= 2.0:
                    start = snap
                if producer.finished.is_set() and start is not None:
                    end = snap
            produced = producer.produced
            drain_until = time.monotonic() + drain_s
            last = end
            transit = system.kind == "transit"  # sends nothing: its delays come from its own report
            if transit:
                time.sleep(1.0)  # let the last events arrive
            while not transit and last.events < produced and time.monotonic() < drain_until:
                time.sleep(SAMPLE_S)
                last = sampler.snapshot()
            rss = status_kib(sut.pid, "VmHWM")
        finally:
            if producer is not None:
                producer.stop()
            self.registry.stop(sut, grace=1)
            self.registry.stop(emulator, grace=1)
            self.delete_topics([topic])
        assert start is not None
        assert end is not None
        assert producer is not None
        delay = done_report(sut).get("delay_ms") if transit else last.stats.get("delay_ms")
        if not isinstance(delay, dict):
            raise BenchError(f"{system.name}: no delay_ms in its report or the emulator's stats")
        best = trace.best_mean(self.linger_ms / 1000)
        row = self._row(
            f"live {trace.rate / 1000:g}k/s",
            latency,
            system,
            Window(start, end),
            best_mean=best,
            peak_rss_kib=rss,
            p50_ms=delay.get("p50"),
            p99_ms=delay.get("p99"),
            run_events=last.events - before.events,
            run_calls=last.calls - before.calls,
        )
        row.notes.append(f"produced {produced / max(producer.seconds, 1e-9):,.0f}/s")
        if transit:
            row.notes.append(
                "the Kafka path alone: a plain consumer, nothing sent; delay = its arrival − sentAt"
            )
        behind = produced - last.events
        if behind > 0 and not transit:
            row.notes.append(f"{behind:,} undelivered {drain_s:.0f}s after production ended (p99 is a floor)")
        return row

    def ceiling_run(self, system: System, latency: float, cap_s: float, best_mean: float) -> Row:
        tag = f"ceiling-{latency:g}ms-{system.slug}"
        emulator, url = start_latency_emulator(
            self.registry, latency, log=self.run_dir / f"{tag}.emulator.log"
        )
        sut = self.start_system(system, tag, url, None)
        try:
            sampler = self.sampler(url, sut, emulator)
            began = time.monotonic()
            start: Snapshot | None = None
            end: Snapshot | None = None
            while end is None:
                snap = _next_snapshot(sampler, system, sut)
                if start is None:
                    if snap.calls >= 200:
                        start = snap
                    elif snap.t - began > WARMUP_TIMEOUT_S:
                        raise BenchError(f"{system.name}: no calls after {WARMUP_TIMEOUT_S:.0f}s")
                elif snap.t - start.t >= cap_s:
                    end = snap
            rss = status_kib(sut.pid, "VmHWM")
        finally:
            self.registry.stop(sut, grace=1)
            self.registry.stop(emulator, grace=1)
        assert start is not None
        assert end is not None
        row = self._row("ceiling", latency, system, Window(start, end), best_mean=best_mean, peak_rss_kib=rss)
        row.notes.append("no Kafka; pre-built 10-event bodies, signed per call")
        return row


def _next_snapshot(sampler: Sampler, system: System, sut: Proc) -> Snapshot:
    """Wait one sampling period and take a snapshot; a system under test that exited ends the run."""
    time.sleep(SAMPLE_S)
    snap = sampler.snapshot()
    if not sut.alive():
        raise BenchError(f"{system.name} exited (status {sut.popen.returncode}):\n{sut.log_tail()}")
    return snap


def done_report(proc: Proc) -> dict[str, Any]:
    """The ``done: {...}`` line a baseline prints to its log when it stops; {} if there is none."""
    for line in reversed(proc.log_tail(50).splitlines()):
        if line.startswith("done: "):
            report: dict[str, Any] = json.loads(line[len("done: ") :])
            return report
    return {}


class LiveProducer(threading.Thread):
    """Produces a live trace at its own pace; ``sentAt`` is the wall-clock time of each produce."""

    def __init__(self, bootstrap: str, topic: str, trace: LiveTrace) -> None:
        super().__init__(name="live-producer", daemon=True)
        # linger.ms 5 is librdkafka's default; at 1 ms the broker spends twice the CPU on tiny requests.
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": LIVE_PRODUCER_LINGER_MS,
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        self._topic = topic
        self._trace = trace
        self._halt = threading.Event()
        self.finished = threading.Event()
        self.produced = 0
        self.error: str | None = None
        self._t0 = 0.0
        self.seconds = 0.0  # how long producing took (the trace's duration unless the harness lagged)

    def elapsed(self) -> float:
        return time.monotonic() - self._t0 if self._t0 else 0.0

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # surfaced by the harness through .error
            self.error = repr(exc)
        finally:
            self.finished.set()

    def _run(self) -> None:
        producer = self._producer
        produce = producer.produce
        dumps = orjson.dumps
        # Connect and learn the topic's leaders before the clock starts: otherwise the first events
        # carry the producer's own start-up (a metadata round and a connection) in their latency.
        producer.list_topics(self._topic, timeout=10)
        self._t0 = t0 = time.monotonic()
        for ev in self._trace.events:
            if self._halt.is_set():
                break
            wait = t0 + ev.at - time.monotonic()
            if wait > 0.001:
                producer.poll(0)
                time.sleep(wait)
            message = ev.message
            message["sentAt"] = round(time.time(), 3)
            produce(self._topic, key=message["sessionId"].encode(), value=dumps(message))
            self.produced += 1
        self.seconds = time.monotonic() - t0
        producer.flush(30)

    def stop(self) -> None:
        self._halt.set()
        self.join(35)
