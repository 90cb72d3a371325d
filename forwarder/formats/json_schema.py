"""JSON Schema in the Confluent wire format, decoded (and validated) by confluent-kafka's ``JSONDeserializer``.

The writer's schema comes from the registry by the id in the message; a document that breaks its schema
is a decode failure (``Undecodable``) like bytes that are not JSON.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer

from forwarder.formats.base import DESERIALIZER_CONF, deserialize, fetch_schema, require_object, wire_header


class JsonSchemaFormat:
    """JSON Schema documents → dicts."""

    name = "json_schema"

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._client = client
        self._deserializer = JSONDeserializer(
            None, schema_registry_client=client, conf=dict(DESERIALIZER_CONF)
        )
        self.known_ids: set[int] = set()  # schema ids read once: parsing them asks no registry

    def parse(self, value: bytes) -> dict[str, Any]:
        """The document as a dict; :class:`FormatError` or :class:`RegistryUnavailable` otherwise."""
        header = wire_header(value, "JSON")
        fetch_schema(self._client, header.schema_id)
        document = deserialize(lambda: self._deserializer(value, None), header.schema_id)
        self.known_ids.add(header.schema_id)
        return require_object(document, header.schema_id)
