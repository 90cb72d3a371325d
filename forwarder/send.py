"""Send: deliver a batch with PutEvents — retries, bisection of rejected batches, outage handling.

Contract of :meth:`Sender.send`: it returns only when every event of the batch has an outcome, as a
:class:`SendResult`: accepted by the service, or failed with the dead-letter stage and reason
(``api``: the service rejected that very event; ``retry_exhausted``: throttling, 5xx, timeouts or
connection errors outlasted the retry budget; ``outage``: a tracking id of the messages' own was refused
for longer than ``retry.outage_max_s``). It never returns while the service is in an *outage*
(``ResourceNotFoundException``, access denied, bad credentials) short of that bound: those are not the
messages' fault, so it reports the outage, waits and tries again until the service accepts. Outages are
scoped to the tracker they concern (:mod:`forwarder.outages`): the configured tracker's stops every
batch, another tracker's only that tracker's batches.

The transports (:mod:`forwarder.personalize`) make the call and raise one of three errors
(:class:`~forwarder.personalize.errors.InvalidInput`, :class:`~forwarder.personalize.errors.Retryable`,
:class:`~forwarder.personalize.errors.Outage`); this module is only the policy around them: in-flight
slots, retries (ours, with tenacity; the SDK's own are off so the two do not multiply), bisection and
the outage probe.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_never,
    wait_random_exponential,
)

from forwarder.batch import Batch
from forwarder.config import RetryConfig
from forwarder.decode import Event, SessionKey
from forwarder.outages import OutageExpired, Outages
from forwarder.outcome import Reason, Stage
from forwarder.personalize.errors import InvalidInput, Outage, PutEventsError, Retryable
from forwarder.personalize.transport import Transport
from forwarder.probe import OutageProbe
from forwarder.rate_limit import AdaptiveRateLimiter

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Failure:
    """An event that goes to the dead-letter topic, and why."""

    event: Event
    reason: Reason


@dataclass(slots=True)
class SendResult:
    """Every event of a batch, accepted or failed."""

    accepted: list[Event] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    calls: int = 0  # every PutEvents call made: first attempts, retries, halves of a bisection, probes
    retries: int = 0  # calls that repeated one after a throttle, a 5xx, a timeout or a broken connection


class SendObserver(Protocol):
    """What the sender reports (metrics, health); every method must be cheap and never raise."""

    def call_finished(self, outcome: str, events: int, seconds: float) -> None:
        """One PutEvents call ended: ``ok``, ``throttled``, ``5xx``, ``error``, ``invalid`` or ``outage``."""

    def outage(self, active: bool, reason: str, tracking_id: str) -> None:
        """The service entered (``active``) or left an outage for ``tracking_id`` (the configured one for
        the replica's own outages)."""


class _NullObserver:
    def call_finished(self, outcome: str, events: int, seconds: float) -> None:
        pass

    def outage(self, active: bool, reason: str, tracking_id: str) -> None:
        pass


class Sender:
    """Concurrency limit, retries, bisection and outage handling around a :class:`Transport`."""

    def __init__(
        self,
        transport: Transport,
        retry: RetryConfig,
        max_in_flight: int,
        observer: SendObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_calls_per_second: float | None = None,
        tracking_id: str | None = None,
    ) -> None:
        """``tracking_id``: the configured one, whose outage is the replica's; ``None``: every outage is."""
        self._transport = transport
        self.limiter = AdaptiveRateLimiter(max_calls_per_second, clock)
        self._retry = retry
        self._slots = asyncio.Semaphore(max_in_flight)
        self._observer = observer or _NullObserver()
        self._clock = clock
        self.outages = Outages(
            tracking_id, retry.outage_first_probe_s, retry.outage_retry_interval_s, retry.outage_max_s, clock
        )
        self._probe = OutageProbe(self.outages, retry, self._call, self._observer)

    @property
    def in_outage(self) -> bool:
        """Whether the service is refusing every call (the replica's outage, not another tracker's)."""
        return self.outages.global_outage is not None

    @property
    def outage_reason(self) -> str | None:
        """Why, during the replica's outage."""
        state = self.outages.global_outage
        return None if state is None else state.reason

    async def send(self, batch: Batch) -> SendResult:
        """Deliver every event of the batch or say why one goes to the dead-letter topic."""
        result = SendResult()
        await self._deliver(batch.key, batch.events, result)
        return result

    async def _deliver(self, key: SessionKey, events: list[Event], result: SendResult) -> None:
        calls_before = result.calls
        try:
            await self._with_retries(key, events, result)
        except InvalidInput as exc:
            if len(events) > 1:
                # Bisect: the halves go separately (first half first, to keep the session's order),
                # so the valid events still land and only the rejected ones are dead-lettered.
                middle = len(events) // 2
                await self._deliver(key, events[:middle], result)
                await self._deliver(key, events[middle:], result)
                return
            attempts = result.calls - calls_before
            result.failed.append(Failure(events[0], Reason(Stage.API, exc.code, exc.message, attempts)))
            return
        except Retryable as exc:
            attempts = result.calls - calls_before
            detail = f"gave up after {attempts} attempts: {exc}"
            reason = Reason(Stage.RETRY_EXHAUSTED, exc.code, detail, attempts)
            result.failed.extend(Failure(ev, reason) for ev in events)
            return
        except OutageExpired as exc:
            reason = Reason(Stage.OUTAGE, exc.code, exc.message, result.calls - calls_before)
            result.failed.extend(Failure(ev, reason) for ev in events)
            return
        result.accepted.extend(events)

    async def _with_retries(self, key: SessionKey, events: list[Event], result: SendResult) -> None:
        """Attempt the call; on a retryable failure, retry with exponential backoff and full jitter.

        The first attempt runs outside tenacity: most calls succeed at once, and tenacity's asyncio
        machinery is a sizeable share of a whole call's CPU (docs/benchmarks.md). The retries continue the
        same schedule: before retry n (n >= 1) a uniform wait in [0, min(max, initial * 2**(n-1))].
        """
        cfg = self._retry
        started = self._clock()
        try:
            await self._attempt(key, events, result)
            return
        except Retryable:
            if cfg.on_exhausted != "block" and cfg.max_attempts <= 1:
                raise
        initial, ceiling = cfg.initial_backoff_ms / 1000, cfg.max_backoff_ms / 1000
        if cfg.on_exhausted == "block":
            stop: Any = stop_never
        else:
            left = max(0.0, cfg.max_elapsed_s - (self._clock() - started))
            stop = stop_after_attempt(cfg.max_attempts - 1) | stop_after_delay(left)
        retrying = AsyncRetrying(
            stop=stop,
            # tenacity numbers its own attempts from 1; ours are one ahead, hence the doubled multiplier.
            wait=wait_random_exponential(multiplier=initial * 2, max=ceiling),
            retry=retry_if_exception_type(Retryable),
            reraise=True,
        )
        await asyncio.sleep(random.uniform(0, min(ceiling, initial)))
        try:
            async for attempt in retrying:
                with attempt:
                    result.retries += 1
                    await self._attempt(key, events, result)
        except RetryError as exc:  # pragma: no cover - reraise=True re-raises the last Retryable
            raise exc.last_attempt.exception() or RuntimeError("retry failed") from None

    async def _attempt(self, key: SessionKey, events: list[Event], result: SendResult) -> None:
        """One call, waiting out the outages it is subject to (:class:`~forwarder.probe.OutageProbe`)."""
        await self._probe.attempt(key, events, result)

    async def _call(self, key: SessionKey, events: list[Event], result: SendResult) -> None:
        async with self._slots:
            await self.limiter.acquire()
            result.calls += 1
            started = self._clock()
            try:
                await self._transport.put_events(key, events)
            except PutEventsError as exc:
                if isinstance(exc, Retryable) and exc.throttled:
                    self.limiter.on_throttle()
                self._observer.call_finished(_outcome(exc), len(events), self._clock() - started)
                raise
            self.limiter.on_success()
            self._observer.call_finished("ok", len(events), self._clock() - started)

    async def close(self) -> None:
        """Close the transport."""
        await self._transport.close()


def _outcome(exc: PutEventsError) -> str:
    if isinstance(exc, Retryable):
        if exc.throttled:
            return "throttled"
        return "5xx" if exc.status is not None and exc.status >= 500 else "error"
    if isinstance(exc, Outage):
        return "outage"
    return "invalid"
