"""The PutEvents emulator, driven by a stock boto3 client against a real emulator subprocess.

Each limit is accepted at its edge and rejected one past it with ``InvalidInputException`` whose
message starts with the field's path; faults, the control endpoints, the record file and the
shutdown on signals are checked from outside, as the forwarder's tests will use them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import botocore.exceptions
import orjson
import pytest

from tests.harness import EmulatorProcess, RawConnection, http, request_bytes, signed_headers

Start = Callable[..., EmulatorProcess]

EMOJI = "\U0001f600"  # one code point, four UTF-8 bytes, two UTF-16 units
MAX_EVENT_BYTES = 10 * 1024


def event(**fields: Any) -> dict[str, Any]:
    """A valid event; ``fields`` override or add members."""
    return {"eventId": "e-0", "eventType": "click", "itemId": "item-0", "sentAt": 1714566896, **fields}


def request(**fields: Any) -> dict[str, Any]:
    """A valid one-event request; ``fields`` override or add members."""
    return {
        "trackingId": "tracking-1",
        "sessionId": "session-1",
        "userId": "user-1",
        "eventList": [event()],
        **fields,
    }


def second_event(**fields: Any) -> dict[str, Any]:
    """A request whose second event carries ``fields``, so paths must say ``eventList[1]``."""
    return request(eventList=[event(), event(**{"eventId": "e-1", **fields})])


def properties_of_length(n: int) -> str:
    text = '{"k": "' + "x" * (n - 9) + '"}'
    assert len(text) == n
    return text


def message_of(error: botocore.exceptions.ClientError) -> str:
    message: str = error.response["Error"]["Message"]
    return message


def error_code(error: botocore.exceptions.ClientError) -> str:
    code: str = error.response["Error"]["Code"]
    return code


def expect_invalid(emulator: EmulatorProcess, body: dict[str, Any], path: str) -> None:
    """The call fails with InvalidInputException whose message starts with ``path:``."""
    client = emulator.client
    with pytest.raises(client.exceptions.InvalidInputException) as caught:
        client.put_events(**body)
    assert message_of(caught.value).startswith(f"{path}:"), message_of(caught.value)


# An event that keeps every field within its own limit but, in UTF-8, weighs more than 10 KB.
BIG_FIELDS: dict[str, Any] = {
    "eventType": EMOJI * 256,
    "itemId": EMOJI * 256,
    "recommendationId": EMOJI * 40,
    "properties": '{"k": "' + EMOJI * 1015 + '"}',
    "metricAttribution": {"eventAttributionSource": "s" * 1024},
}
BIG_IMPRESSION = [EMOJI * 249] * 4  # 999 code points joined

# (name, accepted at the edge, rejected one past it, path the message must start with)
EDGES: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    (
        "eventList 10 vs 11",
        request(eventList=[event(eventId=f"e-{i}") for i in range(10)]),
        request(eventList=[event(eventId=f"e-{i}") for i in range(11)]),
        "eventList",
    ),
    *[
        (f"{name} 256 vs 257", request(**{name: "x" * 256}), request(**{name: "x" * 257}), name)
        for name in ("trackingId", "sessionId", "userId")
    ],
    *[
        (
            f"{name} 256 vs 257",
            second_event(**{name: "x" * 256}),
            second_event(**{name: "x" * 257}),
            f"eventList[1].{name}",
        )
        for name in ("eventId", "eventType", "itemId")
    ],
    ("userId in code points", request(userId=EMOJI * 256), request(userId=EMOJI * 257), "userId"),
    (
        "itemId in code points",
        second_event(itemId=EMOJI * 256),
        second_event(itemId=EMOJI * 257),
        "eventList[1].itemId",
    ),
    (
        "impression 25 vs 26 items",
        second_event(impression=[f"i-{n}" for n in range(25)]),
        second_event(impression=[f"i-{n}" for n in range(26)]),
        "eventList[1].impression",
    ),
    (
        "impression item 256 vs 257",
        second_event(impression=["a", "x" * 256]),
        second_event(impression=["a", "x" * 257]),
        "eventList[1].impression[1]",
    ),
    (
        "impression joined 1000 vs 1001",
        second_event(impression=["a" * 250] * 3 + ["a" * 247]),
        second_event(impression=["a" * 250] * 3 + ["a" * 248]),
        "eventList[1].impression",
    ),
    (
        "recommendationId 40 vs 41",
        second_event(recommendationId="r" * 40),
        second_event(recommendationId="r" * 41),
        "eventList[1].recommendationId",
    ),
    (
        "properties 1024 vs 1025",
        second_event(properties=properties_of_length(1024)),
        second_event(properties=properties_of_length(1025)),
        "eventList[1].properties",
    ),
    (
        "metricAttribution source 1024 vs 1025",
        second_event(metricAttribution={"eventAttributionSource": "s" * 1024}),
        second_event(metricAttribution={"eventAttributionSource": "s" * 1025}),
        "eventList[1].metricAttribution.eventAttributionSource",
    ),
    (
        "sentAt 0 vs -1",
        second_event(sentAt=0),
        second_event(sentAt=-1),
        "eventList[1].sentAt",
    ),
    (
        "eventValue finite vs infinite",
        second_event(eventValue=-1.5e300),
        second_event(eventValue=float("inf")),
        "eventList[1].eventValue",
    ),
    (
        "event 10 KB",
        second_event(**BIG_FIELDS),
        second_event(**BIG_FIELDS, impression=BIG_IMPRESSION),
        "eventList[1]",
    ),
]


def test_big_event_fixture_straddles_the_size_limit() -> None:
    assert len(orjson.dumps(event(eventId="e-1", **BIG_FIELDS))) <= MAX_EVENT_BYTES
    assert len(orjson.dumps(event(eventId="e-1", **BIG_FIELDS, impression=BIG_IMPRESSION))) > MAX_EVENT_BYTES


@pytest.mark.parametrize(("edge", "past", "path"), [case[1:] for case in EDGES], ids=[c[0] for c in EDGES])
def test_limit_accepted_at_edge_rejected_past_it(
    shared_emulator: EmulatorProcess, edge: dict[str, Any], past: dict[str, Any], path: str
) -> None:
    shared_emulator.client.put_events(**edge)
    expect_invalid(shared_emulator, past, path)


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"properties": "{not json"}, "eventList[1].properties"),
        ({"properties": '["a list"]'}, "eventList[1].properties"),
        *[
            ({"properties": json.dumps({key: "v"})}, "eventList[1].properties")
            for key in (
                "userId",
                "UserId",
                "SESSIONID",
                "eventType",
                "timestamp",
                "recommendationId",
                "Impression",
            )
        ],
        (
            {"metricAttribution": {"eventAttributionSource": ""}},
            "eventList[1].metricAttribution.eventAttributionSource",
        ),
        (
            {"metricAttribution": {"eventAttributionSource": "   "}},
            "eventList[1].metricAttribution.eventAttributionSource",
        ),
        (
            {"metricAttribution": {"eventAttributionSource": "café"}},
            "eventList[1].metricAttribution.eventAttributionSource",
        ),
        (
            {"metricAttribution": {"eventAttributionSource": "ok\n"}},
            "eventList[1].metricAttribution.eventAttributionSource",
        ),
        ({"eventValue": float("nan")}, "eventList[1].eventValue"),
        ({"sentAt": dt.datetime(1969, 12, 31, tzinfo=dt.UTC)}, "eventList[1].sentAt"),
    ],
)
def test_rejected_values(shared_emulator: EmulatorProcess, fields: dict[str, Any], path: str) -> None:
    expect_invalid(shared_emulator, second_event(**fields), path)


def test_reserved_property_names_elsewhere_are_fine(shared_emulator: EmulatorProcess) -> None:
    shared_emulator.client.put_events(
        **second_event(properties='{"userIdHash": "1", "numberOfRatings": "12"}')
    )


def test_empty_event_list_is_refused_by_botocore_itself(shared_emulator: EmulatorProcess) -> None:
    with pytest.raises(botocore.exceptions.ParamValidationError):
        shared_emulator.client.put_events(**request(eventList=[]))


def test_sent_at_as_datetime(shared_emulator: EmulatorProcess) -> None:
    shared_emulator.client.put_events(**second_event(sentAt=dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)))


def test_body_not_json_is_invalid_input(shared_emulator: EmulatorProcess) -> None:
    response = shared_emulator.post_events(b'{"trackingId": ')
    assert response.status == 400
    assert response.headers["x-amzn-ErrorType"] == "InvalidInputException"
    assert response.json()["message"].startswith("request body:")


def test_unsigned_request_is_forbidden(shared_emulator: EmulatorProcess) -> None:
    response = shared_emulator.post_events(orjson.dumps(request()), service=None)
    assert response.status == 403
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert "message" in response.json()


def test_request_signed_for_the_wrong_service_is_forbidden(shared_emulator: EmulatorProcess) -> None:
    response = shared_emulator.post_events(orjson.dumps(request()), service="personalize-events")
    assert response.status == 403
    assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert "'personalize'" in response.json()["message"]


def test_health(shared_emulator: EmulatorProcess) -> None:
    assert shared_emulator.get("/_emulator/health").status == 200


def test_unknown_tracking_id_is_not_found(emulators: Start) -> None:
    emulator = emulators("--tracking-id", "tracking-1", "--tracking-id", "tracking-2")
    client = emulator.client
    client.put_events(**request(trackingId="tracking-2"))
    with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
        client.put_events(**request(trackingId="tracking-9"))
    assert message_of(caught.value) == "Tracking ID tracking-9 not found"

    assert emulator.set_faults(tracking_ids=None)["tracking_ids"] is None
    client.put_events(**request(trackingId="tracking-9"))
    assert emulator.stats()["not_found"] == 1
    assert len(emulator.calls()) == 2


def test_rejected_item_id_names_its_event(emulators: Start) -> None:
    emulator = emulators("--reject-item-id", "poison")
    client = emulator.client
    body = request(eventList=[event(), event(eventId="e-1", itemId="poison"), event(eventId="e-2")])
    with pytest.raises(client.exceptions.InvalidInputException) as caught:
        client.put_events(**body)
    assert message_of(caught.value).startswith("eventList[1].itemId:")
    client.put_events(**request())
    assert emulator.calls() == [request()]


@pytest.mark.parametrize(
    ("option", "status", "codes"),
    [
        ("--throttle-rate", 400, {"ThrottlingException"}),
        ("--error-rate", None, {"InternalFailure", "ServiceUnavailable"}),
    ],
)
def test_injected_errors(emulators: Start, option: str, status: int | None, codes: set[str]) -> None:
    emulator = emulators(option, "1.0")
    client = emulator.client
    seen: set[int] = set()
    for _ in range(8):
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            client.put_events(**request())
        assert error_code(caught.value) in codes
        seen.add(caught.value.response["ResponseMetadata"]["HTTPStatusCode"])
    if status is not None:
        assert seen == {status}
        assert message_of(caught.value) == "Rate exceeded"
    else:
        assert seen <= {500, 503}
    assert emulator.calls() == []


def test_dropped_connection_is_a_connection_error(emulators: Start) -> None:
    emulator = emulators("--drop-rate", "1.0")
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        emulator.client.put_events(**request())
    assert emulator.stats()["dropped"] == 1
    assert emulator.calls() == []


def test_quota_throttles_a_burst_per_tracking_id(emulators: Start) -> None:
    emulator = emulators("--quota-rps", "2")
    client = emulator.client
    outcomes: list[str] = []
    began = time.monotonic()
    for _ in range(30):
        try:
            client.put_events(**request())
            outcomes.append("ok")
        except botocore.exceptions.ClientError as exc:
            outcomes.append(error_code(exc))
    elapsed = time.monotonic() - began
    accepted = outcomes.count("ok")
    # A bucket of 2 tokens refilled at 2/s: 2 at once, then 2 per second of the burst.
    assert 2 <= accepted <= 2 + 2 * elapsed + 1, (accepted, elapsed)
    assert outcomes.count("ThrottlingException") == 30 - accepted
    client.put_events(**request(trackingId="tracking-2"))  # another tracking id has its own bucket
    stats = emulator.stats()
    assert stats["throttled"] == stats["quota_throttled"] == 30 - accepted
    assert len(emulator.calls()) == accepted + 1


def test_seeded_faults_repeat(emulators: Start) -> None:
    def outcomes(emulator: EmulatorProcess) -> list[str]:
        out = []
        for _ in range(16):
            try:
                emulator.client.put_events(**request())
                out.append("ok")
            except botocore.exceptions.ClientError as exc:
                out.append(error_code(exc))
        return out

    first = outcomes(emulators("--seed", "7", "--throttle-rate", "0.5"))
    second = outcomes(emulators("--seed", "7", "--throttle-rate", "0.5"))
    assert first == second
    assert set(first) == {"ok", "ThrottlingException"}


def test_latency_and_spikes(emulators: Start) -> None:
    emulator = emulators("--latency-ms", "150")

    def duration() -> float:
        began = time.monotonic()
        emulator.client.put_events(**request())
        return time.monotonic() - began

    assert duration() >= 0.15
    emulator.set_faults(latency_ms=0, spike_rate=1.0, spike_ms=120)
    assert duration() >= 0.12
    emulator.set_faults(latency_ms=100, latency_jitter_ms=50, spike_rate=0)
    assert duration() >= 0.05


def test_runtime_faults_and_stats(emulators: Start) -> None:
    emulator = emulators("--tracking-id", "tracking-1")
    client = emulator.client
    client.put_events(**request(eventList=[event(eventId=f"e-{i}") for i in range(3)]))
    client.put_events(**request())
    expect_invalid(emulator, second_event(recommendationId="r" * 41), "eventList[1].recommendationId")
    assert emulator.post_events(b"not json").status == 400
    assert emulator.post_events(orjson.dumps(request()), service=None).status == 403
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.put_events(**request(trackingId="elsewhere"))

    settings = emulator.set_faults(access_denied=True)
    assert settings["access_denied"] is True
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.put_events(**request())
    assert error_code(caught.value) == "AccessDeniedException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    emulator.set_faults(access_denied=False, throttle_rate=1.0)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.put_events(**request())
    assert error_code(caught.value) == "ThrottlingException"

    emulator.set_faults(throttle_rate=0, error_rate=1.0)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.put_events(**request())
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] in (500, 503)

    emulator.set_faults(error_rate=0, drop_rate=1.0)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        client.put_events(**request())

    settings = emulator.set_faults(drop_rate=0)
    assert settings == emulator.get("/_emulator/faults").json()
    assert settings["tracking_ids"] == ["tracking-1"]
    client.put_events(**request())

    stats: dict[str, Any] = dict(emulator.stats())
    assert stats.pop("delay_ms")["count"] == 5
    sections = stats.pop("operations")
    events = dict(sections.pop("PutEvents"))
    events["accepted_events"] = events.pop("accepted_records")
    assert events.pop("in_use") == 0, "a counter of datasets only"
    assert events == stats, "PutEvents' section repeats the top level"
    assert all(section["requests"] == 0 for section in sections.values())
    assert stats == {
        "requests": 11,
        "accepted_calls": 3,
        "accepted_events": 5,
        "invalid": 2,
        "throttled": 1,
        "quota_throttled": 0,
        "errors": 1,
        "dropped": 1,
        "not_found": 1,
        "access_denied": 1,
        "unauthenticated": 1,
    }
    assert len(emulator.calls()) == 3


def test_delivery_delay_and_reset(emulators: Start) -> None:
    emulator = emulators()
    now = time.time()
    emulator.client.put_events(
        **request(eventList=[event(eventId=f"d-{i}", sentAt=now - 2.0 - i / 10) for i in range(10)])
    )
    delay: dict[str, Any] = emulator.stats()["delay_ms"]
    assert delay["count"] == 10
    assert 1900 <= delay["p50"] <= 4000
    assert delay["p99"] >= delay["p50"]
    assert 2800 <= delay["max"] <= 6000
    response = http(f"{emulator.url}/_emulator/reset", b"", method="POST")
    assert response.status == 200
    after: dict[str, Any] = dict(emulator.stats())
    assert after["accepted_calls"] == 0
    assert after["delay_ms"] == {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"throttle_rate": 1.5}, "throttle_rate"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"drop_rate": True}, "drop_rate"),
        ({"access_denied": "yes"}, "access_denied"),
        ({"tracking_ids": "tracking-1"}, "tracking_ids"),
        ({"throttle_rate": 0.5, "no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_bad_fault_settings_are_refused_whole(
    shared_emulator: EmulatorProcess, changes: dict[str, Any], name: str
) -> None:
    before = shared_emulator.get("/_emulator/faults").json()
    answer = http(f"{shared_emulator.url}/_emulator/faults", json.dumps(changes).encode(), method="POST")
    assert answer.status == 400
    assert answer.json()["message"].startswith(f"{name}:")
    assert shared_emulator.get("/_emulator/faults").json() == before


def test_record_holds_exactly_the_accepted_calls(emulators: Start) -> None:
    emulator = emulators("--reject-item-id", "poison")
    client = emulator.client
    when = dt.datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=dt.UTC)
    sent = [
        request(),
        request(
            userId=EMOJI * 3,
            eventList=[
                event(
                    sentAt=when,
                    eventValue=4.5,
                    properties='{"price": "12.5", "tags": ["a", "b"]}',
                    recommendationId="RID-1",
                    impression=["item-0", "item-7"],
                    metricAttribution={"eventAttributionSource": "SourceA"},
                ),
                event(eventId="e-1", sentAt=1714566896.5, itemId="line\u2028separator"),
            ],
        ),
        request(sessionId="session-2", eventList=[event(eventId=f"e-{i}") for i in range(10)]),
    ]
    client.put_events(**sent[0])
    expect_invalid(emulator, second_event(recommendationId="r" * 41), "eventList[1].recommendationId")
    client.put_events(**sent[1])
    expect_invalid(emulator, second_event(itemId="poison"), "eventList[1].itemId")
    emulator.set_faults(throttle_rate=1.0)
    with pytest.raises(botocore.exceptions.ClientError):
        client.put_events(**request())
    emulator.set_faults(throttle_rate=0)
    client.put_events(**sent[2])

    # What botocore puts on the wire: sentAt as epoch seconds; everything else as given.
    expected = json.loads(json.dumps(sent, default=lambda value: value.timestamp()))
    assert emulator.calls() == expected
    assert expected[1]["eventList"][0]["sentAt"] == 1714566615.25


def test_record_is_one_line_even_for_a_pretty_printed_body(emulators: Start) -> None:
    emulator = emulators()
    body = request(eventList=[event(), event(eventId="e-1")])
    response = emulator.post_events(json.dumps(body, indent=2).encode())
    assert response.status == 200
    assert response.json() == {}
    raw = emulator.record.read_bytes()
    assert raw.count(b"\n") == 1
    assert json.loads(raw) == {"operation": "PutEvents", **body}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_promptly_with_exit_0(emulators: Start, sig: int) -> None:
    emulator = emulators()
    emulator.client.put_events(**request())
    began = time.monotonic()
    assert emulator.stop(sig, timeout=10) == 0
    assert time.monotonic() - began < 5
    assert len(emulator.calls()) == 1
    assert "emulator stopped" in emulator.stderr.read_text()


def test_sigterm_does_not_wait_for_a_slow_call(emulators: Start) -> None:
    emulator = emulators("--latency-ms", "30000")
    errors: list[BaseException] = []

    def call() -> None:
        try:
            emulator.client.put_events(**request())
        except Exception as exc:  # the call is cut by the shutdown: any error will do
            errors.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    deadline = time.monotonic() + 10
    while emulator.stats()["requests"] < 1:
        assert time.monotonic() < deadline, "the call never reached the emulator"
        time.sleep(0.05)
    began = time.monotonic()
    assert emulator.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - began < 5
    caller.join(10)
    assert not caller.is_alive()
    assert len(errors) == 1
    assert emulator.calls() == []


# --- HTTP: what other clients (the forwarder's aiohttp transport, curl, a pipelining client) get ---


def signed_events_request(emulator: EmulatorProcess, body: bytes, **extra: str) -> bytes:
    headers = signed_headers(f"{emulator.url}/events", body)
    return request_bytes("POST", "/events", {**headers, **extra}, body)


def test_aiohttp_client_keeps_one_connection(shared_emulator: EmulatorProcess) -> None:
    body = orjson.dumps(request())
    headers = signed_headers(f"{shared_emulator.url}/events", body)
    bad = orjson.dumps(second_event(recommendationId="r" * 41))
    bad_headers = signed_headers(f"{shared_emulator.url}/events", bad)

    async def run() -> tuple[list[int], int, tuple[int, str | None, Any]]:
        connections = 0

        async def counted(*_: object) -> None:
            nonlocal connections
            connections += 1

        tracing = aiohttp.TraceConfig()
        tracing.on_connection_create_end.append(counted)
        async with aiohttp.ClientSession(trace_configs=[tracing]) as session:
            statuses = []
            for _ in range(20):
                async with session.post(f"{shared_emulator.url}/events", data=body, headers=headers) as r:
                    assert await r.json() == {}
                    statuses.append(r.status)
            async with session.post(f"{shared_emulator.url}/events", data=bad, headers=bad_headers) as r:
                error = (r.status, r.headers.get("x-amzn-ErrorType"), await r.json())
            return statuses, connections, error

    statuses, connections, error = asyncio.run(run())
    assert statuses == [200] * 20
    assert connections == 1, "keep-alive: every call on the same connection"
    assert error[:2] == (400, "InvalidInputException")
    assert error[2]["message"].startswith("eventList[1].recommendationId:")


def test_pipelined_requests_are_answered_in_order(emulators: Start) -> None:
    emulator = emulators("--latency-ms", "100")
    good = orjson.dumps(request())
    bad = orjson.dumps(second_event(itemId="x" * 257))
    conn = RawConnection(emulator.url)
    try:
        conn.send(
            signed_events_request(emulator, good)
            + request_bytes("GET", "/_emulator/health", {})
            + signed_events_request(emulator, bad)
            + request_bytes("GET", "/_emulator/stats", {})
        )
        answers = [conn.response() for _ in range(4)]
    finally:
        conn.close()
    assert [a.status for a in answers] == [200, 200, 400, 200]
    assert answers[2].headers["x-amzn-errortype"] == "InvalidInputException"
    assert answers[3].json()["accepted_calls"] == 1
    assert answers[3].json()["invalid"] == 1


def test_chunked_body_and_expect_continue(shared_emulator: EmulatorProcess) -> None:
    body = orjson.dumps(request(sessionId="chunked"))
    headers = signed_headers(f"{shared_emulator.url}/events", body)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])) + b"0\r\n\r\n"
    conn = RawConnection(shared_emulator.url)
    try:
        conn.send(request_bytes("POST", "/events", {**headers, "Transfer-Encoding": "chunked"}, chunked))
        assert conn.response().status == 200
        head = request_bytes(
            "POST", "/events", {**headers, "Expect": "100-continue", "Content-Length": str(len(body))}
        )
        conn.send(head)
        assert conn.reader.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert conn.reader.readline() == b"\r\n"
        conn.send(body)
        assert conn.response().status == 200
    finally:
        conn.close()
    assert shared_emulator.calls()[-2:] == [json.loads(body)] * 2


@pytest.mark.parametrize(
    ("version", "connection"), [("1.0", None), ("1.1", "close")], ids=["HTTP/1.0", "Connection: close"]
)
def test_connection_closed_when_the_client_asks(
    shared_emulator: EmulatorProcess, version: str, connection: str | None
) -> None:
    conn = RawConnection(shared_emulator.url)
    try:
        headers = {"Connection": connection} if connection else {}
        conn.send(request_bytes("GET", "/_emulator/health", headers, version=version))
        answer = conn.response()
        assert answer.status == 200
        assert answer.headers["connection"] == "close"
        assert conn.closed_by_peer()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"POST /events HTTP/1.1\r\nContent-Length: ten\r\n\r\n", 400),
        (b"POST /events HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST /events HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /events HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST /events HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nX-Padding: " + b"p" * 70_000 + b"\r\n\r\n", 431),
        (b"POST /events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ],
    ids=[
        "request line",
        "length",
        "two lengths",
        "length and chunked",
        "gzip",
        "too big",
        "HTTP/2",
        "head",
        "chunk",
    ],
)
def test_malformed_http_is_refused_and_closed(
    shared_emulator: EmulatorProcess, data: bytes, status: int
) -> None:
    before = shared_emulator.stats()
    conn = RawConnection(shared_emulator.url)
    try:
        conn.send(data)
        answer = conn.response()
        assert answer.status == status
        assert answer.headers["connection"] == "close"
        assert conn.closed_by_peer()
    finally:
        conn.close()
    assert shared_emulator.stats() == before, "not a PutEvents call: no counter moves"


def test_unknown_paths_and_methods(shared_emulator: EmulatorProcess) -> None:
    assert shared_emulator.get("/nowhere").status == 404
    assert shared_emulator.get("/_emulator/nothing").status == 404
    answer = shared_emulator.get("/events")
    assert answer.status == 405
    assert answer.headers["Allow"] == "POST"
    assert http(f"{shared_emulator.url}/_emulator/stats", b"{}", method="POST").status == 405


def test_call_of_a_client_that_left_is_still_decided(emulators: Start) -> None:
    emulator = emulators("--latency-ms", "300")
    conn = RawConnection(emulator.url)
    conn.send(signed_events_request(emulator, orjson.dumps(request())))
    deadline = time.monotonic() + 5
    while emulator.stats()["requests"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    conn.close()  # gone before the answer, as a client that timed out
    while emulator.stats()["accepted_calls"] < 1:
        assert time.monotonic() < deadline, "the call was never decided"
        time.sleep(0.02)
    assert emulator.calls() == [request()]


def test_requests_trickled_in_small_pieces(shared_emulator: EmulatorProcess) -> None:
    body = orjson.dumps(request(sessionId="trickled"))
    headers = signed_headers(f"{shared_emulator.url}/events", body)
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 50]), body[i : i + 50]) for i in range(0, len(body), 50)
    )
    stream = request_bytes("POST", "/events", headers, body) + request_bytes(
        "POST", "/events", {**headers, "Transfer-Encoding": "chunked"}, chunked + b"0\r\nX-Trailer: 1\r\n\r\n"
    )
    conn = RawConnection(shared_emulator.url)
    try:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(stream), 23):
            conn.send(stream[start : start + 23])
            time.sleep(0.002)  # so that the pieces arrive apart
        assert [conn.response().status for _ in range(2)] == [200, 200]
    finally:
        conn.close()
    assert shared_emulator.calls()[-2:] == [json.loads(body)] * 2


def test_bad_attribution_source_is_refused_quickly(shared_emulator: EmulatorProcess) -> None:
    # The model's regex backtracks in cubic time on this input: 2 s per event before limits.py avoided it.
    began = time.monotonic()
    source = "a" * 1023 + "\x01"
    expect_invalid(
        shared_emulator,
        second_event(metricAttribution={"eventAttributionSource": source}),
        "eventList[1].metricAttribution.eventAttributionSource",
    )
    assert time.monotonic() - began < 1.0
