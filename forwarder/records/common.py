"""What the record decoders share: the mapping of a message's fields onto a record, and the answer kinds.

Contract of every decoder's ``decode(value, ...)``: it never raises for any content; it returns the
operation's record, already within every limit of :mod:`forwarder.personalize.limits`, or a
:class:`Problem` whose ``message`` starts with the offending field's name.

**Deletes and tombstones.** Personalize's write API has no call that deletes an item, a user or an
action (PutItems and its siblings only add or replace). So a tombstone (a null value, the way a keyed,
compacted topic says "deleted") or a record whose ``delete_field`` is true is *not* silently skipped: it
is a :class:`Problem` with reason :data:`UNSUPPORTED`, which the runtime dead-letters like any other, so
the message is finished, counted and visible, and nothing is lost without a trace. Removing the record
from the dataset is then a deliberate step (a dataset import in FULL mode, or the console).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import orjson

DECODE: Final = "decode"  # the value is not a JSON object
VALIDATE: Final = "validate"  # a field is missing or breaks a limit
UNSUPPORTED: Final = "unsupported"  # a delete or tombstone: the API has no call for it


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a value cannot become a record: ``reason`` (:data:`DECODE`, :data:`VALIDATE` or
    :data:`UNSUPPORTED`), an error class, and a message that starts with the field's name."""

    reason: str
    error_class: str
    message: str


class FieldError(ValueError):
    """A field is missing or invalid; the message starts with the field's name."""


@dataclass(frozen=True, slots=True)
class PropertiesMapping:
    """How a message's fields become a record's ``properties`` (for items, users and actions).

    - ``pick``: the properties, each ``name: path`` (a dotted path into the message). When empty, every
      top-level field of the message becomes a property except the record's own fields and ``drop``;
    - ``drop``: fields never sent (only when ``pick`` is empty);
    - ``from_field``: instead of the above, the properties are this one field, a JSON object or a string
      holding one (a producer that already writes Personalize's shape);
    - ``camel_case``: keys are written in camelCase (``number_of_ratings`` and ``NUMBER_OF_RATINGS`` become
      ``numberOfRatings``), as Personalize matches them against the dataset schema's fields.

    Values must be strings, numbers or booleans; a list of them is a categorical value, joined with
    ``|`` as Personalize wants; a null value is left out (a missing optional field).
    """

    pick: Mapping[str, str] = field(default_factory=dict)
    drop: frozenset[str] = frozenset()
    from_field: str | None = None
    camel_case: bool = True


_WORD_BREAK: Final = re.compile(r"[_\-\s]+")


def camel_case(name: str) -> str:
    """``number_of_ratings``, ``NUMBER_OF_RATINGS``, ``number-of-ratings`` -> ``numberOfRatings``.

    A word in capitals is one word (``PRICE`` -> ``price``, ``price_EUR`` -> ``priceEur``); any other
    keeps its inner capitals (``genreL1`` stays, ``itemName_v2`` -> ``itemNameV2``, ``Genre`` -> ``genre``).
    """
    parts = [part for part in _WORD_BREAK.split(name) if part]
    if not parts:
        return name
    words = [part.lower() if part.isupper() else part for part in parts]
    head, *rest = words
    return head[:1].lower() + head[1:] + "".join(word[:1].upper() + word[1:] for word in rest)


def getter(path: str) -> Callable[[Mapping[str, Any]], Any]:
    """A function that reads the dotted ``path`` of a message, ``None`` where absent; :class:`FieldError`
    where a step of the path is present but not an object (the value meant would be lost silently)."""
    parts = path.split(".")
    if len(parts) == 1:
        name = parts[0]
        return lambda obj: obj.get(name)  # the common case, one lookup (the events decoder's hot loop)

    def get(obj: Mapping[str, Any]) -> Any:
        node: Any = obj
        for depth, part in enumerate(parts):
            if node is None:
                return None
            if not isinstance(node, Mapping):
                where = ".".join(parts[:depth])
                raise FieldError(f"{where}: must be an object holding {part}, got {type(node).__name__}")
            node = node.get(part)
        return node

    return get


def identifier(name: str, value: Any, *, required: bool = False) -> str | None:
    """Ids may be strings or integers (numeric ids are common); floats and bools are mistakes."""
    if value is None:
        if required:
            raise FieldError(f"{name}: is required")
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise FieldError(f"{name}: must be a string, got {type(value).__name__}")


def _property_value(name: str, value: Any) -> Any:
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list):
        if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
            raise FieldError(f"properties.{name}: a list must hold only strings or numbers")
        return "|".join(str(v) for v in value)
    raise FieldError(
        f"properties.{name}: must be a string, number, boolean or list, got {type(value).__name__}"
    )


def _encode(properties: Mapping[str, Any]) -> str:
    try:
        return orjson.dumps(properties).decode()
    except orjson.JSONEncodeError as exc:  # an int beyond 64 bits, or nesting past orjson's 254 levels
        raise FieldError(f"properties: cannot be encoded as JSON ({exc})") from None


class PropertiesBuilder:
    """Builds a record's ``properties`` JSON string from a message, by a :class:`PropertiesMapping`."""

    def __init__(self, mapping: PropertiesMapping, own_fields: Sequence[str]) -> None:
        self._mapping = mapping
        self._skip = frozenset(own_fields) | mapping.drop
        self._picks = [(name, getter(path)) for name, path in mapping.pick.items()]
        self._from = getter(mapping.from_field) if mapping.from_field else None

    def build(self, obj: Mapping[str, Any]) -> str | None:
        """The properties as the JSON string the API wants, or ``None`` when there are none."""
        if self._from is not None:
            value = self._from(obj)
            if value is None or isinstance(value, str):
                return value or None
            if not isinstance(value, Mapping):
                raise FieldError(
                    f"properties: must be a JSON object or a string of one, got {type(value).__name__}"
                )
            items: list[tuple[str, Any]] = list(value.items())
        elif self._picks:
            items = [(name, get(obj)) for name, get in self._picks]
        else:
            items = [(name, value) for name, value in obj.items() if name not in self._skip]
        key = camel_case if self._mapping.camel_case else str
        properties: dict[str, Any] = {}
        for name, value in items:
            if value is None:
                continue
            out = key(name)
            if out in properties:
                raise FieldError(f"properties.{out}: two fields map onto this key")
            properties[out] = _property_value(out, value)
        return _encode(properties) if properties else None


_UTF8_BOM: Final = b"\xef\xbb\xbf"


def parse_value(raw: bytes | None) -> Any:
    """A Kafka message's value parsed as JSON for a decoder's ``decode``: ``None`` stays ``None`` (a
    tombstone, which the decoder answers with :data:`UNSUPPORTED`); bytes that are not UTF-8 JSON become
    a :class:`Problem` with reason :data:`DECODE`, which a decoder's ``decode`` returns as it is."""
    if raw is None:
        return None
    if raw[:3] == _UTF8_BOM:
        raw = raw[3:]  # RFC 8259 lets a parser ignore a byte order mark; some producers write one
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        kind = "NotUtf8" if "UTF-8" in str(exc) else "NotJson"
        return Problem(DECODE, kind, f"value: not a UTF-8 JSON document: {exc}")


def as_object(value: Any) -> Mapping[str, Any] | Problem:
    """The message's parsed value as an object, or the :class:`Problem` it is (a tombstone, not an object)."""
    if isinstance(value, Problem):
        return value
    if value is None:
        return Problem(
            UNSUPPORTED,
            "Tombstone",
            "value: is null (a tombstone, a delete): Personalize's write API has no delete; not sent",
        )
    if not isinstance(value, Mapping):
        return Problem(DECODE, "NotAnObject", f"value: must be a JSON object, got {type(value).__name__}")
    return value


def encode_wire(wire: Mapping[str, Any]) -> bytes:
    """``wire`` as compact JSON, copied out of orjson's larger buffer (records wait in memory)."""
    return bytes(memoryview(orjson.dumps(wire)))


# `auto` times: the unit that puts the time between these two is the one the producer meant.
PLAUSIBLE_FROM: Final = 946684800.0  # 2000-01-01T00:00:00Z
PLAUSIBLE_TO: Final = 4102444800.0  # 2100-01-01T00:00:00Z


def epoch_seconds(name: str, value: float, unit: str = "auto", hint: str = "") -> float | int:
    """A number of epoch seconds (``unit`` ``s``), milliseconds (``ms``) or either (``auto``: the unit
    that puts it between 2000 and 2100) as epoch seconds; :class:`FieldError` otherwise, its message
    ending with ``hint``."""
    if not math.isfinite(value):
        raise FieldError(f"{name}: {value!r} is not a time")
    if unit == "s":
        return value
    if unit == "ms":
        return value / 1000 if value % 1000 else int(value) // 1000
    if PLAUSIBLE_FROM <= value < PLAUSIBLE_TO:
        return value
    if PLAUSIBLE_FROM <= value / 1000 < PLAUSIBLE_TO:
        return value / 1000 if value % 1000 else int(value) // 1000
    raise FieldError(
        f"{name}: {value!r} is neither epoch seconds nor milliseconds between 2000 and 2100{hint}"
    )


def time_seconds(name: str, value: Any, unit: str = "auto", hint: str = "") -> float | int:
    """Epoch seconds from a number (:func:`epoch_seconds`) or an ISO-8601 string (UTC when it has no
    zone); :class:`FieldError` for anything else, or a time before 1970."""
    if isinstance(value, bool):
        raise FieldError(f"{name}: must be epoch seconds, epoch milliseconds or ISO-8601, got bool")
    if isinstance(value, int | float):
        return epoch_seconds(name, value, unit, hint)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise FieldError(f"{name}: {value[:40]!r} is not ISO-8601 nor a number") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)  # a time without a zone is taken as UTC
        seconds = parsed.timestamp()
        if seconds < 0:
            raise FieldError(f"{name}: {value[:40]!r} is before 1970")
        return int(seconds) if seconds.is_integer() else seconds
    raise FieldError(
        f"{name}: must be epoch seconds, epoch milliseconds or ISO-8601, got {type(value).__name__}"
    )


def impression(value: Any, separator: str, of: str) -> list[Any]:
    """An impression: a list of ids (:func:`identifier` each), or one string of them split on
    ``separator``; :class:`FieldError` otherwise, naming what the ids are ``of`` (item, action)."""
    if isinstance(value, str):
        return value.split(separator)
    if isinstance(value, list):
        return [identifier(f"impression[{i}]", item) for i, item in enumerate(value)]
    raise FieldError(f"impression: must be a list of {of} ids or one string, got {type(value).__name__}")


_Record = TypeVar("_Record")


def guarded(log: logging.Logger, build: Callable[..., _Record | Problem], *args: Any) -> _Record | Problem:
    """``build(*args)``, a decoder's build of one record, never raising: a :class:`FieldError` is a
    :data:`VALIDATE` problem; any other exception is a gap in the checks, logged on ``log`` (the decoder's)
    and set aside like any bad message (a ``decode`` problem) rather than stop the replica on it."""
    try:
        return build(*args)
    except FieldError as exc:
        return Problem(VALIDATE, "InvalidField", str(exc))
    except Exception as exc:
        log.error("a record could not be decoded (a bug: please report it): %r", exc, exc_info=True)
        return Problem(DECODE, "Unexpected", f"value: could not be decoded: {type(exc).__name__}: {exc}")
