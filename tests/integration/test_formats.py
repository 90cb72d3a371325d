"""Avro, Protobuf and JSON Schema records through the real schema registry and the real broker.

Each record is produced with confluent-kafka's own serializer (registering its schema), read back from
Kafka, and decoded by the format layer + :class:`Decoder` into the same event the JSON path makes of the
same interaction. A schema evolution step (a field added with a default) leaves the old records readable.
The failures: not the wire format and an unknown schema id are ``decode`` rejections naming the reason;
a registry that stopped answering raises :class:`RegistryUnavailable` (an outage, not bad data).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import Message
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from forwarder import sample_schemas
from forwarder.config import MappingConfig
from forwarder.config.input import InputConfig, SchemaRegistryConfig
from forwarder.decode import Decoder, Event
from forwarder.formats import RegistryUnavailable, make_format, parser_for
from forwarder.outcome import Envelope, Reason, Stage
from forwarder.sample import sample_events
from tests.conftest import SchemaRegistry
from tests.support import create_topic, produce, read_topic, registry_script, unique

pytestmark = pytest.mark.integration

FORMATS = ("avro", "protobuf", "json_schema")
TRACKER = "tracker-formats"
START = 1764000000.0  # fixed: the same events every run


def _avro_v2() -> str:
    schema = json.loads(sample_schemas.avro_schema())
    schema["fields"].append({"name": "channel", "type": "string", "default": "web"})
    return json.dumps(schema)


def _json_schema_v2() -> str:
    schema = json.loads(sample_schemas.json_schema())
    schema["properties"]["channel"] = {"type": "string", "default": "web"}
    return json.dumps(schema)


def _proto_v2_class() -> Any:
    """The sample message with one more field, as a second file (the evolved schema)."""
    pool = descriptor_pool.Default()
    name = "forwarder.sample.v2.Interaction"
    try:
        return GetMessageClass(pool.FindMessageTypeByName(name))
    except KeyError:
        pass
    sample_schemas.proto_class()  # its imports are in the pool
    fd = descriptor_pb2.FileDescriptorProto()
    fd.CopyFrom(sample_schemas._proto_file())
    fd.name = "forwarder/sample/v2/interaction.proto"
    fd.package = "forwarder.sample.v2"
    msg = fd.message_type[0]
    for field in msg.field:
        if field.HasField("type_name"):
            field.type_name = field.type_name.replace(".forwarder.sample.", ".forwarder.sample.v2.")
    msg.field.add(
        name="channel",
        number=11,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        json_name="channel",
    )
    pool.Add(fd)
    return GetMessageClass(pool.FindMessageTypeByName(name))


def _serializer(fmt: str, client: SchemaRegistryClient, version: int) -> Any:
    if fmt == "avro":
        return AvroSerializer(client, sample_schemas.avro_schema() if version == 1 else _avro_v2())
    if fmt == "json_schema":
        return JSONSerializer(sample_schemas.json_schema() if version == 1 else _json_schema_v2(), client)
    cls = sample_schemas.proto_class() if version == 1 else _proto_v2_class()
    return ProtobufSerializer(cls, client, {"use.deprecated.format": False})


def _record(event: dict[str, Any], fmt: str, version: int) -> Any:
    record = sample_schemas.to_record(event, fmt)
    if version == 2:
        if fmt == "protobuf":
            evolved = _proto_v2_class()()
            evolved.ParseFromString(record.SerializeToString())  # same field numbers
            evolved.channel = "app"
            return evolved
        record["channel"] = "app"
    return record


def _as_json(event: dict[str, Any]) -> dict[str, Any]:
    """The same interaction as the JSON path takes it (the sample schemas' string properties, lists)."""
    out = {k: v for k, v in event.items() if v is not None}
    if isinstance(out.get("impression"), str):
        out["impression"] = out["impression"].split("|")
    out["properties"] = {k: str(v) for k, v in event["properties"].items()}
    return out


def _json_twin(message: Message, event: dict[str, Any]) -> Message:
    """The message a JSON producer would have written for ``event``, at ``message``'s coordinates."""
    return Message(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        value=orjson.dumps(_as_json(event)),
        timestamp=message.timestamp(),
    )


def _comparable(event: Event) -> tuple[Any, dict[str, Any]]:
    wire = dict(event.wire)
    wire["properties"] = json.loads(wire["properties"])  # a Protobuf map keeps no key order
    return event.key, wire


@pytest.fixture(scope="module")
def client(schema_registry: SchemaRegistry) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": schema_registry.url, "timeout": 10})


def _input(url: str, fmt: str, **registry: Any) -> InputConfig:
    return InputConfig.model_validate({"format": fmt, "schema_registry": {"url": url, **registry}})


@pytest.mark.parametrize("fmt", FORMATS)
def test_records_decode_to_the_events_json_gives_across_a_schema_evolution(
    fmt: str, bootstrap: str, schema_registry: SchemaRegistry, client: SchemaRegistryClient
) -> None:
    topic = create_topic(bootstrap, unique(f"formats-{fmt}"))
    events = list(sample_events(40, 7, seed=3, start=START))
    ctx = SerializationContext(topic, MessageField.VALUE)
    old, new = _serializer(fmt, client, 1), _serializer(fmt, client, 2)
    values = [old(_record(e, fmt, 1), ctx) for e in events[:20]]
    values += [new(_record(e, fmt, 2), ctx) for e in events[20:]]
    produce(bootstrap, topic, ((e["sessionId"].encode(), v) for e, v in zip(events, values, strict=True)))

    messages = read_topic(bootstrap, topic, expect=len(events))
    assert len(messages) == len(events)
    ids = {struct.unpack(">I", m.value()[1:5])[0] for m in messages}
    assert len(ids) == 2, "the evolution step registered a second schema"

    parse = parser_for(_input(schema_registry.url, fmt), [topic])
    assert parse is not None
    records = Decoder(MappingConfig(), TRACKER, parse=parse)
    plain_json = Decoder(MappingConfig(), TRACKER)
    for message, event in zip(messages, events, strict=True):
        decoded = records.decode(Envelope(message))
        assert isinstance(decoded, Event), decoded
        expected = plain_json.decode(Envelope(_json_twin(message, event)))
        assert isinstance(expected, Event), expected
        key, wire = _comparable(decoded)
        expected_key, expected_wire = _comparable(expected)
        assert key == expected_key
        assert wire.pop("sentAt") == pytest.approx(expected_wire.pop("sentAt"), abs=1e-6)
        assert wire == expected_wire
        assert "channel" not in wire  # a field the mapping does not name is not sent


@pytest.mark.parametrize("fmt", FORMATS)
def test_bytes_not_in_the_wire_format_are_decode_rejections(
    fmt: str, bootstrap: str, schema_registry: SchemaRegistry
) -> None:
    topic = create_topic(bootstrap, unique(f"formats-bad-{fmt}"))
    bad = [b'{"sessionId": "s1"}', b"\x00\x00\x01", b""]
    produce(bootstrap, topic, ((b"k", v) for v in bad))
    messages = read_topic(bootstrap, topic, expect=len(bad))
    assert len(messages) == len(bad)
    parse = parser_for(_input(schema_registry.url, fmt), [topic])
    decoder = Decoder(MappingConfig(), TRACKER, parse=parse)
    for message in messages:
        result = decoder.decode(Envelope(message))
        assert isinstance(result, Reason), result
        assert (result.stage, result.error_class) == (Stage.DECODE, "NotWireFormat")
    magic = decoder.decode(Envelope(messages[0]))
    assert isinstance(magic, Reason)
    assert "magic byte is 0x7b" in magic.message


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_unknown_schema_id_is_a_decode_rejection_naming_the_id(
    fmt: str, bootstrap: str, schema_registry: SchemaRegistry
) -> None:
    topic = create_topic(bootstrap, unique(f"formats-unknown-{fmt}"))
    produce(bootstrap, topic, [(b"k", b"\x00" + struct.pack(">I", 987654) + b"\x00\x02{}")])
    (message,) = read_topic(bootstrap, topic, expect=1)
    decoder = Decoder(MappingConfig(), TRACKER, parse=parser_for(_input(schema_registry.url, fmt), [topic]))
    result = decoder.decode(Envelope(message))
    assert isinstance(result, Reason), result
    assert (result.stage, result.error_class) == (Stage.DECODE, "UnknownSchema")
    assert "schema id 987654" in result.message


def test_a_url_that_is_not_the_registry_api_is_an_outage_not_an_unknown_schema(
    bootstrap: str, schema_registry: SchemaRegistry, client: SchemaRegistryClient
) -> None:
    topic = create_topic(bootstrap, unique("formats-wrong-url"))
    event = next(sample_events(1, 1, start=START))
    value = _serializer("avro", client, 1)(
        _record(event, "avro", 1), SerializationContext(topic, MessageField.VALUE)
    )
    produce(bootstrap, topic, [(b"k", value)])
    (message,) = read_topic(bootstrap, topic, expect=1)
    wrong = schema_registry.url.rsplit("/", 1)[0] + "/v0"  # the right server, not its API
    decoder = Decoder(MappingConfig(), TRACKER, parse=parser_for(_input(wrong, "avro"), [topic]))
    with pytest.raises(RegistryUnavailable, match="base URL"):
        decoder.decode(Envelope(message))


@pytest.fixture
def second_registry(schema_registry: SchemaRegistry) -> Iterator[tuple[str, dict[str, str]]]:
    """A registry of this test's own (the session's keeps running): its URL and the script's env."""
    if schema_registry.script_env is None:
        pytest.skip("stopping a registry needs one started by scripts/schema-registry-local")
    port = int(schema_registry.script_env["SCHEMA_REGISTRY_PORT"]) + 1
    env = schema_registry.env_on(port)
    url = registry_script("start", env).splitlines()[-1]
    try:
        yield url, env
    finally:
        registry_script("stop", env)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_stopped_registry_is_unavailable_not_bad_data(
    fmt: str, bootstrap: str, second_registry: tuple[str, dict[str, str]]
) -> None:
    url, env = second_registry
    topic = create_topic(bootstrap, unique(f"formats-outage-{fmt}"))
    event = next(sample_events(1, 1, start=START))
    writer = SchemaRegistryClient({"url": url, "timeout": 10})
    value = _serializer(fmt, writer, 1)(
        _record(event, fmt, 1), SerializationContext(topic, MessageField.VALUE)
    )
    produce(bootstrap, topic, [(b"k", value)])
    (message,) = read_topic(bootstrap, topic, expect=1)

    registry_script("stop", env)
    reader = SchemaRegistryClient(
        SchemaRegistryConfig.model_validate({"url": url, "timeout": 2, "max.retries": 0}).client_conf()
    )
    decoder = Decoder(MappingConfig(), TRACKER, parse=lambda v, _m: make_format(fmt, reader).parse(v))  # type: ignore[arg-type]
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        decoder.decode(Envelope(message))


@pytest.mark.parametrize("fmt", FORMATS)
def test_forwarder_sample_produces_records_the_format_layer_reads(
    fmt: str, bootstrap: str, schema_registry: SchemaRegistry
) -> None:
    topic = unique(f"formats-sample-{fmt}")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "forwarder",
            "sample",
            "--bootstrap-servers",
            bootstrap,
            "--topic",
            topic,
            "--partitions",
            "1",
            "--events",
            "30",
            "--sessions",
            "5",
            "--format",
            fmt,
            "--schema-registry-url",
            schema_registry.url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"produced 30 {fmt} sample events" in result.stdout
    messages = read_topic(bootstrap, topic, expect=30)
    assert len(messages) == 30
    decoder = Decoder(MappingConfig(), TRACKER, parse=parser_for(_input(schema_registry.url, fmt), [topic]))
    events = [decoder.decode(Envelope(m)) for m in messages]
    assert all(isinstance(e, Event) for e in events), [e for e in events if not isinstance(e, Event)]
    assert {e.key.session_id for e in events if isinstance(e, Event)} <= {
        f"session-{i:05d}" for i in range(5)
    }
