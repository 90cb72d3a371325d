"""Protobuf in the Confluent wire format, decoded by confluent-kafka's ``ProtobufDeserializer``.

The forwarder has no generated classes: the message class is built at run time from the writer's
schema (fetched from the registry in its serialized ``FileDescriptorProto`` form, by the id and message
indexes in the message) and one deserializer is kept per (schema id, message indexes). The message then
becomes a dict: ``google.protobuf.Timestamp`` → ISO-8601 text (which ``sentAt`` accepts), the wrapper
types → their value, ``Struct``/``Value``/``ListValue`` → JSON values, maps → dicts, repeated → lists,
enums → their names, nested messages → dicts. Unset fields are absent (as in JSON), so a proto3 scalar
left at its default is not sent.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from google.protobuf import empty_pb2, json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message as ProtoMessage
from google.protobuf.message_factory import GetMessageClass

from forwarder.formats.base import DESERIALIZER_CONF, deserialize, fetch_schema, wire_header

_WRAPPERS: Final = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
_JSON_VALUES: Final = frozenset(
    {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
)
_MESSAGE: Final = FieldDescriptor.TYPE_MESSAGE
_ENUM: Final = FieldDescriptor.TYPE_ENUM


def to_plain(message: ProtoMessage) -> Any:
    """A message as the decoder takes it (see the module's docstring)."""
    full_name = message.DESCRIPTOR.full_name
    if full_name == "google.protobuf.Timestamp":
        return message.ToJsonString()
    if full_name in _WRAPPERS:
        return message.value
    if full_name in _JSON_VALUES:
        return json_format.MessageToDict(message)
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.type == _MESSAGE:
            if field.message_type.GetOptions().map_entry:
                value_field = field.message_type.fields_by_name["value"]
                out[field.name] = {k: _scalar(value_field, v) for k, v in value.items()}
            elif _repeated(field):
                out[field.name] = [to_plain(item) for item in value]
            else:
                out[field.name] = to_plain(value)
        elif _repeated(field):
            out[field.name] = [_scalar(field, item) for item in value]
        else:
            out[field.name] = _scalar(field, value)
    return out


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == _MESSAGE:
        return to_plain(value)
    if field.type == _ENUM:
        number = field.enum_type.values_by_number.get(value)
        return number.name if number is not None else value
    return value


class ProtobufFormat:
    """Protobuf messages → dicts, with no generated code."""

    name = "protobuf"

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._client = client
        # Its schema parsing (serialized FileDescriptorProto + referenced schemas → a descriptor pool) is
        # what builds the writer's message class; the message type it is made with is never used.
        self._schemas = ProtobufDeserializer(
            empty_pb2.Empty, {**DESERIALIZER_CONF, "use.deprecated.format": False}, client
        )
        self._deserializers: dict[tuple[int, tuple[int, ...]], ProtobufDeserializer] = {}
        self._lock = threading.Lock()
        self.known_ids: set[int] = set()  # schema ids read once: parsing them asks no registry

    def parse(self, value: bytes) -> dict[str, Any]:
        """The message as a dict; :class:`FormatError` or :class:`RegistryUnavailable` otherwise."""
        header = wire_header(value, "PROTOBUF")
        key = (header.schema_id, header.message_indexes)
        deserializer = self._deserializers.get(key)
        if deserializer is None:
            deserializer = self._deserializer_for(key)
        message = deserialize(lambda: deserializer(value, None), header.schema_id)
        self.known_ids.add(header.schema_id)
        plain = to_plain(message)
        assert isinstance(plain, dict)  # a message that is not a well-known type is a dict
        return plain

    def _deserializer_for(self, key: tuple[int, tuple[int, ...]]) -> ProtobufDeserializer:
        schema_id, indexes = key
        schema = fetch_schema(self._client, schema_id, "serialized")

        def build() -> ProtobufDeserializer:
            fd_proto, pool = self._schemas._get_parsed_schema(schema)
            descriptor = self._schemas._get_message_desc(
                pool, pool.FindFileByName(fd_proto.name), list(indexes)
            )
            made: ProtobufDeserializer = ProtobufDeserializer(
                GetMessageClass(descriptor),
                {**DESERIALIZER_CONF, "use.deprecated.format": False},
                self._client,
            )
            return made

        built = deserialize(build, schema_id)
        with self._lock:
            self._deserializers[key] = built
        return built
