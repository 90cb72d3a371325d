"""The outcome vocabulary's wire contract: stage strings are written to dead-letter headers and selected by
``replay --stage``, so they never change; a reason's fields land in the headers as they are."""

from __future__ import annotations

from confluent_kafka import Message

from forwarder.dead_letter import (
    HEADER_ATTEMPTS,
    HEADER_CLASS,
    HEADER_MESSAGE,
    HEADER_STAGE,
    dead_letter_headers,
)
from forwarder.outcome import Envelope, Reason, Stage


def test_stage_wire_strings_are_fixed() -> None:
    assert [stage.value for stage in Stage] == [
        "decode",
        "validate",
        "api",
        "retry_exhausted",
        "outage",
        "unsupported",
    ]
    assert f"{Stage.RETRY_EXHAUSTED}" == "retry_exhausted"


def test_a_reason_becomes_the_dead_letter_headers() -> None:
    message = Message(topic="t", partition=1, offset=7, value=b"x", headers=[("trace", b"1")])
    headers = dict(dead_letter_headers(message, Reason(Stage.API, "InvalidInputException", "itemId: bad", 3)))
    assert headers["trace"] == b"1"
    assert headers[HEADER_STAGE] == b"api"
    assert headers[HEADER_CLASS] == b"InvalidInputException"
    assert headers[HEADER_MESSAGE] == b"itemId: bad"
    assert headers[HEADER_ATTEMPTS] == b"3"


def test_an_envelope_finishes_its_offset_on_its_origin() -> None:
    finished: list[int] = []

    class Origin:
        tp = ("t", 0)

        def finish(self, offset: int) -> None:
            finished.append(offset)

    Envelope(Message(topic="t", partition=0, offset=99), Origin(), 5).finish()
    Envelope(Message(topic="t", partition=0, offset=6)).finish()  # detached: nothing to finish
    assert finished == [5], "the envelope's offset, not the message's"
