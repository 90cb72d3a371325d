"""The record decoder of PutActionInteractions: a message's value -> a valid action interaction, or a
:class:`~forwarder.records.common.Problem` naming the field.

Fields are read by their API names (``actionId``, ``sessionId``, ``userId``, ``eventType``, ``timestamp``,
``eventId``, ``recommendationId``, ``impression``, ``properties``) or renamed by ``fields`` (API name ->
dotted path). ``timestamp`` may be epoch seconds, epoch milliseconds (told apart by magnitude, as the
events' decoder does) or ISO-8601; when absent, the caller's ``timestamp`` (the message's own) is used.
``eventId``, when absent, is the caller's ``event_id`` (a stable id such as ``topic:partition:offset``), so a
redelivered message is the same event. ``properties`` is an object (encoded with camelCase keys) or a
JSON string; ``impression`` a list or a ``|``-separated string. A tombstone is reason ``unsupported``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from forwarder.personalize import limits
from forwarder.personalize.put_action_interactions import ActionInteractionRecord
from forwarder.records.common import (
    FieldError,
    Problem,
    as_object,
    camel_case,
    encode_wire,
    getter,
    guarded,
    identifier,
    impression,
    time_seconds,
)

log = logging.getLogger(__name__)

FIELDS: Final = (
    "actionId",
    "sessionId",
    "userId",
    "eventType",
    "timestamp",
    "eventId",
    "recommendationId",
    "impression",
    "properties",
)


@dataclass(frozen=True, slots=True)
class ActionInteractionMapping:
    """``fields``: API name -> dotted path in the message (absent names are read as themselves);
    ``event_type``: a fixed event type for every record (``Viewed``, ``Taken``...), overriding the field;
    ``impression_separator``: splits a string impression; ``camel_case``: of an object's properties keys."""

    fields: Mapping[str, str] = field(default_factory=dict)
    event_type: str | None = None
    impression_separator: str = "|"
    camel_case: bool = True


class ActionInteractionDecoder:
    """A message's value -> an :class:`ActionInteractionRecord` within every limit, or a :class:`Problem`."""

    def __init__(self, mapping: ActionInteractionMapping | None = None) -> None:
        self._mapping = mapping = mapping or ActionInteractionMapping()
        unknown = sorted(set(mapping.fields) - set(FIELDS))
        if unknown:
            raise ValueError(f"fields.{unknown[0]}: not a field of an action interaction; known: {FIELDS}")
        self._get = {name: getter(mapping.fields.get(name, name)) for name in FIELDS}

    def decode(
        self, value: Any, *, event_id: str | None = None, timestamp: float | None = None
    ) -> ActionInteractionRecord | Problem:
        """Decode one parsed message value (``None`` for a tombstone). Never raises for bad content.

        ``event_id`` and ``timestamp`` stand in for the fields when the message has none.
        """
        obj = as_object(value)
        if isinstance(obj, Problem):
            return obj
        return guarded(log, self._build, obj, event_id, timestamp)

    def _build(
        self, obj: Mapping[str, Any], event_id: str | None, timestamp: float | None
    ) -> ActionInteractionRecord:
        get = {name: read(obj) for name, read in self._get.items()}
        wire: dict[str, Any] = {}
        for name in ("actionId", "sessionId", "userId", "eventId"):
            value = identifier(name, get[name])
            if value is not None:
                wire[name] = value
        if "eventId" not in wire and event_id is not None:
            wire["eventId"] = event_id
        event_type = self._mapping.event_type or get["eventType"]
        if event_type is not None:
            wire["eventType"] = event_type
        raw_time = get["timestamp"]
        wire["timestamp"] = time_seconds("timestamp", raw_time) if raw_time is not None else timestamp
        if get["recommendationId"] is not None:
            wire["recommendationId"] = get["recommendationId"]
        if get["impression"] is not None:
            wire["impression"] = impression(get["impression"], self._mapping.impression_separator, "action")
        if get["properties"] is not None:
            wire["properties"] = self._properties(get["properties"])
        problem = limits.check_action_interaction(wire, "")
        if problem:
            raise FieldError(problem.lstrip("."))
        return ActionInteractionRecord(wire["actionId"], wire, encode_wire(wire))

    def _properties(self, value: Any) -> Any:
        if isinstance(value, str):
            return value  # already JSON text, checked by the limits
        if isinstance(value, Mapping):
            key = camel_case if self._mapping.camel_case else str
            try:
                return encode_wire({key(k): v for k, v in value.items()}).decode()
            except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
                raise FieldError(f"properties: cannot be encoded as JSON ({exc})") from None
        raise FieldError(f"properties: must be a JSON object or a string of one, got {type(value).__name__}")
