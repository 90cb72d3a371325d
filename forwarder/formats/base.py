"""What every input format shares: the protocol, the two kinds of failure, and the registry's plumbing.

Contract of a format's :meth:`Format.parse`: bytes in, the Python object the decoder maps (a ``dict`` for
every record format) out; or :class:`FormatError` when the bytes themselves are the problem (the message
goes to the dead-letter topic, stage ``decode``, with the reason); or :class:`RegistryUnavailable` when the
schema could not be had for a reason that is not a definite answer (unreachable, slow, 5xx, refused
credentials): the message is fine, the runtime must wait and try it again, never dead-letter it.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Final, NamedTuple, Protocol, TypeVar

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.common._httpx_compat import httpx
from confluent_kafka.schema_registry.error import OAuthTokenError, SchemaRegistryError
from confluent_kafka.schema_registry.serde import SchemaId
from confluent_kafka.serialization import SerializationError

T = TypeVar("T")
# What the registry client raises when it got no schema: an answer (SchemaRegistryError), no answer
# (httpx's transport errors, timeouts), or no token (OAuthTokenError).
REGISTRY_ERRORS: Final = (SchemaRegistryError, OAuthTokenError, httpx.HTTPError, OSError)

NOT_WIRE_FORMAT: Final = "NotWireFormat"
UNKNOWN_SCHEMA: Final = "UnknownSchema"
UNDECODABLE: Final = "Undecodable"
NOT_AN_OBJECT: Final = "NotAnObject"


class FormatError(ValueError):
    """The message's bytes cannot be decoded: a dead-letter reason (``error_class``, ``message``)."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message


class RegistryUnavailable(Exception):
    """The schema registry gave no definite answer (unreachable, timed out, 5xx, 401/403, 429).

    Not the message's fault: the runtime treats it as an outage (pause, keep offsets, try again).
    """


class Format(Protocol):
    """One input format: bytes → the object the decoder's mapping reads."""

    name: str

    def parse(self, value: bytes) -> Any:
        """Decode one message value; raises :class:`FormatError` or :class:`RegistryUnavailable`."""
        ...


class Header(NamedTuple):
    """The wire-format header of one message."""

    schema_id: int
    message_indexes: tuple[int, ...]  # Protobuf only: which message of the schema's file


def wire_header(value: bytes, schema_type: str) -> Header:
    """Read the Confluent wire-format header (magic byte, schema id; Protobuf: message indexes).

    Uses confluent-kafka's own reader; a wrong magic byte or a value too short for its header is a
    :class:`FormatError` of class ``NotWireFormat``.
    """
    schema_id = SchemaId(schema_type)
    if not value:
        raise FormatError(NOT_WIRE_FORMAT, "value: empty, not in the schema registry wire format")
    if value[0] != 0:
        raise FormatError(
            NOT_WIRE_FORMAT,
            f"value: magic byte is {value[0]:#04x}, not 0x00: not in the schema registry wire format",
        )
    try:
        schema_id.from_bytes(io.BytesIO(value))
    except (struct.error, SerializationError, IndexError, ValueError) as exc:
        raise FormatError(
            NOT_WIRE_FORMAT, f"value: truncated schema registry header ({len(value)} bytes): {exc}"
        ) from None
    assert schema_id.id is not None  # magic byte 0 is followed by a 4-byte id
    return Header(schema_id.id, tuple(schema_id.message_indexes or (0,)))


SCHEMA_NOT_FOUND: Final = 40403  # the registries' own code for "no schema with this id"


def classify_registry_error(exc: BaseException, schema_id: int) -> Exception:
    """A registry failure as the error the runtime acts on.

    Only a definite "schema not found" (HTTP 404 with the registries' code 40403) is the message's
    fault. A 404 without it means the URL does not point at a registry's API (a wrong path, a proxy):
    every message would get it, so it is an outage to fix, not data to set aside.
    """
    if isinstance(exc, SchemaRegistryError) and exc.http_status_code == 404:
        if exc.error_code == SCHEMA_NOT_FOUND:
            return FormatError(
                UNKNOWN_SCHEMA,
                f"value: schema id {schema_id} is not in the schema registry ({exc.error_message})",
            )
        return RegistryUnavailable(
            f"schema registry answered 404 without 'schema not found' for schema id {schema_id} "
            f"(is input.schema_registry.url the registry's base URL?): {exc.error_message}"
        )
    if isinstance(exc, SchemaRegistryError):
        return RegistryUnavailable(
            f"schema registry answered HTTP {exc.http_status_code} for schema id {schema_id}: "
            f"{exc.error_message}"
        )
    return RegistryUnavailable(
        f"schema registry unreachable for schema id {schema_id}: {type(exc).__name__}: {exc}"
    )


def fetch_schema(client: SchemaRegistryClient, schema_id: int, fmt: str | None = None) -> Any:
    """The writer schema of an id (cached by the client), or the classified failure."""
    try:
        return client.get_schema(schema_id, None, fmt)
    except Exception as exc:
        raise classify_registry_error(exc, schema_id) from exc


def _registry_failure(exc: BaseException) -> BaseException | None:
    """The registry error behind ``exc`` (itself, or a cause it wraps), if there is one."""
    seen: BaseException | None = exc
    for _ in range(5):  # a short chain: the deserializers wrap at most once or twice
        if seen is None:
            return None
        if isinstance(seen, REGISTRY_ERRORS):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def deserialize(call: Callable[[], T], schema_id: int) -> T:
    """Run a confluent deserializer: registry failures classified, anything else ``Undecodable``.

    Anything else includes errors no list foresees (fastavro's, protobuf's): a message that breaks the
    deserializer is set aside with the reason, never taken for an outage that would hold the partition.
    """
    try:
        return call()
    except Exception as exc:
        registry = _registry_failure(exc)
        if registry is not None:
            raise classify_registry_error(registry, schema_id) from exc
        raise FormatError(
            UNDECODABLE, f"value: does not decode with schema id {schema_id}: {type(exc).__name__}: {exc}"
        ) from None


def _no_subject(_ctx: object, _record_name: object) -> None:
    return None


# The deserializers read with the writer's schema, found by the id in the message: no subject, so no
# "latest version" or subject lookups (one registry request per new schema id, then the cache).
DESERIALIZER_CONF: Final = {"subject.name.strategy": _no_subject}


def plain(value: Any) -> Any:
    """Record values as the decoder takes them: times as ISO-8601 text (a zone-less time is UTC to the
    decoder), decimals as floats; dicts and lists walked, everything else unchanged.
    """
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def require_object(value: Any, schema_id: int) -> dict[str, Any]:
    """A decoded value the mapping can read: an object (a record, a message, a JSON object)."""
    if not isinstance(value, dict):
        raise FormatError(
            NOT_AN_OBJECT,
            f"value: schema id {schema_id} decodes to {type(value).__name__}, not a record/object",
        )
    return value
