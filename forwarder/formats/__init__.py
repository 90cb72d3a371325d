"""Input formats: how a message value becomes the object the decoder's mapping reads.

``json`` is the decoder's own orjson path (no registry). ``avro``, ``protobuf`` and ``json_schema`` read
the Confluent wire format (magic byte 0, a 4-byte schema id; Protobuf adds message indexes) with
confluent-kafka's own deserializers and a shared :class:`SchemaRegistryClient` (schemas cached).

:func:`parser_for` turns ``input`` configuration into the ``parse`` callable :class:`forwarder.decode.Decoder`
takes (``None`` when every topic is plain JSON, so that path stays exactly as it was).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import Message
from confluent_kafka.schema_registry import SchemaRegistryClient

from forwarder.config.input import FormatName, InputConfig
from forwarder.formats.avro import AvroFormat
from forwarder.formats.base import Format, FormatError, RegistryUnavailable
from forwarder.formats.json import JsonFormat
from forwarder.formats.json_schema import JsonSchemaFormat
from forwarder.formats.protobuf import ProtobufFormat

__all__ = [
    "Format",
    "FormatError",
    "Parse",
    "RegistryUnavailable",
    "make_format",
    "parser_for",
]

Parse = Callable[[bytes, Message], Any]


def make_format(name: FormatName, client: SchemaRegistryClient | None) -> Format:
    """The format called ``name``; a registry format needs ``client``."""
    if name == "json":
        return JsonFormat()
    if client is None:
        raise ValueError(f"input.format {name} needs input.schema_registry.url")
    if name == "avro":
        return AvroFormat(client)
    if name == "protobuf":
        return ProtobufFormat(client)
    return JsonSchemaFormat(client)


def parser_for(config: InputConfig, topics: list[str]) -> Parse | None:
    """The decoder's ``parse`` for these topics, or ``None`` when all of them are plain JSON."""
    names = {topic: config.format_of(topic) for topic in topics}
    if all(name == "json" for name in names.values()):
        return None
    client = (
        SchemaRegistryClient(config.schema_registry.client_conf())
        if config.schema_registry is not None
        else None
    )
    formats: dict[FormatName, Format] = {}
    by_topic: dict[str, Format] = {}
    for topic, name in names.items():
        if name not in formats:
            formats[name] = make_format(name, client)
        by_topic[topic] = formats[name]
    default = formats.get(config.format_of("")) or make_format(config.format_of(""), client)

    def parse(value: bytes, message: Message) -> Any:
        return by_topic.get(message.topic() or "", default).parse(value)

    return parse
