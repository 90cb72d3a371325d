"""The wiring: consume → decode → batch → send → dead-letter → commit, and the loop that drives it.

One :class:`App` is one replica: one consumer in the group, one event loop. Stages never reach into
each other's state; the app moves events between them and owns the rules that span stages:

- every message taken is tracked by the offset tracker until it is *finished* (accepted by PutEvents,
  or acknowledged on the dead-letter topic); commits only ever carry tracker positions;
- backpressure: when buffered + in-flight + unacknowledged dead-letter events reach
  ``limits.max_buffered_events`` (or the service is in an outage) every partition is paused, and polling
  goes on so the group keeps this member; consumption resumes at half the limit;
- rebalances: revoked partitions are flushed and awaited (bounded by ``shutdown.timeout_s``) and their
  positions committed before they are let go; lost partitions are dropped without a commit;
- shutdown: the first SIGTERM/SIGINT stops polling, flushes, waits for in-flight work (bounded), commits
  and closes; a second one exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message

from forwarder.batch import Batch, Batcher
from forwarder.config import Config, redact
from forwarder.consume import KafkaConsumer, Partitions, RebalanceHandler, consumer_config
from forwarder.dead_letter import DeadLetterWriter
from forwarder.decode import Decoder, Event, Rejection
from forwarder.logs import kafka_logger
from forwarder.metrics import Metrics, ObservabilityServer
from forwarder.offsets import OffsetTracker, PartitionOffsets, TopicPartitionKey
from forwarder.send import STAGE_RETRY_EXHAUSTED, Sender, make_transport

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 0.05
TICK_S = 0.05  # longest sleep of the ticker (dead-letter callbacks, backpressure, commits)
LAG_INTERVAL_S = 5.0
STALL_AFTER_S = 30.0  # /healthz fails when the loop has not turned for this long


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the latency path.

    The pipeline's objects are freed by reference counting; the collector mostly re-walks what the imports
    created (boto3/botocore alone are hundreds of thousands of objects). Measured on the live benchmark
    (5,000 events/s): 1.26 s of collector pauses over the run, the longest 73 ms, p99 produce→accepted
    421 ms; after freezing the start-up heap and raising the thresholds: 0.06 s, 18 ms, 260 ms.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def run_app(app: App) -> int:
    """Run an app to completion on uvloop where it is installed (measured: ~17 % less CPU per PutEvents
    call than asyncio's own loop on the fast transport), else on asyncio's loop."""
    tune_gc()
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return asyncio.run(app.run())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(app.run())


class _SendObserver:
    """Feeds the sender's reports into metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def call_finished(self, outcome: str, events: int, seconds: float) -> None:
        self._metrics.call_finished(outcome, events, seconds)

    def outage(self, active: bool, reason: str) -> None:
        self._metrics.outage_changed(active)


class Hooks(Protocol):
    """What a variant of the pipeline (``forwarder replay``) changes; the plain daemon has none."""

    def accept(self, message: Message) -> bool:
        """Whether this run takes the message at all; one not taken is not tracked, so not committed."""

    def prepare(self, message: Message) -> Message | None:
        """The message to decode in place of the one consumed, or None to skip it (it counts as finished)."""

    def finished(self, app: App) -> bool:
        """Whether the run is complete (checked on every tick); the daemon itself never is."""

    def progress(self, app: App) -> None:
        """Called on every tick, to show progress."""


class App(RebalanceHandler):
    """One forwarder replica."""

    def __init__(self, cfg: Config, metrics: Metrics | None = None, hooks: Hooks | None = None) -> None:
        self.cfg = cfg
        self._hooks = hooks
        self.metrics = metrics or Metrics()
        self.decoder = Decoder(cfg.mapping, cfg.personalize.tracking_id)
        self.batcher = Batcher(cfg.batching.max_events, cfg.batching.linger_ms / 1000)
        self.tracker = OffsetTracker()
        self.in_flight_events = 0
        self.paused = False
        self.assignment: set[TopicPartitionKey] = set()
        self.last_tick = 0.0
        self.exit_code = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop_requested = False
        self._signals = 0
        self._commit_running = False
        self._last_commit = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sender: Sender | None = None
        self._dlq: DeadLetterWriter | None = None
        self._consumer: KafkaConsumer | None = None
        self._server: ObservabilityServer | None = None
        self.broker_down = False
        self.started = False

    # ---- lifecycle -------------------------------------------------------------------------------

    def request_stop(self, reason: str = "requested") -> None:
        """Begin a graceful stop (idempotent)."""
        if not self._stop_requested:
            log.info(
                "stopping (%s): no more polling; flushing, waiting for in-flight calls, committing", reason
            )
        self._stop_requested = True

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals > 1:
            log.error(
                "second %s: exiting at once; unfinished messages will be redelivered",
                signal.Signals(signum).name,
            )
            logging.shutdown()
            os._exit(128 + signum)
        self.request_stop(signal.Signals(signum).name)

    async def run(self, install_signal_handlers: bool = True) -> int:
        """Run until stopped; return the process exit code (0 after a clean stop)."""
        loop = self._loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_signal, signum)
        cfg = self.cfg
        log.info(
            "starting: topics=%s group=%s protocol=%s kafka=%s dead_letter=%s transport=%s endpoint=%s",
            ",".join(cfg.kafka.topics),
            cfg.kafka.group_id,
            cfg.kafka.group_protocol,
            cfg.kafka.bootstrap_servers,
            cfg.dead_letter.topic,
            cfg.personalize.transport,
            cfg.personalize.endpoint_url or "(AWS)",
        )
        log.debug("consumer properties: %s", redact(consumer_config(cfg.kafka)))
        self._sender = Sender(
            make_transport(cfg.personalize),
            cfg.retry,
            cfg.personalize.max_in_flight,
            observer=_SendObserver(self.metrics),
            clock=loop.time,
            max_calls_per_second=cfg.personalize.max_calls_per_second,
        )
        self._dlq = DeadLetterWriter(
            cfg,
            on_written=self._dead_lettered,
            on_error=self._dead_letter_error,
            on_held=self.metrics.dead_letters_held.set,
            topic_ids=self.decoder.topic_ids,
        )
        self._consumer = KafkaConsumer(
            cfg.kafka,
            self,
            loop,
            cfg.shutdown.timeout_s,
            on_error=self._kafka_error,
            # A regex subscription may match the dead-letter topic; listed explicitly, it is a replay's input.
            exclude_topics=frozenset({cfg.dead_letter.topic}) - set(cfg.kafka.topics),
            topic_ids=self.decoder.topic_ids,  # derived event ids carry the topic's id
        )
        if cfg.observability.port is not None:
            self._server = ObservabilityServer(self.metrics, self)
            port = await self._server.start(cfg.observability.host, cfg.observability.port)
            log.info(
                "metrics and probes on http://%s:%d/metrics, /healthz, /readyz", cfg.observability.host, port
            )
        await self._consumer.subscribe()
        self.started = True
        ticker = loop.create_task(self._tick_loop(), name="ticker")
        ticker.add_done_callback(self._send_done)  # should the ticker fail, the replica stops, not idles
        try:
            while not self._stop_requested:
                messages = await self._consumer.consume(
                    cfg.kafka.poll_batch_size, POLL_TIMEOUT_S, paused=self.paused
                )
                if messages:
                    self.broker_down = False
                    self._take(messages)
                    self._backpressure()
        finally:
            await self._shutdown(ticker)
        return self.exit_code

    async def _shutdown(self, ticker: asyncio.Task[None]) -> None:
        assert self._consumer
        assert self._dlq
        assert self._sender
        assert self._loop
        loop = self._loop
        self.batcher.set_flushing(True)
        self._dispatch_due()
        deadline = loop.time() + self.cfg.shutdown.timeout_s
        while (self._tasks or self._dlq.pending or self.batcher.buffered) and loop.time() < deadline:
            self._dlq.poll()
            self._dispatch_due()
            await asyncio.sleep(0.01)
        left = self.tracker.unfinished()
        if left:
            log.warning(
                "%d messages unfinished at the shutdown deadline: not committed, they will be redelivered",
                left,
            )
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # a failure was logged when it ended
            await ticker
        await self._commit()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._consumer.close()
        self._dlq.flush(5.0)
        await self._sender.close()
        if self._server is not None:
            await self._server.stop()
        log.info("stopped")

    # ---- the per-message path --------------------------------------------------------------------

    def _take(self, messages: list[Message]) -> None:
        assert self._loop is not None
        now = self._loop.time()
        tracker_get = self.tracker.get
        decode = self.decoder.decode
        add = self.batcher.add
        hooks = self._hooks
        prepare = hooks.prepare if hooks is not None else None
        both = 0
        for consumed in messages:
            err = consumed.error()
            if err is not None:
                self._message_error(err)
                continue
            tp = (consumed.topic() or "", consumed.partition() or 0)
            origin = tracker_get(tp)
            if origin is None:
                continue  # revoked while this poll was served: never committed here, the new owner reads it
            if hooks is not None and not hooks.accept(consumed):
                continue
            offset = consumed.offset() or 0
            origin.track(offset)
            msg = consumed if prepare is None else prepare(consumed)
            if msg is None:
                origin.finish(offset)  # not for this run (a replay's filter): nothing to do
                continue
            decoded = decode(msg)
            if type(decoded) is Rejection:
                self._dead_letter(msg, origin, offset, decoded.stage, decoded.error_class, decoded.message, 0)
                continue
            assert isinstance(decoded, Event)
            decoded.origin = origin
            decoded.offset = offset
            if decoded.both_impression_kinds:
                both += 1
            batch = add(decoded, now)
            if batch is not None:
                self._dispatch(batch)
        self.metrics.messages_consumed.inc(len(messages))
        if both:
            self.metrics.both_impression_kinds.inc(both)

    def _dispatch(self, batch: Batch) -> None:
        assert self._loop is not None
        self.in_flight_events += len(batch.events)
        task = self._loop.create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._send_done)

    def _dispatch_due(self) -> None:
        assert self._loop is not None
        for batch in self.batcher.due(self._loop.time()):
            self._dispatch(batch)

    async def _send(self, batch: Batch) -> None:
        assert self._sender is not None
        assert self._loop is not None
        result = await self._sender.send(batch)
        for ev in result.accepted:
            assert ev.origin is not None
            ev.origin.finish(ev.offset)
        self.metrics.events_sent.inc(len(result.accepted))
        if result.retries:
            self.metrics.retries.inc(result.retries)
        exhausted = False
        for failure in result.failed:
            ev = failure.event
            assert ev.origin is not None
            exhausted |= failure.stage == STAGE_RETRY_EXHAUSTED
            self._dead_letter(
                ev.message,
                ev.origin,
                ev.offset,
                failure.stage,
                failure.error_class,
                failure.message,
                failure.attempts,
                ev.key.session_id,
            )
        if exhausted:
            self.metrics.batches_exhausted.inc()
        self.in_flight_events -= len(batch.events)
        following = self.batcher.complete(batch.key, self._loop.time())
        if following is not None:
            self._dispatch(following)

    def _send_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # A bug, not a delivery outcome: its messages stay unfinished (never committed past), and the
            # replica stops so that a supervisor restarts it and the messages are read again.
            log.critical("internal error in task %s; stopping", task.get_name(), exc_info=exc)
            self.exit_code = 1
            self.request_stop("internal error")

    def _dead_letter(
        self,
        msg: Message,
        origin: PartitionOffsets,
        offset: int,
        stage: str,
        error_class: str,
        message: str,
        attempts: int,
        session_id: str | None = None,
    ) -> None:
        """Dead-letter ``msg`` (its content); finish ``offset`` of ``origin`` once the broker has it."""
        assert self._dlq is not None
        self._dlq.write(
            msg,
            stage,
            error_class,
            message,
            attempts,
            on_done=lambda: origin.finish(offset),
            session_id=session_id,
        )

    def _dead_lettered(self, stage: str) -> None:
        self.metrics.dead_lettered.labels(stage).inc()

    def _report_kafka_error(self, err: KafkaError, client: str) -> None:
        """Log a client error; a fatal one (the client is unusable from now on) stops the replica, exit 1.

        Only sets flags, so it may run in the consumer's thread as well as on the loop.
        """
        if err.fatal():
            log.critical("fatal Kafka error (%s): %s", client, err.str())
            self.exit_code = 1
            self.request_stop(f"fatal Kafka error in the {client}")
        else:
            kafka_logger().warning("kafka (%s): %s", client, err.str())

    def _message_error(self, err: KafkaError) -> None:
        if err.code() != KafkaError._PARTITION_EOF:
            self._report_kafka_error(err, "consumer")

    def _kafka_error(self, err: KafkaError) -> None:
        # The consumer's error_cb, served by its poll() in the consumer thread.
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.broker_down = True
        self._report_kafka_error(err, "consumer")

    def _dead_letter_error(self, err: KafkaError) -> None:
        # The dead-letter producer's error_cb, served by its poll() on the loop. Without it a fatal error
        # (an idempotent producer fenced or out of sequence) would fail every later write, and the replica
        # would hold its offsets and retry them forever while looking healthy.
        self._report_kafka_error(err, "dead-letter producer")

    # ---- time-driven work --------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        assert self._loop is not None
        assert self._dlq is not None
        assert self._sender is not None
        loop = self._loop
        tick = TICK_S
        commit_every = self.cfg.kafka.commit_interval_ms / 1000
        last_lag = 0.0
        while True:
            now = loop.time()
            self.last_tick = now
            self._dlq.poll()
            self._dispatch_due()
            self._backpressure()
            if now - self._last_commit >= commit_every and not self._commit_running:
                self._last_commit = now
                self._background(self._commit())
            if self._hooks is not None:
                self._hooks.progress(self)
                if self._hooks.finished(self):
                    self.request_stop("finished")
            if now - last_lag >= LAG_INTERVAL_S:
                last_lag = now
                self._background(self._observe_lag())
            self.metrics.buffered_events.set(self.batcher.buffered)
            self.metrics.in_flight_events.set(self.in_flight_events)
            self.metrics.paused_partitions.set(self._consumer_paused())
            self.metrics.rate_limit.set(self._sender.limiter.rate or 0)
            # Wake for the next linger deadline rather than on a coarse grid: a batch leaves within a
            # millisecond or two of its linger, which is what the live-latency target needs.
            deadline = self.batcher.next_deadline()
            wait = tick if deadline is None else min(tick, max(0.001, deadline - loop.time()))
            await asyncio.sleep(wait)

    def _background(self, coro: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro, name=getattr(coro, "__qualname__", None))
        self._tasks.add(task)
        task.add_done_callback(self._send_done)

    def _consumer_paused(self) -> int:
        return self._consumer.paused_partitions if self._consumer is not None else 0

    def load(self) -> int:
        """Events held in memory: buffered, in PutEvents calls, or awaiting a dead-letter acknowledgement."""
        assert self._dlq is not None
        return self.batcher.buffered + self.in_flight_events + self._dlq.pending

    def _backpressure(self) -> None:
        """Decide whether consumption pauses; the next poll applies it (see KafkaConsumer.consume)."""
        assert self._sender is not None
        limit = self.cfg.limits.max_buffered_events
        load = self.load()
        outage = self._sender.in_outage
        if not self.paused and (load >= limit or outage):
            self.paused = True
            log.info(
                "pausing consumption (%s)",
                "PutEvents outage" if outage else f"{load} events held, limit {limit}",
            )
        elif self.paused and not outage and load <= limit // 2:
            self.paused = False
            log.info("resuming consumption (%d events held)", load)

    async def _observe_lag(self) -> None:
        assert self._consumer is not None
        if self._consumer.rebalancing:
            return
        partitions = self.tracker.partitions()
        highs = await self._consumer.watermarks(partitions)
        for tp, high in highs.items():
            state = self.tracker.get(tp)
            if state is None:
                continue
            position = state.committed if state.committed is not None else state.position
            if position is not None:
                self.metrics.consumer_lag.labels(tp[0], str(tp[1])).set(max(0, high - position))
        if self.broker_down:
            self.broker_down = not await self._consumer.reachable()

    # ---- probes ----------------------------------------------------------------------------------

    def liveness(self) -> tuple[bool, str]:
        """The loop is turning (the ticker ran recently)."""
        if self._loop is None or not self.started:
            return True, "starting"
        age = self._loop.time() - self.last_tick
        if age > STALL_AFTER_S:
            return False, f"event loop stalled for {age:.0f}s"
        return True, "loop turning"

    def readiness(self) -> tuple[bool, str]:
        """Partitions assigned, broker reachable, PutEvents not in an outage, not stopping."""
        if self._stop_requested:
            return False, "stopping"
        if self._sender is not None and self._sender.in_outage:
            return False, f"PutEvents outage: {self._sender.outage_reason}"
        if self.broker_down:
            return False, "no Kafka broker reachable"
        if not self.assignment:
            return False, "no partition assigned (more replicas than partitions, or joining the group)"
        return True, f"{len(self.assignment)} partitions assigned"

    async def _commit(self) -> None:
        assert self._consumer is not None
        if self._consumer.rebalancing:
            return  # the consumer thread is serving the rebalance, which commits itself
        positions = self.tracker.commit_positions()
        if not positions:
            return
        self._commit_running = True
        try:
            done = await self._consumer.commit(positions)
        finally:
            self._commit_running = False
        self.tracker.mark_committed(done)
        for (topic, partition), offset in done.items():
            self.metrics.committed_offset.labels(topic, str(partition)).set(offset)

    # ---- rebalances (called on the loop while the consumer thread waits) ---------------------------

    async def assigned(self, partitions: Partitions) -> None:
        """Track newly assigned partitions."""
        for tp in partitions:
            self.tracker.assign(tp)
            self.assignment.add(tp)
        self.metrics.rebalances.labels("assign").inc()
        self.metrics.assigned_partitions.set(len(self.assignment))

    async def revoking(self, partitions: Partitions) -> dict[TopicPartitionKey, int]:
        """Flush, wait for the revoked partitions' messages to finish (bounded), return their positions."""
        assert self._loop is not None
        assert self._dlq is not None
        revoked = set(partitions)
        self.metrics.rebalances.labels("revoke").inc()
        loop = self._loop
        # Flush every session, not only the revoked partitions' ones: simpler, and rebalances are rare.
        self.batcher.set_flushing(True)
        try:
            self._dispatch_due()
            budget = 2.0 if self._stop_requested else self.cfg.shutdown.timeout_s
            deadline = loop.time() + budget
            while self.tracker.unfinished(revoked) and loop.time() < deadline:
                self._dlq.poll()  # the ticker may be waiting; deliveries must still be served
                self._dispatch_due()
                await asyncio.sleep(0.005)
        finally:
            if not self._stop_requested:
                self.batcher.set_flushing(False)
        left = self.tracker.unfinished(revoked)
        if left:
            log.warning(
                "%d messages of revoked partitions unfinished after %.0fs: committing before them; the new "
                "owner delivers them again",
                left,
                budget,
            )
        return self.tracker.commit_positions(only=revoked)

    async def revoked(self, partitions: Partitions) -> None:
        """Forget revoked partitions and any of their events still buffered."""
        self._forget(partitions)

    async def lost(self, partitions: Partitions) -> None:
        """Forget lost partitions without committing."""
        self.metrics.rebalances.labels("lost").inc()
        self._forget(partitions)

    def _forget(self, partitions: Partitions) -> None:
        gone = set(partitions)
        for tp in gone:
            self.tracker.drop(tp)
            self.assignment.discard(tp)
            # Another replica reports this partition now: a frozen series here would mislead alerts.
            for gauge in (self.metrics.consumer_lag, self.metrics.committed_offset):
                with contextlib.suppress(KeyError):
                    gauge.remove(tp[0], str(tp[1]))
        self.batcher.discard(lambda ev: ev.origin is None or ev.origin.tp not in gone)
        self.metrics.assigned_partitions.set(len(self.assignment))
