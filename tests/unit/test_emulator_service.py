"""The emulator's service model without sockets: the order of its checks, its quota on an injected clock,
its record file and its counters (the wire layer is tested in tests/emulator/)."""

from __future__ import annotations

import io

import orjson

from forwarder.emulator.service import Emulator, Faults

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
    assert record.getvalue() == BODY + b"\n"
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


def test_a_held_session_is_throttled_every_time_and_the_others_go_through() -> None:
    emulator = Emulator()
    emulator.apply_faults({"throttle_session_ids": ["s"]})
    assert emulator.faults.as_json()["throttle_session_ids"] == ["s"]
    assert [_answer(emulator) for _ in range(3)] == [(400, "ThrottlingException")] * 3
    assert _answer(emulator, BODY.replace(b'"s"', b'"s2"')) == (200, None)
    emulator.apply_faults({"throttle_session_ids": None})
    assert _answer(emulator) == (200, None)
    assert (emulator.stats.throttled, emulator.stats.accepted_calls) == (3, 2)
