"""Avro in the Confluent wire format, decoded by confluent-kafka's ``AvroDeserializer``.

The writer's schema comes from the registry by the id in the message (cached by the client, parsed
schemas cached by the deserializer). ``timestamp-millis``/``timestamp-micros`` (UTC datetimes) and
``date`` become ISO-8601 text, which ``sentAt`` accepts; records and maps stay dicts, arrays lists.
"""

from __future__ import annotations

from typing import Any

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


class AvroFormat:
    """Avro records → dicts."""

    name = "avro"

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._client = client
        self._deserializer = AvroDeserializer(client, conf=dict(DESERIALIZER_CONF))

    def parse(self, value: bytes) -> dict[str, Any]:
        """The record as a dict; :class:`FormatError` or :class:`RegistryUnavailable` otherwise."""
        header = wire_header(value, "AVRO")
        fetch_schema(self._client, header.schema_id)
        record = deserialize(lambda: self._deserializer(value, None), header.schema_id)
        return require_object(plain(record), header.schema_id)
