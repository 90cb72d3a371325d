"""The emulator's service model without sockets: the order of its checks, its quota on an injected clock,
its record file and its counters (the wire layer is tested in tests/component/)."""

from __future__ import annotations

import io

import orjson
import pytest

from forwarder.emulator.service import SERVED, Emulator, Faults, InvalidSettingError, Reply

AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKID/20261201/eu-west-1/personalize/aws4_request, "
    "SignedHeaders=host, Signature=ab"
)
BODY = orjson.dumps(
    {"trackingId": "trk", "sessionId": "s", "eventList": [{"eventType": "click", "sentAt": 1_700_000_000}]}
)
DROPPED = (0, None)


def _answer(
    emulator: Emulator, body: bytes = BODY, authorization: str | None = AUTH
) -> tuple[int, str | None]:
    """(status, x-amzn-ErrorType) of one call, or :data:`DROPPED`."""
    reply = emulator.finish_call(body, authorization)
    return DROPPED if reply is None else (reply.status, reply.error_type)


def test_an_accepted_call_is_recorded_and_counted() -> None:
    record = io.BytesIO()
    emulator = Emulator(record=record)
    assert emulator.begin_call() == 0.0
    reply = emulator.finish_call(b"  " + BODY + b"\n", AUTH)
    assert reply is not None
    assert (reply.status, reply.error_type, reply.body) == (200, None, b"{}")
    assert record.getvalue() == b'{"operation":"PutEvents",' + BODY[1:] + b"\n"
    stats = emulator.stats_json()
    assert (stats["requests"], stats["accepted_calls"], stats["accepted_events"]) == (1, 1, 1)


def test_authentication_is_checked_before_the_faults_and_the_body() -> None:
    emulator = Emulator(Faults(throttle_rate=1.0, access_denied=True))
    assert _answer(emulator, b"not json", None) == (403, "MissingAuthenticationTokenException")
    wrong_scope = AUTH.replace("/personalize/", "/personalize-events/")
    assert _answer(emulator, BODY, wrong_scope) == (403, "InvalidSignatureException")
    assert _answer(emulator) == (403, "AccessDeniedException"), "denied before throttled"
    assert (emulator.stats.unauthenticated, emulator.stats.access_denied) == (2, 1)


def test_the_body_is_checked_before_the_tracking_id_and_the_quota() -> None:
    now = [0.0]
    emulator = Emulator(Faults(tracking_ids=frozenset({"other"}), quota_rps=1), clock=lambda: now[0])
    assert _answer(emulator, b"{") == (400, "InvalidInputException")
    assert _answer(emulator) == (404, "ResourceNotFoundException")
    emulator.apply_faults({"tracking_ids": None})
    assert _answer(emulator) == (200, None)
    assert _answer(emulator, BODY.replace(b"trk", b"trk2")) == (200, None), "a bucket per tracking id"
    assert _answer(emulator) == (400, "ThrottlingException"), "one call a second per tracking id"
    now[0] += 1.0
    assert _answer(emulator) == (200, None), "the bucket refills with the clock"
    assert (emulator.stats.quota_throttled, emulator.stats.not_found, emulator.stats.invalid) == (1, 1, 1)


def test_a_dropped_call_has_no_reply_and_a_seed_repeats_the_faults() -> None:
    def outcomes(seed: int) -> list[tuple[int, str | None]]:
        emulator = Emulator(Faults(drop_rate=0.3, error_rate=0.3), seed=seed)
        return [_answer(emulator) for _ in range(50)]

    first = outcomes(5)
    assert first == outcomes(5)
    assert {status for status, _ in first} == {0, 200, 500, 503}


ARN = "arn:aws:personalize:eu-west-1:123456789012:dataset/shop/ITEMS"
ITEMS = orjson.dumps(
    {"datasetArn": ARN, "items": [{"itemId": "i1"}, {"itemId": "i2", "properties": '{"a":1}'}]}
)


def test_each_operation_is_recorded_with_its_name_and_counted_apart() -> None:
    record = io.BytesIO()
    emulator = Emulator(record=record)
    items = SERVED["/items"]
    emulator.begin_call(items)
    assert _reply(emulator.finish_call(ITEMS, AUTH, items)) == (200, None)
    emulator.begin_call()
    assert _reply(emulator.finish_call(BODY, AUTH)) == (200, None)
    lines = [orjson.loads(line) for line in record.getvalue().splitlines()]
    assert [line.pop("operation") for line in lines] == ["PutItems", "PutEvents"]
    assert lines == [orjson.loads(ITEMS), orjson.loads(BODY)]
    stats = emulator.stats_json()
    assert (stats["requests"], stats["accepted_calls"], stats["accepted_events"]) == (1, 1, 1), "events only"
    sections = stats["operations"]
    assert isinstance(sections, dict)
    assert set(sections) == {"PutEvents", "PutItems", "PutUsers", "PutActions", "PutActionInteractions"}
    assert (sections["PutItems"]["requests"], sections["PutItems"]["accepted_records"]) == (1, 2)
    assert sections["PutUsers"]["requests"] == 0


def _reply(reply: Reply | None) -> tuple[int, str | None]:
    assert reply is not None
    return reply.status, reply.error_type


def test_dataset_allow_list_quota_per_operation_and_target_and_rejected_items() -> None:
    now = [0.0]
    emulator = Emulator(
        Faults(dataset_arns=frozenset({"other"}), quota_rps=1, reject_item_ids=frozenset({"i2"})),
        clock=lambda: now[0],
    )
    items, users = SERVED["/items"], SERVED["/users"]
    reply = emulator.finish_call(ITEMS, AUTH, items)
    assert reply is not None
    assert (reply.status, orjson.loads(reply.body)["message"]) == (
        400,
        "items[1].itemId: item 'i2' is rejected (emulator)",
    )
    emulator.apply_faults({"reject_item_ids": []})
    assert _reply(emulator.finish_call(ITEMS, AUTH, items)) == (404, "ResourceNotFoundException")
    emulator.apply_faults({"dataset_arns": None})
    assert _reply(emulator.finish_call(ITEMS, AUTH, items)) == (200, None)
    assert _reply(emulator.finish_call(ITEMS, AUTH, items)) == (400, "ThrottlingException")
    user_body = orjson.dumps({"datasetArn": ARN, "users": [{"userId": "u"}]})
    assert _reply(emulator.finish_call(user_body, AUTH, users)) == (200, None), "a bucket per operation"
    assert _reply(emulator.finish_call(BODY, AUTH)) == (200, None), "tracking ids are not dataset ARNs"
    assert emulator.operation_stats["PutItems"].as_operation_json()["quota_throttled"] == 1


def test_an_operation_quota_replaces_the_common_one_for_that_operation_only() -> None:
    now = [0.0]
    emulator = Emulator(clock=lambda: now[0])
    settings = emulator.apply_faults({"operation_quota_rps": {"PutItems": 1}})
    assert settings.as_json()["operation_quota_rps"] == {"PutItems": 1.0}
    items = SERVED["/items"]
    assert _reply(emulator.finish_call(ITEMS, AUTH, items)) == (200, None)
    assert _reply(emulator.finish_call(ITEMS, AUTH, items)) == (400, "ThrottlingException")
    for _ in range(5):
        assert _reply(emulator.finish_call(BODY, AUTH)) == (200, None), "events have no quota"
    now[0] += 1.0
    assert _reply(emulator.finish_call(ITEMS, AUTH, items)) == (200, None)
    emulator.apply_faults({"quota_rps": 1, "operation_quota_rps": {"PutEvents": 0}})
    for _ in range(3):
        assert _reply(emulator.finish_call(BODY, AUTH)) == (200, None), "0: none for that operation"
    assert _reply(emulator.finish_call(ITEMS, AUTH, items)) == (200, None)
    assert _reply(emulator.finish_call(ITEMS, AUTH, items)) == (400, "ThrottlingException"), "the common one"
    for bad in ({"PutDeletes": 1}, {"PutItems": -1}, [1, 2]):
        with pytest.raises(InvalidSettingError, match=r"^operation_quota_rps"):
            emulator.apply_faults({"operation_quota_rps": bad})


def test_a_held_session_is_throttled_every_time_and_the_others_go_through() -> None:
    emulator = Emulator()
    emulator.apply_faults({"throttle_session_ids": ["s"]})
    assert emulator.faults.as_json()["throttle_session_ids"] == ["s"]
    assert [_answer(emulator) for _ in range(3)] == [(400, "ThrottlingException")] * 3
    assert _answer(emulator, BODY.replace(b'"s"', b'"s2"')) == (200, None)
    emulator.apply_faults({"throttle_session_ids": None})
    assert _answer(emulator) == (200, None)
    assert (emulator.stats.throttled, emulator.stats.accepted_calls) == (3, 2)


def test_a_forbidden_tracking_id_is_denied_and_the_others_go_through() -> None:
    emulator = Emulator()
    emulator.apply_faults({"forbidden_tracking_ids": ["trk"]})
    assert emulator.faults.as_json()["forbidden_tracking_ids"] == ["trk"]
    assert _answer(emulator) == (403, "AccessDeniedException")
    assert _answer(emulator, BODY.replace(b'"trk"', b'"trk2"')) == (200, None)
    emulator.apply_faults({"forbidden_tracking_ids": None})
    assert _answer(emulator) == (200, None)
    assert (emulator.stats.access_denied, emulator.stats.accepted_calls) == (1, 2)
