"""Avro in the Confluent wire format, decoded by confluent-kafka's ``AvroDeserializer``.

The writer's schema comes from the registry by the id in the message (cached by the client, parsed
schemas cached by the deserializer). ``timestamp-millis``/``timestamp-micros`` (UTC datetimes), ``date``
and ``time-*`` become ISO-8601 text, which ``sentAt`` accepts, and ``decimal`` a float; records and maps
stay dicts, arrays lists. Only the fields whose schema holds such a logical type are walked (found once
per schema id), so records without them cost nothing more than the deserializer.
"""

from __future__ import annotations

import io
import json
from typing import Any, Final

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from fastavro import parse_schema, schemaless_reader

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
        self._readers: dict[int, Any] = {}  # schema id → its fastavro-parsed writer schema
        self.known_ids: set[int] = set()  # schema ids read once: parsing them asks no registry

    def parse(self, value: bytes) -> dict[str, Any]:
        """The record as a dict; :class:`FormatError` or :class:`RegistryUnavailable` otherwise."""
        if len(value) > 5 and value[0] == 0:
            schema_id = int.from_bytes(value[1:5], "big")
            reader = self._readers.get(schema_id)
            if reader is not None:
                # The writer's schema, parsed once per id, read by fastavro directly: the same record
                # AvroDeserializer makes (it reads with the writer's schema too), without its per-message
                # lookups, which cost more than the read itself.
                body = value[5:]
                record = deserialize(lambda: schemaless_reader(io.BytesIO(body), reader, None), schema_id)
                return self._converted(record, schema_id)
        header = wire_header(value, "AVRO")
        convert = self._convert.get(header.schema_id)
        if convert is None:
            schema = fetch_schema(self._client, header.schema_id)
            convert = self._convert[header.schema_id] = fields_to_convert(schema.schema_str)
            if not schema.references and not schema.rule_set:  # else only the deserializer reads it right
                parsed = deserialize(lambda: parse_schema(json.loads(schema.schema_str)), header.schema_id)
                self._readers[header.schema_id] = parsed
        record = deserialize(lambda: self._deserializer(value, None), header.schema_id)
        self.known_ids.add(header.schema_id)
        return self._converted(record, header.schema_id)

    def _converted(self, record: Any, schema_id: int) -> dict[str, Any]:
        convert = self._convert[schema_id]
        if convert is _ALL:
            return require_object(plain(record), schema_id)
        obj = require_object(record, schema_id)
        for name in convert:
            field = obj.get(name)
            if field is not None:
                obj[name] = plain(field)
        return obj
