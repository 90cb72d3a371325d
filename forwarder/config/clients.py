"""librdkafka properties per client, derived from the configuration.

``kafka.client`` is shared by the consumer and the dead-letter producer (TLS, SASL, timeouts...), but
some of its properties exist for a consumer only: given to a producer, librdkafka ignores each one with
a ``CONFWARN`` line on every start. :func:`producer_client_properties` leaves them out.
"""

from __future__ import annotations

from typing import Final

from forwarder.config.schema import KafkaConfig

# Every librdkafka property whose scope is the consumer alone ("C" in librdkafka's CONFIGURATION.md):
# a producer warns "is a consumer property and will be ignored" for each (a unit test asks librdkafka).
CONSUMER_ONLY_KEYS: Final = frozenset(
    {
        # the group
        "group.id",
        "group.instance.id",
        "group.protocol",
        "group.protocol.type",
        "group.remote.assignor",
        "partition.assignment.strategy",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "coordinator.query.interval.ms",
        "max.poll.interval.ms",
        # offsets
        "enable.auto.commit",
        "auto.commit.interval.ms",
        "enable.auto.offset.store",
        "auto.offset.reset",
        "offset.store.method",
        "offset.store.path",
        "offset.store.sync.interval.ms",
        # fetching
        "fetch.wait.max.ms",
        "fetch.min.bytes",
        "fetch.max.bytes",
        "fetch.message.max.bytes",
        "max.partition.fetch.bytes",
        "fetch.error.backoff.ms",
        "fetch.queue.backoff.ms",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "isolation.level",
        "enable.partition.eof",
        "check.crcs",
        "consume.callback.max.messages",
    }
)


def producer_client_properties(kafka: KafkaConfig) -> dict[str, str | int | float | bool]:
    """What a producer takes from the ``kafka`` section: ``bootstrap.servers`` and ``kafka.client``
    without :data:`CONSUMER_ONLY_KEYS`. The producer's own settings (``dead_letter.producer``, acks,
    idempotence) are its caller's to add on top."""
    shared = {key: value for key, value in kafka.client.items() if key not in CONSUMER_ONLY_KEYS}
    return {"bootstrap.servers": kafka.bootstrap_servers, **shared}
