"""App: one replica's lifecycle. It builds every part up front, runs the pump and the ticker, handles
signals, and shuts down.

The parts, each in its own module of this package: the :class:`~forwarder.runtime.pump.Pump` (consume
loop), the :class:`~forwarder.runtime.dispatch.Dispatcher` (batches out, outcomes routed), the
:class:`~forwarder.runtime.flow.FlowControl` (pause and resume), the
:class:`~forwarder.runtime.committer.Committer`, the :class:`~forwarder.runtime.rebalance.Rebalancer`,
:class:`~forwarder.runtime.health.Health` and the :class:`~forwarder.runtime.ticker.Ticker`.

Shutdown: the first SIGTERM/SIGINT stops polling; the dispatcher drains (flush, wait for in-flight work,
bounded by ``shutdown.timeout_s``); the finished positions are committed; the source leaves the group;
a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable

from confluent_kafka import KafkaError

from forwarder import __version__
from forwarder.batch import Batcher
from forwarder.config import Config, redact
from forwarder.consume import KafkaConsumer, RebalanceHandler, consumer_config
from forwarder.dead_letter import DeadLetterWriter
from forwarder.decode import Decoder
from forwarder.formats import parser_for
from forwarder.metrics import Metrics
from forwarder.offsets import OffsetTracker, TopicPartitionKey
from forwarder.personalize.transport import Transport, make_transport
from forwarder.probe_server import ObservabilityServer
from forwarder.runtime.committer import CommitPolicy, Committer
from forwarder.runtime.dispatch import DeadLetters, Dispatcher
from forwarder.runtime.flow import FlowControl
from forwarder.runtime.health import Health, poll_stall_after
from forwarder.runtime.hooks import Hooks, PartitionView
from forwarder.runtime.pump import Pump
from forwarder.runtime.rebalance import Rebalancer
from forwarder.runtime.routes import build_routes
from forwarder.runtime.source import Source
from forwarder.runtime.supervisor import Supervisor
from forwarder.runtime.ticker import Ticker
from forwarder.send import Sender

log = logging.getLogger("forwarder.runtime")

SourceFactory = Callable[[RebalanceHandler], Source]


class _SendObserver:
    """Feeds the sender's reports into metrics."""

    def __init__(self, metrics: Metrics, tracking_id: str) -> None:
        self._metrics = metrics
        metrics.configured_tracker(tracking_id)

    def call_finished(self, outcome: str, events: int, seconds: float) -> None:
        self._metrics.call_finished(outcome, events, seconds)

    def outage(self, active: bool, reason: str, tracking_id: str) -> None:
        self._metrics.outage_changed(active, tracking_id)


def _log_start(cfg: Config) -> None:
    log.info(
        "forwarder %s starting: topics=%s group=%s protocol=%s kafka=%s dead_letter=%s transport=%s "
        "endpoint=%s",
        __version__,
        ",".join(cfg.kafka.topics),
        cfg.kafka.group_id,
        cfg.kafka.group_protocol,
        cfg.kafka.bootstrap_servers,
        cfg.dead_letter.topic,
        cfg.personalize.transport,
        cfg.personalize.endpoint_url or "(AWS)",
    )
    log.debug("consumer properties: %s", redact(consumer_config(cfg.kafka)))


def _decoder(cfg: Config) -> Decoder:
    return Decoder(cfg.mapping, cfg.personalize.tracking_id, parser_for(cfg.input, list(cfg.kafka.topics)))


def _sender(cfg: Config, transport: Transport, metrics: Metrics, clock: Callable[[], float]) -> Sender:
    personalize = cfg.personalize
    return Sender(
        transport,
        cfg.retry,
        personalize.max_in_flight,
        observer=_SendObserver(metrics, personalize.tracking_id),
        clock=clock,
        max_calls_per_second=personalize.max_calls_per_second,
        tracking_id=personalize.tracking_id,  # its outage is the replica's; others' are scoped
    )


class App:
    """One forwarder replica. Build it on the running event loop (:func:`forwarder.runtime.run_app`).

    ``source``, ``dead_letters`` and ``transport`` replace the Kafka consumer, the dead-letter producer
    and the PutEvents transport (the in-memory ones of :mod:`forwarder.runtime.testing`). ``on_stop`` is
    called at the first stop request (``forwarder run`` arms its exit deadline with it).
    """

    def __init__(
        self,
        cfg: Config,
        metrics: Metrics | None = None,
        hooks: Hooks | None = None,
        *,
        source: SourceFactory | None = None,
        dead_letters: DeadLetters | None = None,
        transport: Transport | None = None,
        on_stop: Callable[[], object] | None = None,
    ) -> None:
        clock = asyncio.get_running_loop().time
        self.cfg = cfg
        self._variant = hooks is not None  # replay reads its own topic; routes find records by original topic
        _log_start(cfg)  # first: building the parts logs too (boto3 finding credentials)
        self.metrics = metrics = metrics or Metrics()
        self.supervisor = supervisor = Supervisor(on_stop)
        self.tracker = tracker = OffsetTracker()
        decoder = _decoder(cfg)
        # Filled at each assignment (the Admin API); derived event ids and dead-letter headers carry it.
        self.topic_ids = decoder.topic_ids
        if hooks is not None:
            hooks.topic_ids = decoder.topic_ids
        sender = _sender(cfg, transport or make_transport(cfg.personalize), metrics, clock)
        batcher = Batcher(cfg.batching.max_events, cfg.batching.linger_ms / 1000)
        self.dispatcher = Dispatcher(
            batcher, sender, dead_letters or self._dead_letter_writer(), metrics, supervisor, clock
        )
        self.dispatcher.routes = build_routes(cfg, self.dispatcher.dead_letter, metrics, supervisor, clock)
        self.rebalancer = Rebalancer(tracker, self.dispatcher, metrics, supervisor, cfg.shutdown.timeout_s)
        self.health = Health(
            supervisor,
            sender,
            self.rebalancer.assignment,
            poll_stall_s=poll_stall_after(cfg.shutdown.timeout_s),
        )
        self.source: Source = (source or self._kafka_consumer)(self.rebalancer)
        self.flow = FlowControl(cfg.backpressure.max_buffered_events)
        self.pump = self._pump(decoder, clock, hooks)
        self.committer = Committer(
            self.source, tracker, metrics, CommitPolicy(cfg.kafka.commit_interval_ms / 1000)
        )
        self.ticker = Ticker(
            self.dispatcher,
            self.pump,
            self.committer,
            self.health,
            self.source,
            tracker,
            supervisor,
            metrics,
            clock,
            None if hooks is None else (hooks, self),
        )
        self.server = (
            ObservabilityServer(metrics, self.health) if cfg.observability.port is not None else None
        )
        self._signals = 0

    def _kafka_consumer(self, handler: RebalanceHandler) -> KafkaConsumer:
        kafka, loop = self.cfg.kafka, asyncio.get_running_loop()
        if self.cfg.routes and not self._variant:  # one consumer, one group: the routes' topics too
            kafka = kafka.model_copy(update={"topics": self.cfg.all_topics})
        return KafkaConsumer(
            kafka,
            handler,
            loop,
            self.cfg.shutdown.timeout_s,
            on_error=self._consumer_error,
            # A regex subscription may match the dead-letter topic; listed explicitly, it is a replay's input.
            exclude_topics=frozenset({self.cfg.dead_letter.topic}) - set(kafka.topics),
            topic_ids=self.topic_ids,  # derived event ids carry the topic's id
        )

    def _pump(self, decoder: Decoder, clock: Callable[[], float], hooks: Hooks | None) -> Pump:
        return Pump(
            self.source,
            self.tracker,
            decoder,
            self.dispatcher,
            self.flow,
            self.health,
            self.supervisor,
            self.metrics,
            clock,
            self.cfg.kafka.poll_batch_size,
            hooks,
        )

    def _dead_letter_writer(self) -> DeadLetterWriter:
        cfg, metrics, supervisor = self.cfg, self.metrics, self.supervisor
        return DeadLetterWriter(
            cfg.dead_letter,
            cfg.kafka,
            cfg.logging.include_payloads,
            on_written=lambda stage: metrics.dead_lettered.labels(stage).inc(),
            # Without it a fatal producer error (fenced, out of sequence) would fail every later write,
            # and the replica would hold its offsets and retry them forever while looking healthy.
            on_error=lambda err: supervisor.kafka_error(err, "dead-letter producer"),
            on_held=metrics.dead_letters_held.set,
            topic_ids=self.topic_ids,
        )

    # ---- the view hooks get (forwarder.runtime.hooks.RuntimeView) ---------------------------------

    def load(self) -> int:
        """Events held in memory: buffered, in PutEvents calls, or awaiting a dead-letter acknowledgement."""
        return self.dispatcher.load()

    def partition(self, tp: TopicPartitionKey) -> PartitionView | None:
        """The partition's progress if it is assigned here."""
        return self.tracker.get(tp)

    def request_stop(self, reason: str = "requested") -> None:
        """Begin a graceful stop (idempotent)."""
        self.supervisor.request_stop(reason)

    @property
    def exit_code(self) -> int:
        """0 after a clean stop, 1 after an internal or fatal client error."""
        return self.supervisor.exit_code

    # ---- lifecycle -------------------------------------------------------------------------------

    def _consumer_error(self, err: KafkaError) -> None:
        # The consumer's error_cb, served by its poll() in the consumer thread: it only sets flags.
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.health.broker_down = True
        self.supervisor.kafka_error(err, "consumer")

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
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_signal, signum)
        if self.server is not None:
            host, port = self.cfg.observability.host, self.cfg.observability.port
            assert port is not None  # the server exists only with a port
            bound = await self.server.start(host, port)
            log.info("metrics and probes on http://%s:%d/metrics, /healthz, /readyz", host, bound)
        await self.source.subscribe()
        self.health.start()
        ticker = loop.create_task(self.ticker.run(), name="ticker")
        ticker.add_done_callback(self.supervisor.task_done)  # a failing ticker stops the replica
        try:
            await self.pump.run()
        finally:
            await self._shutdown(ticker)
        return self.exit_code

    async def _shutdown(self, ticker: asyncio.Task[None]) -> None:
        dispatcher, supervisor = self.dispatcher, self.supervisor
        dead_letters, batcher = dispatcher.dead_letters, dispatcher.batcher
        await dispatcher.drain(
            lambda: bool(supervisor.tasks or dead_letters.pending or batcher.buffered or dispatcher.load()),
            self.cfg.shutdown.timeout_s,
        )
        left = self.tracker.unfinished()
        if left:
            log.warning(
                "%d messages unfinished at the shutdown deadline: not committed, they will be redelivered",
                left,
            )
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # a failure was logged when it ended
            await ticker
        await self.committer.commit()
        await supervisor.cancel_all()
        await self.source.close()
        dead_letters.flush(5.0)
        await dispatcher.sender.close()
        if dispatcher.routes is not None:
            await dispatcher.routes.close()
        if self.server is not None:
            await self.server.stop()
        log.info("stopped")
