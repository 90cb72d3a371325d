"""Input formats: how a message value becomes the object the decoder's mapping reads.

``json`` is the decoder's own orjson path (no registry). ``avro``, ``protobuf`` and ``json_schema`` read
the Confluent wire format (magic byte 0, a 4-byte schema id; Protobuf adds message indexes) with
confluent-kafka's own deserializers and a shared :class:`SchemaRegistryClient` (schemas cached).

:func:`parser_for` turns ``input`` configuration into the ``parse`` callable :class:`forwarder.decode.Decoder`
takes (``None`` when every topic is plain JSON, so that path stays exactly as it was): a :class:`Parser`,
which also says which messages would ask the registry (their schema id not read yet). The registry client's
first fetch of an id is a blocking HTTP call, so the runtime decodes those messages in a worker thread.
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
    "Parser",
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


class Parser:
    """The decoder's ``parse``: each message's value by its topic's format (``default`` for a topic not
    listed). Thread-safe as the formats are: a worker thread may parse while the loop parses others.
    """

    __slots__ = ("_by_topic", "_default")

    def __init__(self, by_topic: dict[str, Format], default: Format) -> None:
        self._by_topic = by_topic
        self._default = default

    def __call__(self, value: bytes, message: Message) -> Any:
        """The value as the object the mapping reads; :class:`FormatError` or :class:`RegistryUnavailable`."""
        return self._by_topic.get(message.topic() or "", self._default).parse(value)

    def needs_registry(self, value: bytes, message: Message) -> bool:
        """Whether parsing this value may ask the registry (a blocking call): its topic's format reads a
        registry and the value's schema id was not read yet. ``False`` for bytes not in the wire format
        (their failure needs no registry) and for plain JSON.
        """
        known: set[int] | None = getattr(
            self._by_topic.get(message.topic() or "", self._default), "known_ids", None
        )
        if known is None or len(value) < 5 or value[0] != 0:
            return False
        return int.from_bytes(value[1:5], "big") not in known


def parser_for(config: InputConfig, topics: list[str]) -> Parser | None:
    """The decoder's ``parse`` for these topics and every topic the format map names (a replay reads the
    dead-letter topic and parses each record by its original topic), or ``None`` when all are plain JSON.
    """
    mapped = list(config.format) if isinstance(config.format, dict) else []
    names = {topic: config.format_of(topic) for topic in [*topics, *mapped]}
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
    return Parser(by_topic, default)
