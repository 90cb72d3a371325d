"""The one HTTP/1.1 parser: the framing rules both the client (responses) and the emulator (requests)
read messages by, byte by byte as well as whole."""

from __future__ import annotations

import pytest

from forwarder.personalize.http import (
    CHUNKED,
    UNTIL_EOF,
    BodyReader,
    HttpParseError,
    parse_request_head,
    parse_response_head,
    take_head,
)

MAX = 1024


def _read(wire: bytes, *, request: bool, piece: int) -> tuple[str, bytes, bytes]:
    """Feed ``wire`` ``piece`` bytes at a time: (head, body, what is left after the message)."""
    buffer = bytearray()
    reader = BodyReader(MAX)
    head: str | None = None
    for start in range(0, len(wire), piece):
        buffer += wire[start : start + piece]
        if head is None:
            head = take_head(buffer)
            if head is None:
                continue
            parse = parse_request_head if request else parse_response_head
            reader.reset(parse(head, MAX).length)
        body = reader.feed(buffer)
        if body is not None:
            return head, body, bytes(buffer)
    raise AssertionError("the message never completed")


CHUNKED_BODY = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"


@pytest.mark.parametrize("piece", [1, 7, 10_000])
@pytest.mark.parametrize(
    ("wire", "is_request", "body"),
    [
        (b"POST /events?x=1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloNEXT", True, b"hello"),
        (b"POST /events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED_BODY + b"NEXT", True, b"hello world"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}NEXT", False, b"{}"),
        (b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + CHUNKED_BODY + b"NEXT", False, b"hello world"),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\nNEXT", False, b""),
    ],
    ids=["request length", "request chunked", "response length", "response chunked", "204"],
)  # fmt: skip
def test_a_message_reads_the_same_whatever_the_pieces(
    wire: bytes, is_request: bool, body: bytes, piece: int
) -> None:
    _, got, left = _read(wire, request=is_request, piece=piece)
    assert got == body
    assert b"NEXT".startswith(left), "what follows the message stays in the buffer"


def test_request_head_fields() -> None:
    head = parse_request_head(
        "POST /events?q HTTP/1.1\r\nHost: h\r\nAuthorization: AWS4 x\r\nX-A: 1\r\nx-a: 2\r\nExpect: 100-continue",
        MAX,
    )
    assert (head.method, head.path, head.length, head.keep_alive, head.expect_continue) == (
        "POST",
        "/events",
        0,
        True,
        True,
    )
    assert head.headers["authorization"] == "AWS4 x"
    assert head.headers["x-a"] == "1, 2"
    assert not parse_request_head("GET / HTTP/1.0", MAX).keep_alive
    assert not parse_request_head("GET / HTTP/1.1\r\nConnection: Keep-Alive, close", MAX).keep_alive
    assert parse_request_head("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3", MAX).length == 3
    assert parse_request_head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked", MAX).length == CHUNKED


@pytest.mark.parametrize(
    ("head", "status"),
    [
        ("NONSENSE", 400),
        ("GET / HTTP/2.0", 505),
        ("GET / FTP/1.1", 400),
        ("GET / HTTP/1.1\r\n no-name: x", 400),
        ("GET / HTTP/1.1\r\nno colon", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2", 400),
        ("POST / HTTP/1.1\r\nContent-Length: \xb2", 400),
        ("POST / HTTP/1.1\r\nContent-Length: -1", 400),
        ("POST / HTTP/1.1\r\nContent-Length: 1025", 413),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip", 501),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3", 400),
        ("POST / HTTP/1.1\r\nExpect: magic", 417),
    ],
)
def test_a_request_head_that_breaks_the_framing_is_refused_with_its_status(head: str, status: int) -> None:
    with pytest.raises(HttpParseError) as caught:
        parse_request_head(head, MAX)
    assert caught.value.status == status


def test_response_framing() -> None:
    assert parse_response_head("HTTP/1.1 100 Continue", MAX).status == 100
    ok = parse_response_head("HTTP/1.1 200 OK\r\nX-Amzn-ErrorType: A\r\nx-amzn-errortype: B", MAX)
    assert (ok.length, ok.keep_alive, ok.headers["x-amzn-errortype"]) == (UNTIL_EOF, False, "A, B")
    assert not parse_response_head("HTTP/1.0 200 OK\r\nContent-Length: 0", MAX).keep_alive
    assert not parse_response_head(
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close", MAX
    ).keep_alive
    assert parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 0", MAX).keep_alive
    for bad in ("HTTP/1.1 2x0 OK", "SPDY/3 200 OK", "HTTP/1.1 101 Switching Protocols"):
        with pytest.raises(HttpParseError):
            parse_response_head(bad, MAX)


def test_a_body_until_eof_is_bounded_and_completed_by_the_end_of_the_connection() -> None:
    reader = BodyReader(MAX)
    reader.reset(UNTIL_EOF)
    buffer = bytearray(b"partial")
    assert reader.feed(buffer) is None
    assert reader.at_eof(buffer) == b"partial"
    reader.reset(5)
    assert reader.at_eof(bytearray(b"abc")) is None, "a body with a length is not complete at EOF"
    reader.reset(UNTIL_EOF)
    with pytest.raises(HttpParseError) as caught:
        reader.feed(bytearray(MAX + 1))
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("chunks", "status"),
    [
        (b"zz\r\n", 400),
        (b"2\r\nabc\r\n", 400),
        (b"401\r\n", 413),
        (b"1" * 5000, 400),
    ],
    ids=["size", "crlf", "too big", "line too long"],
)
def test_malformed_chunks(chunks: bytes, status: int) -> None:
    reader = BodyReader(MAX)
    reader.reset(CHUNKED)
    with pytest.raises(HttpParseError) as caught:
        reader.feed(bytearray(chunks))
    assert caught.value.status == status


def test_a_head_over_the_limit_is_refused_complete_or_not() -> None:
    with pytest.raises(HttpParseError) as caught:
        take_head(bytearray(b"GET / HTTP/1.1\r\nX: " + b"p" * 70_000))
    assert caught.value.status == 431
    with pytest.raises(HttpParseError):
        take_head(bytearray(b"GET / HTTP/1.1\r\nX: " + b"p" * 70_000 + b"\r\n\r\n"))
    buffer = bytearray(b"GET / HTTP/1.1\r\n\r\nrest")
    assert take_head(buffer) == "GET / HTTP/1.1"
    assert buffer == b"rest"
