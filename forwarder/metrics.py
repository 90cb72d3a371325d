"""Metrics and probes: Prometheus counters, gauges and histograms of one replica, on a registry of its
own, served with ``/healthz`` and ``/readyz`` on ``observability.port``.

Stages report through small methods, so they do not import prometheus_client, and several apps in one
process (tests) do not share counters.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)

from forwarder import __version__


class Metrics:
    """All metrics of one forwarder replica."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Declare every metric in ``registry`` (a new one by default).

        Long on purpose: it is a list of declarations, one per metric, kept together so that the names,
        help texts and labels read as one table; there is no logic to split.
        """
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages_consumed = Counter(
            "forwarder_messages_consumed", "Messages taken from Kafka.", registry=r
        )
        self.events_sent = Counter("forwarder_events_sent", "Events accepted by PutEvents.", registry=r)
        self.calls = Counter(
            "forwarder_putevents_calls",
            "PutEvents calls by outcome (ok, throttled, 5xx, error, invalid, outage).",
            ["outcome"],
            registry=r,
        )
        self.batches_exhausted = Counter(
            "forwarder_batches_retry_exhausted", "Batches whose retries ran out.", registry=r
        )
        self.retries = Counter(
            "forwarder_putevents_retries", "PutEvents calls that were retries.", registry=r
        )
        self.dead_lettered = Counter(
            "forwarder_events_dead_lettered",
            "Messages acknowledged on the dead-letter topic, by stage.",
            ["stage"],
            registry=r,
        )
        self.batch_size = Histogram(
            "forwarder_batch_events",
            "Events per PutEvents call.",
            buckets=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
            registry=r,
        )
        self.call_latency = Histogram(
            "forwarder_putevents_call_seconds",
            "Duration of PutEvents calls.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.in_flight_events = Gauge("forwarder_in_flight_events", "Events in PutEvents calls.", registry=r)
        self.buffered_events = Gauge(
            "forwarder_buffered_events", "Events waiting in session batches.", registry=r
        )
        self.paused_partitions = Gauge(
            "forwarder_paused_partitions", "Partitions paused for backpressure or outage.", registry=r
        )
        self.assigned_partitions = Gauge(
            "forwarder_assigned_partitions", "Partitions assigned to this replica.", registry=r
        )
        self.consumer_lag = Gauge(
            "forwarder_consumer_lag",
            "Messages behind the high watermark.",
            ["topic", "partition"],
            registry=r,
        )
        self.committed_offset = Gauge(
            "forwarder_committed_offset", "Last committed offset.", ["topic", "partition"], registry=r
        )
        self.both_impression_kinds = Counter(
            "forwarder_events_with_impression_and_recommendation",
            "Events carrying both an explicit impression list and a recommendationId.",
            registry=r,
        )
        self.rebalances = Counter(
            "forwarder_rebalances", "Partition assignment changes, by kind.", ["kind"], registry=r
        )
        self.rate_limit = Gauge(
            "forwarder_rate_limit_calls_per_second",
            "Current client-side limit of PutEvents calls/s (0: none); lowered by throttling.",
            registry=r,
        )
        self.messages_skipped = Counter(
            "forwarder_messages_skipped",
            "Messages taken and not sent, by reason (finished_before: finished by a previous owner, "
            "read from the commit metadata).",
            ["reason"],
            registry=r,
        )
        self.commit_metadata_misses = Counter(
            "forwarder_commit_metadata_misses",
            "Partition commits whose finished offsets did not fit in the metadata (plain offset committed).",
            registry=r,
        )
        self.commit_metadata_unreadable = Counter(
            "forwarder_commit_metadata_unreadable",
            "Assigned partitions whose committed metadata could not be read (ignored).",
            registry=r,
        )
        self.commit_seconds = Histogram(
            "forwarder_commit_seconds",
            "Duration of periodic offset commits (one synchronous call to the group coordinator).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.finished_uncommitted = Gauge(
            "forwarder_finished_uncommitted_messages",
            "Messages finished here that no accepted commit covers yet (a crash now sends them again).",
            registry=r,
        )
        self.dead_letters_held = Gauge(
            "forwarder_dead_letters_held",
            "Dead-letter records too large for the topic even without value, key and headers: their "
            "offsets are held until the topic takes them.",
            registry=r,
        )
        self.outage = Gauge(
            "forwarder_outage",
            "1 while PutEvents refuses calls for the tracking id (the configured one: every call, "
            "consumption paused; another: only its sessions wait).",
            ["tracking_id"],
            registry=r,
        )
        self._configured_tracker: str | None = None
        # The record routes (items, users, actions, action_interactions), one series per operation; the
        # events route keeps the series above (its hot path pays no label lookup).
        self.route_calls = Counter(
            "forwarder_route_calls",
            "Calls of a record route, by operation and outcome (ok, throttled, 5xx, error, invalid, outage).",
            ["operation", "outcome"],
            registry=r,
        )
        self.route_records_sent = Counter(
            "forwarder_route_records_sent",
            "Records accepted by the service, by operation.",
            ["operation"],
            registry=r,
        )
        self.route_buffered = Gauge(
            "forwarder_route_buffered_records",
            "Records of a route queued or in calls, by operation.",
            ["operation"],
            registry=r,
        )
        self.route_outage = Gauge(
            "forwarder_route_outage",
            "1 while a route's operation refuses every call (dataset ARN, tracking id, credentials).",
            ["operation"],
            registry=r,
        )
        self.build_info = build_info(r)

    # SendObserver
    def call_finished(self, outcome: str, events: int, seconds: float) -> None:
        """One PutEvents call ended."""
        self.calls.labels(outcome).inc()
        self.call_latency.observe(seconds)
        if outcome == "ok":
            self.batch_size.observe(events)

    def configured_tracker(self, tracking_id: str) -> None:
        """Name the configured tracking id: its outage series exists from now on (0 or 1)."""
        self._configured_tracker = tracking_id
        self.outage.labels(tracking_id).set(0)

    def outage_changed(self, active: bool, tracking_id: str) -> None:
        """The service entered or left an outage for ``tracking_id``. The configured tracker's series
        stays (0 or 1); another's is removed when its outage ends, so the ids that messages carry do not
        accumulate series."""
        if active or tracking_id == self._configured_tracker:
            self.outage.labels(tracking_id).set(1 if active else 0)
        else:
            with contextlib.suppress(KeyError):
                self.outage.remove(tracking_id)


def build_info(registry: CollectorRegistry) -> Gauge:
    """``forwarder_build_info{version="..."} 1`` on ``registry``: which version this process runs."""
    gauge = Gauge(
        "forwarder_build_info",
        "Always 1; the version label is the running forwarder's.",
        ["version"],
        registry=registry,
    )
    gauge.labels(__version__).set(1)
    return gauge


def counter_total(counter: Counter) -> float:
    """The current value of an unlabelled counter."""
    return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))


def counter_by_label(counter: Counter, label: str) -> dict[str, float]:
    """The current values of a labelled counter, by one label."""
    out: dict[str, float] = {}
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                key = sample.labels[label]
                out[key] = out.get(key, 0.0) + sample.value
    return out


class HealthSource(Protocol):
    """What the probes ask the running app."""

    def liveness(self) -> tuple[bool, str]:
        """Whether the loop is turning."""

    def readiness(self) -> tuple[bool, str]:
        """Whether this replica is doing its job: partitions assigned, broker reachable, no outage."""


class PortInUseError(Exception):
    """The metrics port cannot be bound (taken by another process, or not allowed)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(
            f"cannot serve metrics on {host}:{port}: {reason}; choose another port with observability.port "
            "(FORWARDER__OBSERVABILITY__PORT), or null to disable"
        )
        self.host = host
        self.port = port
