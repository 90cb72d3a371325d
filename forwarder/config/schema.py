"""The configuration schema: one frozen pydantic model per section, unknown keys refused.

Contract: a :class:`Config` is valid by construction (every range, literal and cross-key rule is a
validator here); loading it from YAML and the environment is :mod:`forwarder.config.load`'s job. The
librdkafka pass-through maps (``kafka.client``, ``dead_letter.producer``) accept any property except the
ones the forwarder sets itself; librdkafka checks the rest when the client is created.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, FilePath, field_validator, model_validator

from forwarder.config.input import InputConfig
from forwarder.config.routes import RouteConfig, split_topics

# librdkafka properties the forwarder sets itself: a user value would break the commit rule.
RESERVED_CLIENT_KEYS = frozenset(
    {
        "group.id",
        "bootstrap.servers",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "on_commit",
        "error_cb",
        "stats_cb",
    }
)
CLASSIC_ONLY_CLIENT_KEYS = frozenset(
    {"session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy", "group.protocol.type"}
)


# Keys renamed since they were released: old dotted path → new one. Files and environment variables
# that use an old name still load (forwarder.config.load moves the value and warns).
RENAMED_KEYS: Final = {
    # `limits` read as the service's limits (forwarder/limits.py); this section is the memory bound.
    "limits": "backpressure",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NonEmptyStr = Annotated[str, Field(min_length=1)]


class KafkaConfig(_Section):
    """Where to read from, as which consumer group."""

    bootstrap_servers: NonEmptyStr = Field(description="Kafka bootstrap servers, `host:port[,host:port]`.")
    topics: list[NonEmptyStr] = Field(
        min_length=1, description="Topics to consume (a comma-separated string is accepted)."
    )
    group_id: NonEmptyStr = Field(
        default="forwarder", description="Consumer group; replicas with the same group share the partitions."
    )
    group_protocol: Literal["classic", "consumer"] = Field(
        default="classic",
        description="`classic` with the cooperative-sticky assignor, or `consumer` (KIP-848, Kafka 4+). A "
        "crashed replica's partitions move after the session timeout: `classic` 6 s (`session.timeout.ms` "
        "6000, `heartbeat.interval.ms` 2000 unless `client` sets them); `consumer` the broker's "
        "`group.consumer.session.timeout.ms` (45 s unless the operator lowers it; docs/operations.md).",
    )
    group_instance_id: str | None = None
    client: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra librdkafka properties for the consumer and the dead-letter producer "
        "(TLS, SASL...); consumer-only ones (`session.timeout.ms`, `fetch.*`...) go to the consumer only.",
    )
    poll_batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="Most messages taken from the client per poll."
    )
    commit_interval_ms: int = Field(
        default=200,
        ge=10,
        description="How often finished offsets (and the finished set above them) are committed; "
        "a crash repeats what finished since the last commit (docs/operations.md, Commit interval).",
    )

    @field_validator("topics", mode="before")
    @classmethod
    def _split_topics(cls, value: object) -> object:
        return split_topics(value)

    @field_validator("client")
    @classmethod
    def _no_reserved_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(RESERVED_CLIENT_KEYS & set(value))
        if clash:
            raise ValueError(f"{', '.join(clash)} is set by the forwarder itself; use the named setting")
        return value

    @model_validator(mode="after")
    def _protocol_properties(self) -> KafkaConfig:
        if self.group_protocol == "consumer":
            classic_only = sorted(CLASSIC_ONLY_CLIENT_KEYS & set(self.client))
            if classic_only:
                raise ValueError(
                    f"client: {', '.join(classic_only)} cannot be set with group_protocol consumer "
                    "(the broker decides them under KIP-848); remove them or use classic"
                )
        return self


class PersonalizeConfig(_Section):
    """Where events go."""

    tracking_id: NonEmptyStr = Field(
        max_length=256, description="Event tracker's tracking id; a message's own `trackingId` overrides it."
    )
    region: NonEmptyStr | None = Field(
        default=None, description="AWS region; by default boto3's (AWS_REGION, profile...)."
    )
    endpoint_url: NonEmptyStr | None = Field(
        default=None, description="Endpoint override, e.g. the local emulator `http://127.0.0.1:8080`."
    )
    ca_bundle: FilePath | None = Field(
        default=None,
        description="PEM file of the CAs that verify the endpoint's TLS certificate, for both transports, "
        "with or without a proxy (HTTPS_PROXY, NO_PROXY). null: AWS_CA_BUNDLE, else the AWS profile's "
        "ca_bundle, else botocore's bundle. Verification is always on; a certificate that does not "
        "verify is an outage (consumption pauses, nothing is dead-lettered).",
    )
    transport: Literal["boto3", "fast"] = Field(
        default="fast",
        description="`fast`: the request built with orjson, signed with botocore's SigV4 (boto3's "
        "credentials, region and endpoint) and sent on a keep-alive HTTP/1.1 pool (aiohttp behind a "
        "proxy): ~6x less CPU per event in docs/benchmarks.md. `boto3`: client.put_events in threads. "
        "Both are tested with the same tests against the emulator.",
    )
    max_in_flight: int = Field(default=64, ge=1, le=1024, description="Most PutEvents calls at once.")
    max_calls_per_second: float | None = Field(
        default=None,
        gt=0,
        description="This replica's cap on PutEvents calls/s (its share of the 1000/s per dataset group). "
        "Throttling lowers the rate further (AIMD, down to a quarter of the cap) and it recovers while "
        "calls succeed. null: no cap; throttled calls still back off one by one.",
    )
    request_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one PutEvents call.")


class BatchingConfig(_Section):
    """How events of one session are grouped into calls."""

    max_events: int = Field(default=10, ge=1, le=10, description="Events per PutEvents call (at most 10).")
    linger_ms: int = Field(
        default=200,
        ge=0,
        le=600_000,
        description="Longest an event waits for more events of its session before its batch is sent.",
    )


class RetryConfig(_Section):
    """Retries of throttled, failed (5xx) and timed-out calls: exponential backoff with full jitter."""

    max_attempts: int = Field(default=8, ge=1, description="Attempts per batch, the first included.")
    max_elapsed_s: float = Field(default=120.0, gt=0, description="Longest time spent on one batch.")
    initial_backoff_ms: int = Field(default=100, ge=1, description="Backoff ceiling of the first retry.")
    max_backoff_ms: int = Field(default=20_000, ge=1, description="Largest backoff between two attempts.")
    on_exhausted: Literal["dead_letter", "block"] = Field(
        default="dead_letter",
        description="When retries run out: dead-letter the batch (stage retry_exhausted), or keep "
        "retrying it forever, holding its partition's commits.",
    )
    outage_retry_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="While the service answers ResourceNotFound/AccessDenied, how often to try again "
        "(at most: the probes start at `outage_first_probe_s` and double up to this).",
    )
    outage_first_probe_s: float = Field(
        default=1.0,
        gt=0,
        description="First wait of an outage's probe; each next one doubles, up to "
        "`outage_retry_interval_s`, so a short outage costs seconds.",
    )
    outage_max_s: float = Field(
        default=3600.0,
        gt=0,
        description="Longest a tracking id other than `personalize.tracking_id` (one a message carries) "
        "may hold its events in an outage; then they go to the dead-letter topic with stage outage.",
    )


class DeadLetterConfig(_Section):
    """Where messages that cannot be delivered go, with the reason in their headers."""

    topic: NonEmptyStr = Field(description="Dead-letter topic.")
    producer: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra librdkafka properties for the dead-letter producer only (`acks` must stay "
        "all, idempotence on).",
    )

    create_topic: bool = Field(
        default=False,
        description="Create the topic at start if it does not exist (as Kafka Connect creates its "
        "dead-letter topic); otherwise a missing topic stops the start with an error.",
    )
    partitions: int = Field(default=1, ge=1, description="Partitions of a topic `create_topic` creates.")
    replication_factor: int = Field(
        default=-1,
        ge=-1,
        description="Replication factor of a topic `create_topic` creates; -1: the broker's "
        "`default.replication.factor`.",
    )

    @field_validator("replication_factor")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (the broker's default) or at least 1")
        return value

    @field_validator("producer")
    @classmethod
    def _acknowledged_writes(cls, value: dict[str, Any]) -> dict[str, Any]:
        # A dead-letter write finishes a message (its offset may be committed): it must be acknowledged.
        return check_dead_letter_producer(value)


class MappingFields(_Section):
    """Where each PutEvents field is found in a message: a dotted path (`context.session.id`).

    The keys are PutEvents' own field names (camelCase), the names users know from the API.
    """

    trackingId: str | None = Field(default=None, description="Path of `trackingId` (default `trackingId`).")
    userId: str | None = Field(default=None, description="Path of `userId` (default `userId`).")
    sessionId: str | None = Field(default=None, description="Path of `sessionId` (default `sessionId`).")
    eventType: str | None = Field(default=None, description="Path of `eventType` (default `eventType`).")
    eventId: str | None = Field(default=None, description="Path of `eventId` (default `eventId`).")
    eventValue: str | None = Field(default=None, description="Path of `eventValue` (default `eventValue`).")
    itemId: str | None = Field(default=None, description="Path of `itemId` (default `itemId`).")
    sentAt: str | None = Field(default=None, description="Path of `sentAt` (default `sentAt`).")
    properties: str | None = Field(default=None, description="Path of `properties` (default `properties`).")
    impression: str | None = Field(default=None, description="Path of `impression` (default `impression`).")
    recommendationId: str | None = Field(
        default=None, description="Path of `recommendationId` (default `recommendationId`)."
    )
    eventAttributionSource: str | None = Field(
        default=None,
        description="Path of `eventAttributionSource` (default `metricAttribution.eventAttributionSource`).",
    )


class MappingConfig(_Section):
    """How a message's own schema maps onto PutEvents' field names."""

    fields: MappingFields = Field(
        default_factory=MappingFields,
        description="PutEvents field → dotted path in the message; unset fields use their own name.",
    )
    event_type: NonEmptyStr | None = Field(
        default=None, description="A constant eventType for every message (overrides the field)."
    )
    sent_at_unit: Literal["auto", "s", "ms"] = Field(
        default="auto",
        description="Unit of numeric sentAt. `auto` takes seconds or milliseconds, whichever gives a "
        "time between 2000 and 2100, and rejects others.",
    )
    impression_separator: str = Field(
        default="|", min_length=1, description="Separator when impression is one string of ids."
    )


class BackpressureConfig(_Section):
    """The memory bound: how many events a replica holds before it stops consuming (formerly `limits`)."""

    max_buffered_events: int = Field(
        default=20_000,
        ge=10,
        description="Events held (buffered, in PutEvents calls, or awaiting a dead-letter acknowledgement) "
        "at which consumption pauses; it resumes at half as many.",
    )


class ShutdownConfig(_Section):
    """Graceful stop."""

    timeout_s: float = Field(
        default=30.0, gt=0, description="Longest wait for in-flight calls and flushes on stop or revoke."
    )


class ObservabilityConfig(_Section):
    """Metrics and probes."""

    port: int | None = Field(
        default=9102, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz; null disables."
    )
    host: str = Field(default="0.0.0.0", description="Address the metrics server binds.")


class LoggingConfig(_Section):
    """Logs."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = Field(default="text", description="`json`: one JSON object a line.")
    include_payloads: bool = Field(
        default=False, description="Put message bodies in log lines (off: they may hold personal data)."
    )


class Config(_Section):
    """The whole configuration of one forwarder replica."""

    kafka: KafkaConfig
    personalize: PersonalizeConfig
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    dead_letter: DeadLetterConfig
    mapping: MappingConfig = Field(default_factory=MappingConfig)
    backpressure: BackpressureConfig = Field(default_factory=BackpressureConfig)
    shutdown: ShutdownConfig = Field(default_factory=ShutdownConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    input: InputConfig = Field(default_factory=InputConfig)
    routes: list[RouteConfig] = Field(
        default_factory=list,
        description="More operations in the same daemon and group: each route's topics, operation "
        "(`items`, `users`, `actions`, `action_interactions`), target and mapping (docs/configuration.md, "
        "Routes). The top-level kafka.topics, personalize and mapping are the `events` route.",
    )

    @property
    def all_topics(self) -> list[str]:
        """Every topic the consumer subscribes to: the events route's, then each route's."""
        return [*self.kafka.topics, *(t for route in self.routes for t in route.topics)]

    @property
    def limits(self) -> BackpressureConfig:
        """The ``backpressure`` section under its name before the rename, for code not yet moved over."""
        return self.backpressure

    @model_validator(mode="after")
    def _dead_letter_not_consumed(self) -> Config:
        # Consuming the dead-letter topic would feed each poison message back in, without bound.
        if self.dead_letter.topic in self.kafka.topics:
            raise ValueError(
                f"dead_letter.topic {self.dead_letter.topic} is also in kafka.topics: the forwarder would "
                "consume its own dead letters; use another topic"
            )
        return self

    @model_validator(mode="after")
    def _routes_apart(self) -> Config:
        # A topic read by two routes would send each message twice, or finish it twice.
        owner = dict.fromkeys(self.kafka.topics, "events")
        names = {"events"}
        for index, route in enumerate(self.routes):
            if route.name in names:
                raise ValueError(f"routes[{index}].name: {route.name!r} is taken by another route")
            names.add(route.name)
            for topic in route.topics:
                if topic == self.dead_letter.topic:
                    raise ValueError(f"routes[{index}].topics: {topic} is the dead-letter topic")
                if topic in owner:
                    raise ValueError(f"routes[{index}].topics: {topic} is also read by route {owner[topic]}")
                owner[topic] = route.name
                if isinstance(self.input.format, dict) and self.input.format.get(topic, "json") != "json":
                    # The record decoders read JSON; a registry format here would be ignored silently.
                    raise ValueError(
                        f"input.format: {topic} is read by route {route.name}, whose records are JSON"
                    )
        return self


def check_dead_letter_producer(props: dict[str, Any]) -> dict[str, Any]:
    """Refuse overrides that let a dead-letter write count as done without the broker's acknowledgement."""
    for key in ("acks", "request.required.acks"):
        if key in props and str(props[key]).strip().lower() not in ("all", "-1"):
            raise ValueError(f"{key} must be all (or -1): a dead letter must be acknowledged by the broker")
    idempotence = props.get("enable.idempotence")
    if idempotence is not None and str(idempotence).strip().lower() in ("false", "0", "no", "off"):
        raise ValueError("enable.idempotence cannot be turned off: retried dead letters would be duplicated")
    return props
