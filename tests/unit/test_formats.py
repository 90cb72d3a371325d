"""The format layer's failure cases and conversions, without a real registry.

A registry's answers (404, 503, too slow, nothing listening) come from a tiny HTTP server on loopback,
so the classification — bad data (``FormatError``) versus outage (``RegistryUnavailable``) — is checked
against real HTTP responses through confluent-kafka's own client.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import orjson
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.common._httpx_compat import httpx
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import SerializationError
from pydantic import ValidationError

from forwarder import sample_schemas
from forwarder.config import MappingConfig, parse_config
from forwarder.config.input import InputConfig, SchemaRegistryConfig
from forwarder.decode import Decoder, Event
from forwarder.formats import FormatError, RegistryUnavailable, make_format, parser_for
from forwarder.formats.avro import fields_to_convert
from forwarder.formats.base import deserialize, plain
from forwarder.formats.protobuf import to_plain
from forwarder.outcome import Envelope, Reason, Stage

REGISTRY_FORMATS = ("avro", "protobuf", "json_schema")


class _Registry(BaseHTTPRequestHandler):
    status = 404
    code = 40403
    delay = 0.0

    def do_GET(self) -> None:
        time.sleep(self.delay)
        body = orjson.dumps({"error_code": self.code, "message": f"Schema not found: {self.path}"})
        with contextlib.suppress(OSError):  # the slow case: the client gave up and closed
            self.send_response(self.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def registry() -> Iterator[tuple[str, type[_Registry]]]:
    """A loopback HTTP server answering every request with ``status`` after ``delay`` seconds."""
    handler = type("Handler", (_Registry,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _client(url: str) -> SchemaRegistryClient:
    conf = SchemaRegistryConfig.model_validate({"url": url, "timeout": 0.5, "max.retries": 0})
    return SchemaRegistryClient(conf.client_conf())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _framed(schema_id: int, body: bytes = b"\x02ab") -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + body


@pytest.mark.parametrize("fmt", REGISTRY_FORMATS)
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty"),
        (b'{"sessionId": "s1"}', "magic byte is 0x7b"),
        (b"\x01" + b"\x00" * 20, "magic byte is 0x01"),
        (b"\x00\x00\x01", "truncated"),
    ],
)
def test_bytes_not_in_the_wire_format_name_the_reason_without_asking_the_registry(
    fmt: str, value: bytes, reason: str
) -> None:
    fmt_ = make_format(fmt, _client(f"http://127.0.0.1:{_closed_port()}"))  # type: ignore[arg-type]
    with pytest.raises(FormatError, match=reason) as caught:
        fmt_.parse(value)
    assert caught.value.error_class == "NotWireFormat"


@pytest.mark.parametrize("fmt", REGISTRY_FORMATS)
def test_a_definite_not_found_is_bad_data_with_the_id(fmt: str, registry: tuple[str, Any]) -> None:
    url, _handler = registry
    with pytest.raises(FormatError, match="schema id 4242 is not in the schema registry") as caught:
        make_format(fmt, _client(url)).parse(_framed(4242))  # type: ignore[arg-type]
    assert caught.value.error_class == "UnknownSchema"


@pytest.mark.parametrize("fmt", REGISTRY_FORMATS)
def test_a_404_that_is_not_schema_not_found_is_an_outage_not_bad_data(
    fmt: str, registry: tuple[str, Any]
) -> None:
    url, handler = registry
    handler.code = 404  # a path that is not the registry's API: every message would get it
    with pytest.raises(RegistryUnavailable, match="base URL"):
        make_format(fmt, _client(url)).parse(_framed(4242))  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", REGISTRY_FORMATS)
@pytest.mark.parametrize(("status", "delay"), [(503, 0.0), (500, 0.0), (401, 0.0), (200, 2.0)])
def test_5xx_refused_credentials_or_a_slow_answer_is_an_outage(
    fmt: str, status: int, delay: float, registry: tuple[str, Any]
) -> None:
    url, handler = registry
    handler.status, handler.delay = status, delay
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match="schema id 7"):
        make_format(fmt, _client(url)).parse(_framed(7))  # type: ignore[arg-type]
    assert time.monotonic() - started < 5  # bounded by the configured timeout, not the client's "forever"


@pytest.mark.parametrize("fmt", REGISTRY_FORMATS)
def test_nothing_listening_is_an_outage(fmt: str) -> None:
    client = _client(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        make_format(fmt, client).parse(_framed(7))  # type: ignore[arg-type]


def _message(value: bytes, topic: str = "events") -> Message:
    return Message(topic=topic, partition=0, offset=3, value=value, timestamp=(TIMESTAMP_CREATE_TIME, 1))


def test_the_decoder_turns_format_errors_into_decode_rejections_and_lets_outages_through() -> None:
    def parse(value: bytes, _message: Message) -> Any:
        if value == b"down":
            raise RegistryUnavailable("schema registry unreachable")
        if value == b"list":
            return [1, 2]
        raise FormatError("NotWireFormat", "value: magic byte is 0x64")

    decoder = Decoder(MappingConfig(), "t", parse=parse)
    bad = decoder.decode(Envelope(_message(b"data")))
    assert bad == Reason(Stage.DECODE, "NotWireFormat", "value: magic byte is 0x64")
    not_object = decoder.decode(Envelope(_message(b"list")))
    assert isinstance(not_object, Reason)
    assert (not_object.stage, not_object.error_class) == (Stage.DECODE, "NotAnObject")
    with pytest.raises(RegistryUnavailable):
        decoder.decode(Envelope(_message(b"down")))


def test_a_parsed_record_is_validated_like_json() -> None:
    record = {"sessionId": "s1", "eventType": "click", "sentAt": "2025-05-01T12:00:00+00:00"}
    decoder = Decoder(MappingConfig(), "t", parse=lambda _v, _m: record)
    event = decoder.decode(Envelope(_message(b"x")))
    assert isinstance(event, Event)
    assert event.wire["sentAt"] == 1746100800
    record["recommendationId"] = "r" * 41
    rejected = decoder.decode(Envelope(_message(b"x")))
    assert isinstance(rejected, Reason)
    assert rejected.stage == "validate"
    assert "recommendationId" in rejected.message


def test_avro_logical_types_become_values_sent_at_accepts() -> None:
    when = datetime(2025, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
    out = plain({"sentAt": when, "nested": {"v": Decimal("1.5")}, "list": [when.date()]})
    assert out == {"sentAt": "2025-05-01T12:00:00.250000+00:00", "nested": {"v": 1.5}, "list": ["2025-05-01"]}
    event = Decoder(MappingConfig(), "t", parse=lambda _v, _m: {**out, "sessionId": "s", "eventType": "e"})
    decoded = event.decode(Envelope(_message(b"x")))
    assert isinstance(decoded, Event)
    assert decoded.wire["sentAt"] == pytest.approx(when.timestamp())


def test_protobuf_well_known_types_maps_and_repeated_become_plain_values() -> None:
    message = sample_schemas.to_record(
        {
            "sessionId": "s1",
            "userId": "u1",
            "eventType": "click",
            "eventValue": 2.5,
            "sentAt": 1746100800.5,
            "properties": {"a": 1},
            "impression": "i1|i2",
        },
        "protobuf",
    )
    assert to_plain(message) == {
        "sessionId": "s1",
        "userId": "u1",
        "eventType": "click",
        "eventValue": 2.5,
        "sentAt": "2025-05-01T12:00:00.500Z",
        "properties": {"a": "1"},
        "impression": ["i1", "i2"],
    }


def test_input_config_per_topic_formats_and_registry_settings() -> None:
    cfg = InputConfig.model_validate(
        {
            "format": {"clicks": "avro", "views": "protobuf"},
            "schema_registry": {"url": "http://127.0.0.1:1", "basic.auth.user.info": "k:s"},
        }
    )
    assert (cfg.format_of("clicks"), cfg.format_of("views"), cfg.format_of("other")) == (
        "avro",
        "protobuf",
        "json",
    )
    assert cfg.schema_registry is not None
    assert cfg.schema_registry.client_conf() == {
        "url": "http://127.0.0.1:1",
        "basic.auth.user.info": "k:s",
        "timeout": 10.0,
        "max.retries": 2,
        "cache.capacity": 1000,
    }
    with pytest.raises(ValidationError, match=r"needs schema_registry\.url"):
        InputConfig.model_validate({"format": "avro"})
    assert parser_for(InputConfig(), ["a", "b"]) is None  # all JSON: the decoder's own path


def test_the_registry_credentials_can_come_from_the_environment() -> None:
    base = {
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "topics": ["t"]},
        "personalize": {"tracking_id": "t"},
        "dead_letter": {"topic": "d"},
        "input": {"format": "avro", "schema_registry": {"url": "http://127.0.0.1:1"}},
    }
    cfg = parse_config(base, {"FORWARDER__INPUT__SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO": "key:secret"})
    assert cfg.input.schema_registry is not None
    assert cfg.input.schema_registry.client_conf()["basic.auth.user.info"] == "key:secret"


def test_a_mixed_topic_map_reads_json_topics_as_json() -> None:
    cfg = InputConfig.model_validate(
        {"format": {"records": "avro"}, "schema_registry": {"url": "http://127.0.0.1:1"}}
    )
    parse = parser_for(cfg, ["records", "plain"])
    assert parse is not None
    decoder = Decoder(MappingConfig(), "t", parse=parse)
    ok = decoder.decode(Envelope(_message(b'{"sessionId": "s", "eventType": "e"}', topic="plain")))
    assert isinstance(ok, Event)
    bad = decoder.decode(Envelope(_message(b"nope", topic="plain")))
    assert isinstance(bad, Reason)
    assert bad.error_class == "NotJson"
    framed = decoder.decode(Envelope(_message(b"nope", topic="records")))
    assert isinstance(framed, Reason)
    assert framed.error_class == "NotWireFormat"


def test_the_proto_file_shown_to_users_is_the_descriptor_built_at_run_time() -> None:
    text = resources.files("forwarder").joinpath("schemas", "interaction.proto").read_text()
    declared = {
        (name, int(number))
        for name, number in re.findall(r"^\s+(?:repeated\s+)?[\w.<>, ]+?\s(\w+) = (\d+);", text, re.M)
    }
    built = {(f.name, f.number) for f in sample_schemas.proto_class().DESCRIPTOR.fields}
    assert declared == built
    assert len(built) == 10


def test_avro_walks_only_the_fields_that_can_hold_a_converted_logical_type() -> None:
    ts = {"type": "long", "logicalType": "timestamp-millis"}
    context = {"type": "record", "name": "Ctx", "fields": [{"name": "at", "type": ts}]}
    schema = {
        "type": "record",
        "name": "E",
        "fields": [
            {"name": "sessionId", "type": "string"},
            {"name": "impression", "type": {"type": "array", "items": "string"}},
            {"name": "sentAt", "type": ["null", ts]},
            {"name": "context", "type": context},
            {"name": "again", "type": ["null", "Ctx"]},  # the named type again, by reference
        ],
    }
    assert fields_to_convert(orjson.dumps(schema).decode()) == ("sentAt", "context", "again")
    assert fields_to_convert(sample_schemas.avro_schema()) == ("sentAt",)
    plain_schema = {"type": "record", "name": "P", "fields": [{"name": "a", "type": "string"}]}
    assert fields_to_convert(orjson.dumps(plain_schema).decode()) == ()


def test_a_deserializer_failure_is_bad_data_unless_the_registry_is_behind_it() -> None:
    def unforeseen() -> None:
        raise RuntimeError("fastavro had a bad day")

    with pytest.raises(FormatError, match="fastavro had a bad day") as caught:
        deserialize(unforeseen, 5)
    assert caught.value.error_class == "Undecodable"

    def wrapped_transport() -> None:
        raise SerializationError("could not fetch the schema") from httpx.ConnectError("connection refused")

    with pytest.raises(RegistryUnavailable, match="connection refused"):
        deserialize(wrapped_transport, 5)

    def not_found() -> None:
        raise SchemaRegistryError(404, 40403, "Schema 5 not found")

    with pytest.raises(FormatError, match="schema id 5 is not in the schema registry"):
        deserialize(not_found, 5)
