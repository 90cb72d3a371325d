"""The sample schemas (``forwarder/schemas/``) and how a sample event becomes a record of each format.

The Protobuf message class is built at run time from a ``FileDescriptorProto`` equal to
``schemas/interaction.proto``, so neither protoc nor generated code is needed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2, wrappers_pb2
from google.protobuf.message_factory import GetMessageClass

REGISTRY_FORMATS: Final = ("avro", "protobuf", "json_schema")
PROTO_FILE: Final = "forwarder/sample/interaction.proto"
PROTO_MESSAGE: Final = "forwarder.sample.Interaction"


def schema_text(name: str) -> str:
    """A file of ``forwarder/schemas/``."""
    return resources.files("forwarder").joinpath("schemas", name).read_text(encoding="utf-8")


def avro_schema() -> str:
    """The Avro sample schema (``interaction.avsc``)."""
    return schema_text("interaction.avsc")


def json_schema() -> str:
    """The JSON Schema sample schema (``interaction.schema.json``)."""
    return schema_text("interaction.schema.json")


def _proto_file() -> descriptor_pb2.FileDescriptorProto:
    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(
        name=PROTO_FILE,
        package="forwarder.sample",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto"],
    )
    msg = fd.message_type.add(name="Interaction")
    entry = msg.nested_type.add(name="PropertiesEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    fields: list[tuple[str, int, int, str | None, int]] = [
        ("sessionId", 1, F.TYPE_STRING, None, F.LABEL_OPTIONAL),
        ("userId", 2, F.TYPE_MESSAGE, ".google.protobuf.StringValue", F.LABEL_OPTIONAL),
        ("eventType", 3, F.TYPE_STRING, None, F.LABEL_OPTIONAL),
        ("eventId", 4, F.TYPE_STRING, None, F.LABEL_OPTIONAL),
        ("itemId", 5, F.TYPE_STRING, None, F.LABEL_OPTIONAL),
        ("eventValue", 6, F.TYPE_MESSAGE, ".google.protobuf.DoubleValue", F.LABEL_OPTIONAL),
        ("sentAt", 7, F.TYPE_MESSAGE, ".google.protobuf.Timestamp", F.LABEL_OPTIONAL),
        ("properties", 8, F.TYPE_MESSAGE, ".forwarder.sample.Interaction.PropertiesEntry", F.LABEL_REPEATED),
        ("impression", 9, F.TYPE_STRING, None, F.LABEL_REPEATED),
        ("recommendationId", 10, F.TYPE_STRING, None, F.LABEL_OPTIONAL),
    ]
    for name, number, kind, type_name, label in fields:
        field = msg.field.add(name=name, number=number, type=kind, label=label, json_name=name)
        if type_name:
            field.type_name = type_name
    return fd


def proto_class() -> Any:
    """The ``Interaction`` message class, built once in the default descriptor pool."""
    pool = descriptor_pool.Default()
    # The well-known types the file imports are in the default pool once their modules are imported.
    assert timestamp_pb2.Timestamp
    assert wrappers_pb2.StringValue
    try:
        descriptor = pool.FindMessageTypeByName(PROTO_MESSAGE)
    except KeyError:
        pool.Add(_proto_file())
        descriptor = pool.FindMessageTypeByName(PROTO_MESSAGE)
    return GetMessageClass(descriptor)


def to_record(event: dict[str, Any], fmt: str) -> Any:
    """A sample event (PutEvents' names, epoch-second ``sentAt``) as a record of the format ``fmt``:
    a dict for Avro and JSON Schema, a message for Protobuf. Property values become strings (the sample
    schemas type them so); an ``a|b|c`` impression becomes a list.
    """
    sent_at = datetime.fromtimestamp(event["sentAt"], UTC)
    impression = event.get("impression")
    if isinstance(impression, str):
        impression = impression.split("|")
    properties = {k: str(v) for k, v in (event.get("properties") or {}).items()}
    if fmt == "avro":
        record: dict[str, Any] = {k: event.get(k) for k in ("sessionId", "userId", "eventType", "itemId")}
        record.update(
            eventId=event.get("eventId"),
            eventValue=event.get("eventValue"),
            sentAt=sent_at,
            properties=properties or None,
            impression=impression,
            recommendationId=event.get("recommendationId"),
        )
        return record
    if fmt == "json_schema":
        doc = {k: v for k, v in event.items() if v is not None and k not in ("sentAt", "properties")}
        doc["sentAt"] = sent_at.isoformat().replace("+00:00", "Z")
        if properties:
            doc["properties"] = properties
        if impression is not None:
            doc["impression"] = impression
        return doc
    if fmt == "protobuf":
        message = proto_class()()
        message.sessionId = event["sessionId"]
        message.eventType = event["eventType"]
        for name in ("eventId", "itemId", "recommendationId"):
            if event.get(name) is not None:
                setattr(message, name, event[name])
        if event.get("userId") is not None:
            message.userId.value = event["userId"]
        if event.get("eventValue") is not None:
            message.eventValue.value = event["eventValue"]
        message.sentAt.FromDatetime(sent_at)
        message.properties.update(properties)
        if impression:
            message.impression.extend(impression)
        return message
    raise ValueError(f"not a registry format: {fmt}")
