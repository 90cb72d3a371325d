"""Credentials never leave the process: the redaction function and the three exits it guards."""

from __future__ import annotations

import io
import json
import logging

import pytest
from confluent_kafka import Message

from forwarder.dead_letter import HEADER_MESSAGE, dead_letter_headers
from forwarder.logs import JsonFormatter, RedactingFormatter
from forwarder.outcome import Reason, Stage
from forwarder.redaction import REDACTED, redact

TOKEN = "IQoJb3JpZ2luX2VjEOr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6" + "Zm9yd2FyZGVyLXRlc3QtdG9rZW4" * 8
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEY_ID = "ASIAIOSFODNN7EXAMPLE"
SIGNATURE = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
CANONICAL = (
    "The request signature we calculated does not match the signature you provided. "
    "The Canonical String for this request should have been\n'POST\n/events\n\n"
    "content-type:application/x-amz-json-1.1\nhost:personalize-events.us-east-1.amazonaws.com\n"
    f"x-amz-date:20261201T080000Z\nx-amz-security-token:{TOKEN}\n\n"
    "content-type;host;x-amz-date;x-amz-security-token\nUNSIGNED'\n"
    "The String-to-Sign should have been 'AWS4-HMAC-SHA256\n20261201T080000Z\n"
    f"20261201/us-east-1/personalize/aws4_request\n{SIGNATURE}'"
)
AUTH_HEADER = (
    f"Authorization: AWS4-HMAC-SHA256 Credential={KEY_ID}/20261201/us-east-1/personalize/aws4_request, "
    f"SignedHeaders=host;x-amz-date, Signature={SIGNATURE}"
)


@pytest.mark.parametrize(
    ("text", "secrets"),
    [
        (CANONICAL, [TOKEN]),
        (AUTH_HEADER, [KEY_ID, SIGNATURE, "Credential=ASIA"]),
        (
            f"Credential={KEY_ID}/20261201/us-east-1/personalize/aws4_request Signature={SIGNATURE}",
            [KEY_ID, SIGNATURE],
        ),
        (f'{{"X-Amz-Security-Token": "{TOKEN}"}}', [TOKEN]),
        (f"https://h/p?X-Amz-Security-Token={TOKEN}&X-Amz-Signature={SIGNATURE}", [TOKEN, SIGNATURE]),
        (f"aws_secret_access_key = {SECRET}", [SECRET]),
        (f"the key {SECRET} leaked", [SECRET]),
        (f"a token {TOKEN} leaked", [TOKEN]),
        (f'{{"SessionToken": "short-but-named", "AccessKeyId": "{KEY_ID}"}}', ["short-but-named", KEY_ID]),
        ("Authorization=Bearer abc.def", ["abc.def"]),
    ],
)
def test_credentials_are_redacted(text: str, secrets: list[str]) -> None:
    out = redact(text)
    for secret in secrets:
        assert secret not in out, out
    assert REDACTED in out
    assert redact(out) == out, "redacting twice changes nothing more"


@pytest.mark.parametrize(
    "text",
    [
        "recommendationId: length 41 is more than 40",
        "ResourceNotFoundException: tracking id tracking-test not found",
        "interactions[3]@1024 stage=validate class=InvalidField",
        "kafka:" + "ab12" * 16,  # a derived event id (sha256 hex): lower case only
        "x" * 300,
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("forwarder.send", logging.ERROR, __file__, 1, message, args, None)


def test_log_lines_are_redacted_in_text_and_json() -> None:
    record = _record("PutEvents refuses every call (%s)", CANONICAL)
    text = RedactingFormatter(logging.Formatter("%(levelname)s %(message)s")).format(record)
    assert TOKEN not in text
    assert "refuses every call" in text
    line = RedactingFormatter(JsonFormatter()).format(_record("outage: %s", AUTH_HEADER))
    assert SIGNATURE not in line
    assert KEY_ID not in line
    assert json.loads(line)["level"] == "ERROR", "still one JSON object"


def _fail() -> None:
    raise RuntimeError(CANONICAL)


def test_exception_text_in_logs_is_redacted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(logging.Formatter("%(message)s")))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            _fail()
        except RuntimeError:
            logger.exception("call failed")
    finally:
        logger.removeHandler(handler)
    assert "call failed" in stream.getvalue()
    assert TOKEN not in stream.getvalue()


def test_the_dead_letter_reason_header_is_redacted() -> None:
    message = Message(topic="t", partition=0, offset=7, key=b"k", value=b"v", headers=[])
    headers = dict(dead_letter_headers(message, Reason(Stage.API, "InvalidInputException", CANONICAL, 1)))
    reason = headers[HEADER_MESSAGE]
    assert isinstance(reason, bytes)
    assert TOKEN.encode() not in reason
    assert b"does not match" in reason
