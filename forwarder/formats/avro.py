"""Avro in the Confluent wire format, decoded by confluent-kafka's ``AvroDeserializer``.

The writer's schema comes from the registry by the id in the message (cached by the client, parsed
schemas cached by the deserializer). ``timestamp-millis``/``timestamp-micros`` (UTC datetimes), ``date``
and ``time-*`` become ISO-8601 text, which ``sentAt`` accepts, and ``decimal`` a float; records and maps
stay dicts, arrays lists. Only the fields whose schema holds such a logical type are walked (found once
per schema id), so records without them cost nothing more than the deserializer.
"""

from __future__ import annotations

import json
from typing import Any, Final

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer

from forwarder.formats.base import (
    DESERIALIZER_CONF,
    deserialize,
    fetch_schema,
    plain,
    require_object,
    wire_header,
)

_CONVERTED: Final = frozenset(
    {
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
        "date",
        "time-millis",
        "time-micros",
        "decimal",
    }
)
_ALL: Final = ("*",)  # not a record at the top: walk the whole value


def _has_converted_type(schema: Any) -> bool:
    """Whether a logical type that :func:`plain` converts appears anywhere in this (part of a) schema."""
    if isinstance(schema, dict):
        if schema.get("logicalType") in _CONVERTED:
            return True
        return any(_has_converted_type(v) for v in schema.values() if isinstance(v, dict | list))
    if isinstance(schema, list):
        return any(_has_converted_type(v) for v in schema)
    return False


def fields_to_convert(schema_str: str) -> tuple[str, ...]:
    """The top-level fields of a record schema whose values :func:`plain` must walk."""
    schema = json.loads(schema_str)
    if not (isinstance(schema, dict) and schema.get("type") == "record"):
        return _ALL if _has_converted_type(schema) else ()
    # A named type defined in one field and used by name in another: walk every field that may hold it.
    if not _has_converted_type(schema):
        return ()
    return tuple(
        f["name"]
        for f in schema.get("fields", [])
        if _has_converted_type(f.get("type")) or _names_a_type(f.get("type"))
    )


def _names_a_type(schema: Any) -> bool:
    primitives = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
    if isinstance(schema, str):
        return schema not in primitives
    if isinstance(schema, list):
        return any(_names_a_type(s) for s in schema)
    if isinstance(schema, dict):
        return any(_names_a_type(schema.get(k)) for k in ("items", "values") if k in schema)
    return False


class AvroFormat:
    """Avro records → dicts."""

    name = "avro"

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._client = client
        self._deserializer = AvroDeserializer(client, conf=dict(DESERIALIZER_CONF))
        self._convert: dict[int, tuple[str, ...]] = {}
        self.known_ids: set[int] = set()  # schema ids read once: parsing them asks no registry

    def parse(self, value: bytes) -> dict[str, Any]:
        """The record as a dict; :class:`FormatError` or :class:`RegistryUnavailable` otherwise."""
        header = wire_header(value, "AVRO")
        convert = self._convert.get(header.schema_id)
        if convert is None:
            schema = fetch_schema(self._client, header.schema_id)
            convert = self._convert[header.schema_id] = fields_to_convert(schema.schema_str)
        record = deserialize(lambda: self._deserializer(value, None), header.schema_id)
        self.known_ids.add(header.schema_id)
        if convert is _ALL:
            return require_object(plain(record), header.schema_id)
        record = require_object(record, header.schema_id)
        for name in convert:
            field = record.get(name)
            if field is not None:
                record[name] = plain(field)
        return record
