"""Dead-letter: set a message aside on a Kafka topic, with the reason, and say when the broker has it.

Contract of :meth:`DeadLetterWriter.write`: the record keeps the original key, value, headers and
timestamp, and adds the headers in :data:`HEADER_NAMES`. ``on_done`` is called exactly once, only after
the broker acknowledged the record (``acks=all``, idempotent producer). A failed write is retried with
a growing delay for as long as it takes — the message's offset must not be committed before its copy
is safe — so ``on_done`` may come late but never early and never not at all while the process lives.

A record too large for the topic is shrunk, one step at a time: written without its value (header
``forwarder.value.dropped`` holds the value's size), then also without its key (``forwarder.key.dropped``),
then also without the original headers (``forwarder.headers.dropped``); the coordinates and the reason stay
in the forwarder's headers, and the original stays on its own topic at the partition and offset they name.
A record that is too large even then is *held*: its offset is not committed, an ERROR line says why and
what to change, the ``on_held`` callback reports how many are held (a metric), and it is tried again every
:data:`RETRY_MAX_S` seconds, so raising the topic's ``max.message.bytes`` lets it through.

Delivery callbacks run in the thread that calls :meth:`poll`: the event loop's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from forwarder.config import DeadLetterConfig, KafkaConfig, producer_client_properties
from forwarder.logs import kafka_logger
from forwarder.outcome import Reason
from forwarder.redaction import redact

log = logging.getLogger(__name__)

HEADER_STAGE: Final = "forwarder.error.stage"
HEADER_CLASS: Final = "forwarder.error.class"
HEADER_MESSAGE: Final = "forwarder.error.message"
HEADER_TOPIC: Final = "forwarder.original.topic"
HEADER_PARTITION: Final = "forwarder.original.partition"
HEADER_OFFSET: Final = "forwarder.original.offset"
HEADER_TOPIC_ID: Final = "forwarder.original.topic_id"  # when known: a replay derives the same event ids
HEADER_ATTEMPTS: Final = "forwarder.attempts"
HEADER_VALUE_DROPPED: Final = "forwarder.value.dropped"
HEADER_KEY_DROPPED: Final = "forwarder.key.dropped"
HEADER_HEADERS_DROPPED: Final = "forwarder.headers.dropped"
HEADER_AT: Final = "forwarder.dead_lettered_at"  # epoch milliseconds
HEADER_OPERATION: Final = "forwarder.operation"  # a record route's operation (items...); absent: events
HEADER_NAMES: Final = (
    HEADER_STAGE,
    HEADER_CLASS,
    HEADER_MESSAGE,
    HEADER_TOPIC,
    HEADER_PARTITION,
    HEADER_OFFSET,
    HEADER_ATTEMPTS,
    HEADER_AT,
)
MAX_HEADER_MESSAGE: Final = 2000
MAX_LOGGED_PAYLOAD: Final = 2000
RETRY_BASE_S: Final = 0.5
RETRY_MAX_S: Final = 30.0


class _Record:
    __slots__ = ("attempts", "headers", "held", "key", "on_done", "source", "timestamp", "value")

    def __init__(
        self,
        source: Message,
        headers: list[tuple[str, str | bytes | None]],
        on_done: Callable[[], None],
    ) -> None:
        self.source = source
        self.key = source.key()
        self.value = source.value()
        self.headers = headers
        ts_type, ts = source.timestamp()
        self.timestamp = ts if ts_type and ts and ts > 0 else 0
        self.on_done = on_done
        self.attempts = 0
        self.held = False

    def size(self) -> int:
        """Bytes of key, value and headers (what counts against the topic's limit, less batch framing)."""
        headers = sum(len(k) + len(v or b"") for k, v in self.headers)
        return len(self.key or b"") + len(self.value or b"") + headers

    def shrink(self) -> str | None:
        """Drop the next part that can go (value, key, original headers); say which, or None if none is left."""
        if self.value is not None:
            self.headers.append((HEADER_VALUE_DROPPED, str(len(self.value)).encode()))
            self.value = None
            return "its value"
        if self.key is not None:
            self.headers.append((HEADER_KEY_DROPPED, str(len(self.key)).encode()))
            self.key = None
            return "its key"
        original = [h for h in self.headers if not h[0].startswith("forwarder.")]
        if original:
            size = sum(len(k) + len(v or b"") for k, v in original)
            self.headers = [h for h in self.headers if h[0].startswith("forwarder.")]
            self.headers.append((HEADER_HEADERS_DROPPED, str(size).encode()))
            return "its original headers"
        return None


def header_list(message: Message) -> list[tuple[str, str | bytes | None]]:
    """A message's headers as a list of pairs (librdkafka may hand them over as a dict)."""
    original = message.headers() or []
    return list(original.items()) if isinstance(original, dict) else list(original)


def dead_letter_headers(
    message: Message, reason: Reason, topic_id: str | None = None
) -> list[tuple[str, str | bytes | None]]:
    """The original headers followed by the forwarder's reason headers (the reason with credentials
    redacted: a service may quote them in its error message)."""
    headers = header_list(message)
    headers += [
        (HEADER_STAGE, reason.stage.value.encode()),
        (HEADER_CLASS, reason.error_class.encode()),
        (HEADER_MESSAGE, redact(reason.message)[:MAX_HEADER_MESSAGE].encode("utf-8", "replace")),
        (HEADER_TOPIC, (message.topic() or "").encode()),
        (HEADER_PARTITION, str(message.partition()).encode()),
        (HEADER_OFFSET, str(message.offset()).encode()),
        (HEADER_ATTEMPTS, str(reason.attempts).encode()),
        (HEADER_AT, str(int(time.time() * 1000)).encode()),
    ]
    if topic_id is not None:
        headers.append((HEADER_TOPIC_ID, topic_id.encode()))
    if reason.operation is not None:
        headers.append((HEADER_OPERATION, reason.operation.encode()))
    return headers


class DeadLetterWriter:
    """An idempotent producer for the dead-letter topic, with write-until-acknowledged semantics."""

    def __init__(
        self,
        settings: DeadLetterConfig,
        kafka: KafkaConfig,
        include_payloads: bool = False,
        on_written: Callable[[str], None] | None = None,
        on_error: Callable[[KafkaError], None] | None = None,
        on_held: Callable[[int], None] | None = None,
        topic_ids: Mapping[str, str] | None = None,
    ) -> None:
        """The producer takes the bootstrap servers and client settings of ``kafka``, then ``settings``'
        producer overrides. ``include_payloads`` logs message bodies (personal data: off by default).
        ``on_written(stage)`` runs for each acknowledged record; ``on_error`` is the producer's
        ``error_cb`` (client-level errors, a fatal one among them), called from :meth:`poll`;
        ``on_held(n)`` runs whenever the number of records too large to write even shrunk changes;
        ``topic_ids`` (topic → id) gives the original topic's id for the header :data:`HEADER_TOPIC_ID`."""
        self._topic_ids: Mapping[str, str] = topic_ids if topic_ids is not None else {}
        self.topic = settings.topic
        self._include_payloads = include_payloads
        conf: dict[str, Any] = {
            **producer_client_properties(kafka),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            # Fail a stuck write within a minute, so it is logged and retried instead of hanging quietly.
            "message.timeout.ms": 60_000,
            **settings.producer,
        }
        if on_error is not None:
            conf["error_cb"] = on_error
        self._producer = Producer(conf, logger=kafka_logger())
        self._on_written = on_written or (lambda stage: None)
        self._on_held = on_held or (lambda held: None)
        self.pending = 0  # records written and not yet acknowledged
        self.held = 0  # records too large for the topic even shrunk: their offsets are held

    def write(
        self,
        message: Message,
        reason: Reason,
        on_done: Callable[[], None],
        session_id: str | None = None,
    ) -> None:
        """Produce the dead-letter record; ``on_done`` runs once the broker acknowledged it.

        One log line says so, with the message's coordinates as structured fields; the message body only
        with ``logging.include_payloads`` (it may hold personal data).
        """
        topic_id = self._topic_ids.get(message.topic() or "")
        headers = dead_letter_headers(message, reason, topic_id)
        record = _Record(message, headers, on_done)
        stage = reason.stage.value
        self.pending += 1
        context: dict[str, object] = {
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "stage": stage,
            "error_class": reason.error_class,
            "attempts": reason.attempts,
        }
        if session_id is not None:
            context["session_id"] = session_id
        if self._include_payloads:
            value = message.value()
            context["payload"] = (
                value[:MAX_LOGGED_PAYLOAD].decode("utf-8", "replace") if value is not None else None
            )
        log.warning(
            "dead-lettering %s[%s]@%s stage=%s class=%s: %s",
            message.topic(),
            message.partition(),
            message.offset(),
            stage,
            reason.error_class,
            reason.message[:300],
            extra=context,
        )
        self._produce(record, stage)

    def _produce(self, record: _Record, stage: str) -> None:
        record.attempts += 1

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                self.pending -= 1
                if record.held:
                    self.held -= 1
                    self._on_held(self.held)
                self._on_written(stage)
                record.on_done()
            else:
                self._failed(record, stage, err)

        try:
            self._producer.produce(
                self.topic,
                key=record.key,
                value=record.value,
                headers=record.headers,
                timestamp=record.timestamp,
                on_delivery=delivered,
            )
        except BufferError:
            self._producer.poll(0.05)  # the local queue is full: let deliveries drain, then try again
            self._retry_later(record, stage, 0.05)
        except KafkaException as exc:
            self._failed(record, stage, exc.args[0])

    def _failed(self, record: _Record, stage: str, err: KafkaError) -> None:
        if err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            size = record.size()
            dropped = record.shrink()
            if dropped is not None:
                log.error(
                    "dead-letter record of %s[%s]@%s is too large for topic %s (%d bytes of key, value and "
                    "headers): writing it without %s; the original stays on its topic",
                    record.source.topic(),
                    record.source.partition(),
                    record.source.offset(),
                    self.topic,
                    size,
                    dropped,
                )
                self._retry_later(record, stage, 0.0)
                return
            if not record.held:
                record.held = True
                self.held += 1
                self._on_held(self.held)
            log.error(
                "dead-letter record of %s[%s]@%s cannot be written to topic %s even without its value, key "
                "and original headers (%d bytes): its offset is held; raise the topic's max.message.bytes "
                "(and dead_letter.producer message.max.bytes). Trying again in %.0fs",
                record.source.topic(),
                record.source.partition(),
                record.source.offset(),
                self.topic,
                size,
                RETRY_MAX_S,
            )
            self._retry_later(record, stage, RETRY_MAX_S)
            return
        delay = min(RETRY_MAX_S, RETRY_BASE_S * 2 ** min(record.attempts, 10))
        log.error(
            "writing to dead-letter topic %s failed (%s, attempt %d); its offset is held, retrying in %.1fs",
            self.topic,
            err.str(),
            record.attempts,
            delay,
        )
        self._retry_later(record, stage, delay)

    def _retry_later(self, record: _Record, stage: str, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self._produce, record, stage)

    def poll(self) -> None:
        """Serve delivery callbacks (call often, from the event loop)."""
        self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding records up to ``timeout`` seconds; return how many are still pending."""
        self._producer.flush(timeout)
        return self.pending
