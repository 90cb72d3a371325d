"""Routes: the record operations (items, users, actions, action interactions) beside the events route.

Each :class:`RecordRoute` has its own decoder (its mapping), its own :class:`~forwarder.keyed_batch.
KeyedBatcher` (calls of up to 10 records of its one target, per-id ordering) and its own
:class:`~forwarder.send.Sender` (its operation's transport, in-flight slots, rate limiter at its
operation's quota, retries, bisection, outage probe). So a throttled or failing route waits on its own:
the events route and the other routes are not slowed by it. They share what a replica has once: the
consumer (one group), the offset tracker and the commit rule, the dead-letter writer, the memory bound.

The events route is not here: it stays the top-level configuration on the pump's own path, and a
replica without ``routes`` builds no :class:`Routes` at all (the pump's hot path pays one ``None``
check per message).

Outcomes follow the commit rule: a record accepted by the service finishes its message; a record the
decoder rejects (``decode``, ``validate``, ``unsupported`` for tombstones and deletes), the service rejects
(``api``) or retries outlast (``retry_exhausted``) is dead-lettered with its reason and the header
``forwarder.operation``, and finishes when the broker has the copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, cast

from forwarder.config import Config, RetryConfig
from forwarder.config.routes import CATALOG_OPERATIONS, RouteConfig
from forwarder.decode import derive_event_id
from forwarder.keyed_batch import KeyedBatcher, RecordBatch, RoutedRecord
from forwarder.metrics import Metrics
from forwarder.outcome import Envelope, Reason, Stage
from forwarder.personalize.limits import ACTION, ITEM, USER
from forwarder.personalize.operations import operation
from forwarder.personalize.transport import Transport, make_transport
from forwarder.records.action_interactions import ActionInteractionDecoder, ActionInteractionMapping
from forwarder.records.catalog import CatalogDecoder, CatalogMapping
from forwarder.records.common import Problem, PropertiesMapping, parse_value
from forwarder.runtime.supervisor import Supervisor
from forwarder.send import Sender

if TYPE_CHECKING:
    from forwarder.batch import Batch

log = logging.getLogger("forwarder.runtime")

_SHAPES = {"items": ITEM, "users": USER, "actions": ACTION}
_STAGES = {"decode": Stage.DECODE, "validate": Stage.VALIDATE, "unsupported": Stage.UNSUPPORTED}


class DeadLetter(Protocol):
    """How a route dead-letters (:meth:`forwarder.runtime.dispatch.Dispatcher.dead_letter`)."""

    def __call__(self, source: Envelope, reason: Reason, session_id: str | None = None) -> None: ...


class RecordDecoder(Protocol):
    """A message of a route -> the record's order key, wire form and JSON, or a :class:`Problem`."""

    def __call__(self, source: Envelope) -> tuple[str, dict[str, Any], bytes] | Problem: ...


class _RouteObserver:
    """Feeds a route's sender reports into the metrics with its ``operation`` label."""

    def __init__(self, metrics: Metrics, operation_name: str) -> None:
        self._calls = metrics.route_calls
        self._records = metrics.route_records_sent
        self._outage = metrics.route_outage.labels(operation_name)
        self._operation = operation_name

    def call_finished(self, outcome: str, events: int, seconds: float) -> None:
        self._calls.labels(self._operation, outcome).inc()
        if outcome == "ok":
            self._records.labels(self._operation).inc(events)

    def outage(self, active: bool, reason: str, tracking_id: str) -> None:
        # A route's sender has no configured tracker (every outage is the route's), so the id adds nothing.
        self._outage.set(1 if active else 0)


class RecordRoute:
    """One route: decode, batch per target with per-id ordering, send, and route the outcomes."""

    def __init__(
        self,
        cfg: RouteConfig,
        decode: RecordDecoder,
        sender: Sender,
        dead_letter: DeadLetter,
        supervisor: Supervisor,
        clock: Callable[[], float],
    ) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.operation = cfg.operation
        self.batcher = KeyedBatcher(cfg.target, cfg.max_records, cfg.linger_ms / 1000, cfg.max_in_flight)
        self.sender = sender
        self._decode = decode
        self._dead_letter = dead_letter
        self._supervisor = supervisor
        self._clock = clock
        self.in_flight = 0

    def take(self, source: Envelope) -> None:
        """Decode one message of this route and queue its record, or dead-letter it with the reason."""
        decoded = self._decode(source)
        if isinstance(decoded, Problem):
            stage = _STAGES.get(decoded.reason, Stage.DECODE)
            self._dead_letter(source, Reason(stage, decoded.error_class, decoded.message, 0, self.operation))
            return
        key, wire, encoded = decoded
        for batch in self.batcher.add(RoutedRecord(source, key, wire, encoded), self._clock()):
            self.dispatch(batch)

    def dispatch(self, batch: RecordBatch) -> None:
        """Send a batch in its own task."""
        self.in_flight += len(batch.events)
        self._supervisor.spawn(self._send(batch), name=f"route {self.name}")

    def dispatch_due(self) -> None:
        """Send the batches whose linger has passed (all that can leave while flushing)."""
        for batch in self.batcher.due(self._clock()):
            self.dispatch(batch)

    async def _send(self, batch: RecordBatch) -> None:
        # The sender reads only key and events (the records' source, and what the operation's body and
        # params builders read): a record batch stands in for an events batch.
        result = await self.sender.send(cast("Batch", batch))
        for record in result.accepted:
            record.source.finish()
        for failure in result.failed:
            reason = failure.reason
            self._dead_letter(
                failure.event.source,
                Reason(reason.stage, reason.error_class, reason.message, reason.attempts, self.operation),
            )
        self.in_flight -= len(batch.events)
        for following in self.batcher.complete(batch, self._clock()):
            self.dispatch(following)

    def load(self) -> int:
        """Records held: queued or in calls."""
        return self.batcher.buffered + self.in_flight


class Routes:
    """Every record route of a replica, found by topic."""

    def __init__(self, routes: Iterable[RecordRoute]) -> None:
        self.routes = list(routes)
        self.by_topic = {topic: route for route in self.routes for topic in route.cfg.topics}

    def take(self, source: Envelope) -> bool:
        """Hand a message to the route of its topic; False when no route reads that topic (events)."""
        route = self.by_topic.get(source.message.topic() or "")
        if route is None:
            return False
        route.take(source)
        return True

    def load(self) -> int:
        """Records held by all routes."""
        return sum(route.load() for route in self.routes)

    @property
    def buffered(self) -> int:
        """Records queued and not yet in a call, in all routes."""
        return sum(route.batcher.buffered for route in self.routes)

    def dispatch_due(self) -> None:
        """Every route's due batches."""
        for route in self.routes:
            route.dispatch_due()

    def next_deadline(self) -> float | None:
        """The earliest linger deadline of any route."""
        deadlines = [d for route in self.routes if (d := route.batcher.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    def set_flushing(self, flushing: bool) -> None:
        """Flush mode on every route (revoke, shutdown)."""
        for route in self.routes:
            route.batcher.set_flushing(flushing)

    def discard(self, gone: set[tuple[str, int]]) -> int:
        """Drop the queued records of partitions that were lost; return how many."""
        return sum(
            len(route.batcher.discard(lambda r: r.source.origin.tp not in gone)) for route in self.routes
        )

    async def close(self) -> None:
        """Close every route's transport."""
        for route in self.routes:
            await route.sender.close()


def build_routes(
    cfg: Config,
    dead_letter: DeadLetter,
    metrics: Metrics,
    supervisor: Supervisor,
    clock: Callable[[], float],
    transport: Callable[[RouteConfig], Transport] | None = None,
) -> Routes | None:
    """The replica's record routes, or None without any (the events-only replica pays nothing)."""
    if not cfg.routes:
        return None
    built = []
    for route in cfg.routes:
        sender = _sender(route, cfg, metrics, clock, transport)
        built.append(RecordRoute(route, record_decoder(route), sender, dead_letter, supervisor, clock))
        log.info(
            "route %s: topics=%s operation=%s target=%s calls/s=%s",
            route.name,
            ",".join(route.topics),
            route.operation,
            route.target,
            route.calls_per_second or "unlimited",
        )
    return Routes(built)


def _sender(
    route: RouteConfig,
    cfg: Config,
    metrics: Metrics,
    clock: Callable[[], float],
    transport: Callable[[RouteConfig], Transport] | None,
) -> Sender:
    made = transport(route) if transport else make_transport(cfg.personalize, operation(route.operation))
    retry: RetryConfig = cfg.retry
    return Sender(
        made,
        retry,
        route.max_in_flight,
        observer=_RouteObserver(metrics, route.operation),
        clock=clock,
        max_calls_per_second=route.calls_per_second,
    )


def record_decoder(route: RouteConfig) -> RecordDecoder:
    """The route's decoder, from its mapping (:mod:`forwarder.records`)."""
    if route.operation in CATALOG_OPERATIONS:
        return _catalog_decoder(route)
    return _interaction_decoder(route)


def _catalog_decoder(route: RouteConfig) -> RecordDecoder:
    m = route.mapping
    decoder = CatalogDecoder(
        _SHAPES[route.operation],
        CatalogMapping(
            id_path=m.id_path,
            delete_field=m.delete_field,
            properties=PropertiesMapping(
                pick=dict(m.pick), drop=frozenset(m.drop), from_field=m.from_field, camel_case=m.camel_case
            ),
        ),
    )

    def decode(source: Envelope) -> tuple[str, dict[str, Any], bytes] | Problem:
        record = decoder.decode(parse_value(source.message.value()))
        if isinstance(record, Problem):
            return record
        return record.record_id, record.wire, record.encoded

    return decode


def _interaction_decoder(route: RouteConfig) -> RecordDecoder:
    m = route.mapping
    decoder = ActionInteractionDecoder(
        ActionInteractionMapping(
            fields=dict(m.fields),
            event_type=m.event_type,
            impression_separator=m.impression_separator,
            camel_case=m.camel_case,
        )
    )

    def decode(source: Envelope) -> tuple[str, dict[str, Any], bytes] | Problem:
        message = source.message
        _, millis = message.timestamp()
        record = decoder.decode(
            parse_value(message.value()),
            event_id=derive_event_id(message.topic() or "", message.partition() or 0, source.offset),
            timestamp=millis / 1000 if millis and millis > 0 else None,
        )
        if isinstance(record, Problem):
            return record
        # An interaction is an event of a session: a session's interactions keep their Kafka order.
        return str(record.wire.get("sessionId", record.action_id)), record.wire, record.encoded

    return decode
