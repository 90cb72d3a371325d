"""Decode: one Kafka message → one PutEvents event, or a reason it cannot be one.

Contract: :meth:`Decoder.decode` never raises for any message content (a ``parse`` given for a registry
format may raise ``RegistryUnavailable``, which says nothing about the content). It returns an :class:`Event`
that already satisfies every PutEvents limit (checked with :mod:`forwarder.personalize.limits` before
anything is sent), or a :class:`~forwarder.outcome.Reason` with stage ``decode`` (the bytes are not a JSON
object, or not in their registry format) or ``validate`` (a field is missing or breaks a limit) and a
message that names the field.

The event keeps the :class:`~forwarder.outcome.Envelope` it was decoded from: the dead-letter stage needs
the original key, value, headers and timestamp, and the runtime finishes the envelope's offset once the
event has an outcome. Decoding reads only the message; the commit coordinates are the runtime's.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

import orjson
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from forwarder.config import MappingConfig
from forwarder.formats.base import FormatError
from forwarder.outcome import Envelope, Reason, Stage
from forwarder.personalize import limits
from forwarder.records.common import FieldError, epoch_seconds, getter, identifier, time_seconds
from forwarder.records.common import impression as impression_ids

_UTF8_BOM: Final = b"\xef\xbb\xbf"
UNEXPECTED: Final = "Unexpected"  # the error class of a message that hit a gap in the checks
_UNIT_HINT: Final = " (set mapping.sent_at_unit to accept other times)"

log = logging.getLogger(__name__)


class SessionKey(NamedTuple):
    """What one PutEvents call is about: at most one tracking id, user and session per call."""

    tracking_id: str
    user_id: str | None
    session_id: str


@dataclass(slots=True, eq=False)
class Event:
    """A decoded, valid event, with the envelope (message and commit coordinates) it came from."""

    key: SessionKey
    wire: dict[str, Any]  # the event as it goes into eventList
    encoded: bytes  # `wire` as compact JSON, for the fast transport and the size limit
    source: Envelope
    both_impression_kinds: bool  # carries an explicit impression list and a recommendationId
    arrived: float = 0.0  # set by the batcher: monotonic time it was buffered

    @property
    def message(self) -> Message:
        """The message the event was decoded from."""
        return self.source.message


def derive_event_id(topic: str, partition: int, offset: int) -> str:
    """The eventId of a message that has none when its topic's id is unknown: ``topic:partition:offset``.

    The service keeps only the first event of an id, so a message delivered twice (after a crash or
    a rebalance) is not counted twice. Used for dead letters written before topic ids were recorded,
    so their replay keeps the id they first had; otherwise see :func:`event_id_prefix`.
    """
    readable = f"{topic}:{partition}:{offset}"
    if len(readable) <= limits.MAX_ID_LENGTH:
        return readable
    return "kafka:" + hashlib.sha256(readable.encode()).hexdigest()


def event_id_prefix(topic: str, partition: int, topic_id: str) -> str:
    """What a derived eventId starts with, before the offset: ``topic@topic_id:partition:``.

    With the topic's id (which Kafka assigns anew when a topic is created), a message redelivered keeps
    its id while a topic deleted and created again, or moved to another cluster, gives new ids to its
    new messages at the same offsets. A prefix too long for an id of at most 256 characters (offset
    included) is replaced by a hash of it.
    """
    readable = f"{topic}@{topic_id}:{partition}:"
    if len(readable) + 20 <= limits.MAX_ID_LENGTH:  # 20: the digits of the largest offset
        return readable
    return "kafka:" + hashlib.sha256(readable.encode()).hexdigest() + ":"


_FIELD_ORDER: Final = (
    "trackingId",
    "sessionId",
    "userId",
    "eventType",
    "eventId",
    "eventValue",
    "itemId",
    "sentAt",
    "properties",
    "impression",
    "recommendationId",
)


def _check_id(field: str, value: str | None) -> str | None:
    if value is None or (value.__class__ is str and 0 < len(value) <= limits.MAX_ID_LENGTH):
        return None  # the common case, without building the field's path
    return limits.check_string(field, value, limits.MAX_ID_LENGTH)


class Decoder:
    """Turns messages into events according to a :class:`MappingConfig`. Stateless between messages."""

    def __init__(
        self,
        mapping: MappingConfig,
        tracking_id: str,
        parse: Callable[[bytes, Message], Any] | None = None,
    ) -> None:
        """``parse`` turns a value into the object the mapping reads (see :mod:`forwarder.formats`);
        ``None`` is the JSON path below. It raises ``FormatError`` for bad bytes (a ``decode`` rejection
        here) and ``RegistryUnavailable`` when it cannot tell: that one propagates, it is not the
        message's fault.

        When ``parse`` has a ``needs_registry(value, message)`` method (:class:`forwarder.formats.Parser`),
        :attr:`needs_registry` is it: the runtime decodes a message for which it says ``True`` in a worker
        thread, since its first parse may wait on the registry. ``None`` when no message ever needs it.
        """
        self._parse = parse
        self.needs_registry: Callable[[bytes, Message], bool] | None = getattr(parse, "needs_registry", None)
        self._tracking_id = tracking_id
        # Topic name → the id Kafka gave it, filled by the consumer at assignment (and by a replay from its
        # records' headers); a derived eventId carries it. Per partition, the id's prefix is built once.
        self.topic_ids: dict[str, str] = {}
        self._prefixes: dict[tuple[str, int], tuple[str, str]] = {}
        self._event_type = mapping.event_type
        self._unit = mapping.sent_at_unit
        self._separator = mapping.impression_separator
        paths = mapping.fields.model_dump()
        paths.setdefault("eventAttributionSource", None)
        defaults = {"eventAttributionSource": "metricAttribution.eventAttributionSource"}
        resolved = {name: path or defaults.get(name, name) for name, path in paths.items()}
        getters = {name: getter(path) for name, path in resolved.items()}
        # Where every field is a top-level key (the default mapping, and most renames), fetch them with
        # one dict lookup each instead of a getter call: this is the hottest loop of the forwarder.
        flat = [resolved[name] for name in _FIELD_ORDER]
        if all("." not in path for path in flat):
            keys = tuple(flat)
            attribution = getters["eventAttributionSource"]

            def fields(obj: dict[str, Any]) -> tuple[Any, ...]:
                return (*map(obj.get, keys), attribution(obj))

        else:
            ordered = [getters[name] for name in _FIELD_ORDER]
            attribution = getters["eventAttributionSource"]

            def fields(obj: dict[str, Any]) -> tuple[Any, ...]:
                return (*[getter(obj) for getter in ordered], attribution(obj))

        self._fields = fields

    def decode(self, envelope: Envelope) -> Event | Reason:
        """Decode and validate one message (``Envelope(message)`` for one outside the runtime).
        Never raises for bad content."""
        message = envelope.message
        value = message.value()
        if value is None:
            return Reason(Stage.DECODE, "Tombstone", "value: is null (a tombstone), not an event")
        if self._parse is not None:
            obj = self._parsed(value, message)
            if obj.__class__ is Reason:
                return obj
        else:
            if value[:3] == _UTF8_BOM:
                value = value[3:]  # RFC 8259 lets a parser ignore a byte order mark; some producers write one
            try:
                obj = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                kind = "NotUtf8" if "UTF-8" in str(exc) else "NotJson"
                return Reason(Stage.DECODE, kind, f"value: not a UTF-8 JSON document: {exc}")
            if not isinstance(obj, dict):
                return Reason(
                    Stage.DECODE, "NotAnObject", f"value: must be a JSON object, got {type(obj).__name__}"
                )
        try:
            return self._build(obj, envelope)
        except FieldError as exc:
            return Reason(Stage.VALIDATE, "InvalidField", str(exc))
        except Exception as exc:
            # A gap in the checks above. Raising would stop the replica on this message again after every
            # restart (it is never committed), so it is set aside like any bad message, and said loudly.
            log.error("a message could not be decoded (a bug: please report it): %r", exc, exc_info=True)
            return Reason(
                Stage.DECODE, UNEXPECTED, f"value: could not be decoded: {type(exc).__name__}: {exc}"
            )

    def _parsed(self, value: bytes, message: Message) -> Any:
        """The object a registry format's value holds, or the :class:`Reason` it is not one."""
        assert self._parse is not None
        try:
            obj = self._parse(value, message)
        except FormatError as exc:
            return Reason(Stage.DECODE, exc.error_class, exc.message)
        if not isinstance(obj, dict):
            return Reason(Stage.DECODE, "NotAnObject", f"value: must be an object, got {type(obj).__name__}")
        return obj

    def _derived_id(self, message: Message) -> str:
        topic, partition, offset = message.topic() or "", message.partition() or 0, message.offset() or 0
        topic_id = self.topic_ids.get(topic)
        if topic_id is None:
            return derive_event_id(topic, partition, offset)
        key = (topic, partition)
        cached = self._prefixes.get(key)
        if cached is None or cached[0] != topic_id:
            cached = self._prefixes[key] = (topic_id, event_id_prefix(topic, partition, topic_id))
        return cached[1] + str(offset)

    def _build(self, obj: dict[str, Any], envelope: Envelope) -> Event:
        """The event of a JSON object, or FieldError. One long function on purpose: it runs once per event,
        the hottest code of the forwarder, and each extra call would cost on every event."""
        (
            tracking_raw,
            session_raw,
            user_raw,
            event_type,
            event_id,
            event_value,
            item_id,
            sent_at,
            properties,
            impression,
            recommendation_id,
            source,
        ) = self._fields(obj)
        tracking_id = (
            self._tracking_id if tracking_raw is None else identifier("trackingId", tracking_raw) or ""
        )
        session_id = session_raw if session_raw.__class__ is str else identifier("sessionId", session_raw)
        if session_id is None:
            raise FieldError("sessionId: is required")
        user_id = (
            user_raw if user_raw is None or user_raw.__class__ is str else identifier("userId", user_raw)
        )
        if self._event_type is not None:
            event_type = self._event_type
        if event_type is None:
            raise FieldError("eventType: is required")

        message = envelope.message
        if event_id is None:
            event_id = self._derived_id(message)
        elif event_id.__class__ is not str:
            event_id = identifier("eventId", event_id)
        if sent_at.__class__ is float or sent_at.__class__ is int:
            sent_at = epoch_seconds("sentAt", sent_at, self._unit, _UNIT_HINT)
        else:
            sent_at = self._sent_at(sent_at, message)
        wire: dict[str, Any] = {"eventId": event_id, "eventType": event_type, "sentAt": sent_at}
        if item_id is not None:
            wire["itemId"] = item_id if item_id.__class__ is str else identifier("itemId", item_id)
        if event_value is not None:
            wire["eventValue"] = event_value
        properties_object = None
        if properties is not None:
            if properties.__class__ is dict:
                properties_object = properties  # encoded here: its keys are checked without a re-parse
            wire["properties"] = _properties(properties)
        if impression is not None:
            wire["impression"] = impression_ids(impression, self._separator, "item")
        if recommendation_id is not None:
            wire["recommendationId"] = recommendation_id
        if source is not None:
            wire["metricAttribution"] = {"eventAttributionSource": source}

        problem = (
            _check_id("trackingId", tracking_id)
            or _check_id("sessionId", session_id)
            or _check_id("userId", user_id)
            or limits.check_event(wire, path="", properties_object=properties_object)
        )
        if problem:
            raise FieldError(problem.lstrip("."))
        # orjson's result keeps the 4 KB buffer it was written into (measured with tracemalloc: 4,097 bytes
        # held for a 103-byte event); an exact copy holds 144. Events wait in memory, so copy.
        encoded = bytes(memoryview(orjson.dumps(wire)))
        problem = limits.check_event_size("event", encoded)
        if problem:
            raise FieldError(problem)
        return Event(
            key=SessionKey(tracking_id, user_id, session_id),
            wire=wire,
            encoded=encoded,
            source=envelope,
            both_impression_kinds="impression" in wire and "recommendationId" in wire,
        )

    def _sent_at(self, value: Any, message: Message) -> float | int:
        if value is None:
            kind, millis = message.timestamp()
            if kind == TIMESTAMP_NOT_AVAILABLE or millis is None or millis < 0:
                return round(datetime.now(UTC).timestamp(), 3)
            return millis / 1000 if millis % 1000 else millis // 1000
        return time_seconds("sentAt", value, self._unit, _UNIT_HINT)


def _properties(value: Any) -> Any:
    if isinstance(value, dict):
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError as exc:  # nested past orjson's 254 levels: far past 1024 characters
            raise FieldError(f"properties: cannot be encoded as JSON ({exc})") from None
    if isinstance(value, str):
        return value  # already JSON text: sent as the producer wrote it, checked by the limits
    raise FieldError(f"properties: must be a JSON object or a string of one, got {type(value).__name__}")
