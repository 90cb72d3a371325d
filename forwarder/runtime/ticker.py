"""Ticker: the time-driven work, on one task. Each turn it serves dead-letter deliveries, sends the batches
whose linger has passed, re-applies flow control, starts a commit when the policy says, asks the hooks,
observes lag now and then, and updates the gauges; then it sleeps until the next linger deadline (at most
:data:`TICK_S`), so a batch leaves within a millisecond or two of its linger."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from forwarder.metrics import Metrics
from forwarder.offsets import OffsetTracker
from forwarder.runtime.committer import Committer
from forwarder.runtime.dispatch import Dispatcher
from forwarder.runtime.health import Health
from forwarder.runtime.hooks import Hooks, RuntimeView
from forwarder.runtime.pump import Pump
from forwarder.runtime.source import Source
from forwarder.runtime.supervisor import Supervisor

TICK_S = 0.05  # longest sleep of the ticker
LAG_INTERVAL_S = 5.0


class Ticker:
    """The periodic duties of a replica."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        pump: Pump,
        committer: Committer,
        health: Health,
        source: Source,
        tracker: OffsetTracker,
        supervisor: Supervisor,
        metrics: Metrics,
        clock: Callable[[], float],
        hooks: tuple[Hooks, RuntimeView] | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._pump = pump
        self._committer = committer
        self._health = health
        self._source = source
        self._tracker = tracker
        self._supervisor = supervisor
        self._metrics = metrics
        self._clock = clock
        self._hooks = hooks
        self._last_lag = 0.0

    async def run(self) -> None:
        """Tick until cancelled."""
        batcher, routes = self._dispatcher.batcher, self._dispatcher.routes
        while True:
            self.tick(self._clock())
            deadline = batcher.next_deadline()
            if routes is not None:
                deadline = _earliest(deadline, routes.next_deadline())
            wait = TICK_S if deadline is None else min(TICK_S, max(0.001, deadline - self._clock()))
            await asyncio.sleep(wait)

    def tick(self, now: float) -> None:
        """One turn of the periodic duties."""
        dispatcher, supervisor = self._dispatcher, self._supervisor
        self._health.ticked()
        dispatcher.dead_letters.poll()
        dispatcher.dispatch_due()
        self._pump.apply_flow()
        if self._committer.due(now):
            supervisor.spawn(self._committer.commit(periodic=True), name="commit")
        if self._hooks is not None:
            hooks, view = self._hooks
            hooks.progress(view)
            if hooks.finished(view):
                supervisor.request_stop("finished")
        if now - self._last_lag >= LAG_INTERVAL_S:
            self._last_lag = now
            supervisor.spawn(self._health.observe(self._source, self._tracker, self._metrics), name="lag")
        metrics = self._metrics
        metrics.buffered_events.set(dispatcher.batcher.buffered)
        metrics.in_flight_events.set(dispatcher.in_flight_events)
        metrics.finished_uncommitted.set(self._tracker.finished_uncommitted())
        metrics.paused_partitions.set(self._source.paused_partitions)
        metrics.rate_limit.set(dispatcher.sender.limiter.rate or 0)
        if dispatcher.routes is not None:
            for route in dispatcher.routes.routes:
                metrics.route_buffered.labels(route.operation).set(route.load())


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return b if a is None else a
    return min(a, b)
