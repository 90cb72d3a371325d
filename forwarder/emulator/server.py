"""The PutEvents emulator: its state, its fault injection and a small HTTP/1.1 server.

Contract of ``POST /events`` (what a stock boto3 ``personalize-events`` client sees), checked in this order:

1. the whole body is read, then the injected latency is waited (``latency_ms`` ± ``latency_jitter_ms``,
   plus ``spike_ms`` with probability ``spike_rate``), drawn when the call arrives;
2. ``drop_rate``: the TCP connection is closed without any response;
3. the ``Authorization`` header must be SigV4 scoped to the signing name ``personalize``, else 403
   ``MissingAuthenticationTokenException`` / ``InvalidSignatureException`` (the HMAC is not verified);
4. ``access_denied``: 403 ``AccessDeniedException``; ``signature_mismatch``: 403 ``InvalidSignatureException``
   quoting the canonical request as some AWS services do, the caller's ``x-amz-security-token`` included
   (to test that a client keeps such text out of its logs);
5. ``error_rate``: 500 ``InternalFailure`` or 503 ``ServiceUnavailable``, half each;
6. ``throttle_rate``: 400 ``ThrottlingException`` "Rate exceeded";
7. the body must be JSON that :func:`forwarder.limits.check_request` accepts and hold no event whose
   ``itemId`` is in ``reject_item_ids``, else 400 ``InvalidInputException`` whose message starts with
   the field path;
8. ``tracking_ids`` (when not ``None``) must hold the ``trackingId``, else 404 ``ResourceNotFoundException``;
9. ``quota_rps`` (when > 0): a token bucket per ``trackingId`` (``quota_rps`` calls per second, bursts up
   to ``quota_rps`` calls); past it, 400 ``ThrottlingException``;
10. success: the body is appended to the record file as one line and flushed, then 200 ``{}``.

Steps 2 to 10 use the settings in force when the latency is over. Only calls that reach step 10
are recorded. Every random decision has its own generator seeded from
``seed`` and the fault's name, so one fault's sequence does not shift when another fault is turned on.
"""

from __future__ import annotations

import asyncio
import math
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, BinaryIO, Final, NamedTuple, cast

import orjson

from forwarder.limits import check_request

SIGNING_NAME: Final = "personalize"
EVENTS_PATH: Final = "/events"
CONTROL_PREFIX: Final = "/_emulator"

_JSON: Final = "application/json"
_EMPTY_OBJECT: Final = b"{}"
_AUTH_SCHEME: Final = "AWS4-HMAC-SHA256 "
_RATE_FIELDS: Final = ("throttle_rate", "error_rate", "drop_rate", "spike_rate")
_NON_NEGATIVE_FIELDS: Final = ("latency_ms", "latency_jitter_ms", "spike_ms", "quota_rps")
_ID_SET_FIELDS: Final = ("tracking_ids", "reject_item_ids")


class InvalidSettingError(ValueError):
    """A fault setting of the wrong type or out of range; the message starts with the setting's name."""


def _number(name: str, value: object, *, maximum: float = math.inf) -> float:
    """A finite number in ``[0, maximum]``; ``bool`` is refused although Python counts it as an int."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSettingError(f"{name}: must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or value > maximum:
        limit = f"between 0 and {maximum:g}" if math.isfinite(maximum) else "a finite number >= 0"
        raise InvalidSettingError(f"{name}: must be {limit}, got {value!r}")
    return float(value)


def _id_set(name: str, value: object) -> frozenset[str]:
    if not isinstance(value, list | tuple | set | frozenset) or not all(isinstance(v, str) for v in value):
        raise InvalidSettingError(f"{name}: must be a list of strings, got {value!r}")
    return frozenset(value)


@dataclass(frozen=True, slots=True)
class Faults:
    """Fault settings. Immutable: a change replaces the whole object, so one request sees one set.

    Rates are probabilities in ``[0, 1]``; durations are milliseconds; ``quota_rps`` 0 means no quota;
    ``tracking_ids`` ``None`` means any tracking id exists; ``reject_item_ids`` lists item ids whose
    presence in a call makes the service reject the whole call.
    """

    throttle_rate: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    spike_rate: float = 0.0
    spike_ms: float = 0.0
    quota_rps: float = 0.0
    access_denied: bool = False
    signature_mismatch: bool = False
    tracking_ids: frozenset[str] | None = None
    reject_item_ids: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in _RATE_FIELDS:
            _number(name, getattr(self, name), maximum=1.0)
        for name in _NON_NEGATIVE_FIELDS:
            _number(name, getattr(self, name))
        for flag in ("access_denied", "signature_mismatch"):
            if not isinstance(getattr(self, flag), bool):
                raise InvalidSettingError(f"{flag}: must be true or false, got {getattr(self, flag)!r}")
        if self.tracking_ids is not None:
            _id_set("tracking_ids", self.tracking_ids)
        _id_set("reject_item_ids", self.reject_item_ids)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def changed(self, changes: Mapping[str, object]) -> Faults:
        """A copy with ``changes`` (JSON-shaped: lists for id sets) applied.

        Raises :class:`InvalidSettingError` naming the first unknown or invalid setting; ``self`` is
        never modified.
        """
        current = self.as_json()
        for name, value in changes.items():
            if name not in current:
                raise InvalidSettingError(f"{name}: unknown setting; known: {', '.join(self.field_names())}")
            current[name] = value
        kwargs: dict[str, Any] = {}
        for name in _RATE_FIELDS:
            kwargs[name] = _number(name, current[name], maximum=1.0)
        for name in _NON_NEGATIVE_FIELDS:
            # ``quota_rps: null`` turns the quota off, as the command line's default does.
            value = 0.0 if name == "quota_rps" and current[name] is None else current[name]
            kwargs[name] = _number(name, value)
        kwargs["access_denied"] = current["access_denied"]
        kwargs["signature_mismatch"] = current["signature_mismatch"]
        tracking_ids = current["tracking_ids"]
        kwargs["tracking_ids"] = None if tracking_ids is None else _id_set("tracking_ids", tracking_ids)
        reject = current["reject_item_ids"]
        kwargs["reject_item_ids"] = frozenset() if reject is None else _id_set("reject_item_ids", reject)
        return Faults(**kwargs)

    def as_json(self) -> dict[str, object]:
        """The settings as a JSON object; id sets become sorted lists."""
        out: dict[str, object] = {name: getattr(self, name) for name in self.field_names()}
        for name in _ID_SET_FIELDS:
            value = out[name]
            if isinstance(value, frozenset):
                out[name] = sorted(value)
        return out


class Stats:
    """Counters of ``POST /events`` outcomes.

    ``requests`` counts every call; each answered or dropped call also lands in exactly one of
    ``accepted_calls``, ``invalid``, ``throttled``, ``errors``, ``dropped``, ``not_found``,
    ``access_denied`` and ``unauthenticated``. ``accepted_events`` counts the events of accepted
    calls, ``quota_throttled`` the part of ``throttled`` due to ``quota_rps``. A call still waiting
    out its injected latency, or cut by a shutdown, is in ``requests`` only. Requests refused at the
    HTTP level (malformed, or a body over 1 MiB: 413) are in none.
    """

    __slots__ = (
        "accepted_calls",
        "accepted_events",
        "access_denied",
        "dropped",
        "errors",
        "invalid",
        "not_found",
        "quota_throttled",
        "requests",
        "throttled",
        "unauthenticated",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    requests: int
    accepted_calls: int
    accepted_events: int
    invalid: int
    throttled: int
    quota_throttled: int
    errors: int
    dropped: int
    not_found: int
    access_denied: int
    unauthenticated: int

    def as_json(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class DelayHistogram:
    """Delivery delay of accepted events: receipt time − ``sentAt``, in ms.

    For a producer that stamps ``sentAt`` when it writes an event, this is its end-to-end latency
    through Kafka and the forwarder. 1 ms buckets below 1 s, 10 ms buckets up to 120 s, one overflow
    bucket; ``as_json`` gives ``{"count", "p50", "p90", "p99", "max"}`` (ms, the bucket's upper edge).
    """

    FINE_MS: Final = 1000
    COARSE_MS: Final = 10
    TOP_MS: Final = 120_000
    SIZE: Final = FINE_MS + (TOP_MS - FINE_MS) // COARSE_MS + 1

    def __init__(self) -> None:
        self.counts = [0] * self.SIZE
        self.count = 0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        """Count one delay (negative ones, from clock skew, count as 0)."""
        if ms < self.FINE_MS:
            index = max(0, int(ms))
        else:
            index = min(self.SIZE - 1, self.FINE_MS + int((ms - self.FINE_MS) / self.COARSE_MS))
        self.counts[index] += 1
        self.count += 1
        self.max_ms = max(self.max_ms, ms)

    def _edge(self, index: int) -> float:
        if index < self.FINE_MS:
            return float(index + 1)
        return float(self.FINE_MS + (index - self.FINE_MS + 1) * self.COARSE_MS)

    def quantile(self, q: float) -> float | None:
        """The upper edge of the bucket holding the q-quantile; None when empty."""
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if n and seen >= rank:
                return self._edge(index)
        return self.max_ms

    def as_json(self) -> dict[str, float | int | None]:
        """The summary served in ``GET /_emulator/stats``."""
        return {
            "count": self.count,
            "p50": self.quantile(0.50),
            "p90": self.quantile(0.90),
            "p99": self.quantile(0.99),
            "max": round(self.max_ms, 1) if self.count else None,
        }


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


def check_authorization(header: str | None) -> tuple[str, str] | None:
    """``None`` if ``header`` is a SigV4 ``Authorization`` scoped to ``personalize``, else (code, message).

    Only the form is checked (scheme, ``Credential=key/date/region/service/aws4_request``,
    ``SignedHeaders=``, ``Signature=``), not the HMAC: any key is fine, but a client that signs for
    the wrong service name (``personalize-events``) is caught, as the real service would catch it.
    """
    if not header:
        return "MissingAuthenticationTokenException", "Missing Authentication Token"
    if not header.startswith(_AUTH_SCHEME):
        return "InvalidSignatureException", "Authorization header requires the AWS4-HMAC-SHA256 scheme"
    params: dict[str, str] = {}
    for part in header[len(_AUTH_SCHEME) :].split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            params[key] = value
    scope = params.get("Credential", "").split("/")
    if len(scope) != 5 or not all(scope) or scope[4] != "aws4_request":
        return "InvalidSignatureException", (
            "Authorization header requires 'Credential' of the form key/date/region/service/aws4_request"
        )
    if not params.get("SignedHeaders") or not params.get("Signature"):
        return "InvalidSignatureException", (
            "Authorization header requires 'SignedHeaders' and 'Signature' parameters"
        )
    if scope[3] != SIGNING_NAME:
        return "InvalidSignatureException", (
            f"Credential should be scoped to correct service: '{SIGNING_NAME}', not '{scope[3]}'."
        )
    return None


class Reply(NamedTuple):
    """An HTTP answer: status, the ``x-amzn-ErrorType`` header (``None`` on success) and the JSON body."""

    status: int
    error_type: str | None
    body: bytes


_ACCEPTED: Final = Reply(200, None, b"{}")


class Emulator:
    """State of one emulated service: fault settings, counters, quota buckets and the record file.

    It knows nothing of HTTP: a front-end calls :meth:`begin_call` when a ``POST /events`` has fully
    arrived, waits the latency it returns, then calls :meth:`finish_call` for the answer.

    ``record``, when given, is an open binary file owned by the caller; each accepted call is written
    to it as one line (the body as received, or re-encoded compactly if it held a line break) and
    flushed before the answer is sent, so a reader sees a call once the client has its 200.
    ``seed`` makes the random faults repeatable; ``clock`` (monotonic seconds) drives the quota.
    """

    def __init__(
        self,
        faults: Faults | None = None,
        *,
        seed: int | None = None,
        record: BinaryIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = Stats()
        self.delays = DelayHistogram()
        self._faults = faults or Faults()
        self._record = record
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

        def rng(name: str) -> random.Random:
            return random.Random(None if seed is None else f"{seed}:{name}")

        self._latency_rng = rng("latency")
        self._spike_rng = rng("spike")
        self._drop_rng = rng("drop")
        self._error_rng = rng("error")
        self._throttle_rng = rng("throttle")

    @property
    def faults(self) -> Faults:
        """The settings in force; assigning replaces them for every decision made from then on."""
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        if faults.quota_rps != self._faults.quota_rps:
            self._buckets.clear()  # a new quota starts with full buckets
        self._faults = faults

    def apply_faults(self, changes: object) -> Faults:
        """Apply a JSON object of settings all at once, or none of them (:class:`InvalidSettingError`)."""
        if not isinstance(changes, Mapping):
            raise InvalidSettingError("body: must be a JSON object of settings")
        self.faults = self._faults.changed(changes)
        return self._faults

    def begin_call(self) -> float:
        """Count one ``POST /events`` and draw its injected latency, in seconds (0 for none)."""
        self.stats.requests += 1
        faults = self._faults
        delay_ms = faults.latency_ms
        if faults.latency_jitter_ms:
            jitter = faults.latency_jitter_ms
            delay_ms += self._latency_rng.uniform(-jitter, jitter)
        if faults.spike_rate and self._spike_rng.random() < faults.spike_rate:
            delay_ms += faults.spike_ms
        return delay_ms / 1000.0 if delay_ms > 0 else 0.0

    def finish_call(
        self, raw: bytes, authorization: str | None, security_token: str | None = None
    ) -> Reply | None:
        """Decide a call whose latency is over: its :class:`Reply`, or ``None`` to drop the connection.

        The order of the checks is in this module's docstring. Only accepted calls are recorded.
        """
        stats = self.stats
        faults = self._faults
        if faults.drop_rate and self._drop_rng.random() < faults.drop_rate:
            stats.dropped += 1
            return None
        auth_problem = check_authorization(authorization)
        if auth_problem is not None:
            stats.unauthenticated += 1
            return _error(403, *auth_problem)
        if faults.signature_mismatch:
            stats.unauthenticated += 1
            return _error(
                403, "InvalidSignatureException", _canonical_mismatch(authorization, security_token)
            )
        if faults.access_denied:
            stats.access_denied += 1
            return _error(
                403, "AccessDeniedException", "User is not authorized to perform: personalize:PutEvents"
            )
        if faults.error_rate and self._error_rng.random() < faults.error_rate:
            stats.errors += 1
            if self._error_rng.random() < 0.5:
                return _error(500, "InternalFailure", "We encountered an internal error. Try again.")
            return _error(503, "ServiceUnavailable", "Service is unavailable. Try again.")
        if faults.throttle_rate and self._throttle_rng.random() < faults.throttle_rate:
            stats.throttled += 1
            return _THROTTLED

        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            stats.invalid += 1
            return _error(400, "InvalidInputException", f"request body: not valid JSON: {exc}")
        problem = check_request(body)
        if problem is not None:
            stats.invalid += 1
            return _error(400, "InvalidInputException", problem)
        events: list[dict[str, Any]] = body["eventList"]
        if faults.reject_item_ids:
            for i, event in enumerate(events):
                item_id = event.get("itemId")
                if item_id is not None and item_id in faults.reject_item_ids:
                    stats.invalid += 1
                    message = f"eventList[{i}].itemId: item {item_id!r} is rejected (emulator)"
                    return _error(400, "InvalidInputException", message)
        tracking_id: str = body["trackingId"]
        if faults.tracking_ids is not None and tracking_id not in faults.tracking_ids:
            stats.not_found += 1
            return _error(404, "ResourceNotFoundException", f"Tracking ID {tracking_id} not found")
        if faults.quota_rps and not self._take_token(tracking_id, faults.quota_rps):
            stats.throttled += 1
            stats.quota_throttled += 1
            return _THROTTLED

        record = self._record
        if record is not None:
            line = raw.strip()
            if b"\n" in line or b"\r" in line:
                # Line breaks can only be whitespace between JSON tokens; orjson writes none.
                line = orjson.dumps(body)
            record.write(line + b"\n")
            record.flush()
        stats.accepted_calls += 1
        stats.accepted_events += len(events)
        now_ms = time.time() * 1000
        add_delay = self.delays.add
        for event in events:
            add_delay(now_ms - event["sentAt"] * 1000)
        return _ACCEPTED

    def reset_stats(self) -> None:
        """Zero the counters and the delay histogram (between phases of a benchmark)."""
        self.stats = Stats()
        self.delays = DelayHistogram()

    def stats_json(self) -> dict[str, object]:
        """``GET /_emulator/stats``: the counters and ``delay_ms``."""
        return {**self.stats.as_json(), "delay_ms": self.delays.as_json()}

    def _take_token(self, tracking_id: str, rps: float) -> bool:
        now = self._clock()
        bucket = self._buckets.get(tracking_id)
        capacity = max(rps, 1.0)
        if bucket is None:
            bucket = self._buckets[tracking_id] = _Bucket(capacity, now)
        else:
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rps)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False


def _canonical_mismatch(authorization: str | None, security_token: str | None) -> str:
    """The text AWS sends with a signature mismatch: the canonical request it expected, verbatim."""
    signed = "content-type;host;x-amz-date" + (";x-amz-security-token" if security_token else "")
    token_line = f"x-amz-security-token:{security_token}\n" if security_token else ""
    return (
        "The request signature we calculated does not match the signature you provided. Check your AWS "
        "Secret Access Key and signing method. Consult the service documentation for details.\n\n"
        "The Canonical String for this request should have been\n'POST\n/events\n\n"
        f"content-type:application/json\nhost:personalize-events\nx-amz-date:20261201T000000Z\n{token_line}\n"
        f"{signed}\nUNSIGNED-PAYLOAD'\n\nThe request's own authorization was '{authorization or ''}'"
    )


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, code, orjson.dumps({"message": message}))


_THROTTLED: Final = _error(400, "ThrottlingException", "Rate exceeded")


# --- HTTP/1.1 ------------------------------------------------------------------------------------
#
# A plain asyncio.Protocol rather than aiohttp.web: at 2,000 calls/s aiohttp's per-request machinery
# cost ~330 µs of CPU per call, this ~120 µs (most of it check_request), and the emulator shares two
# cores with the forwarder and Kafka in benchmarks. It speaks the part of HTTP/1.1 that clients of
# this API use: Content-Length or chunked bodies, keep-alive, pipelining, Expect: 100-continue.

MAX_HEAD_BYTES: Final = 64 * 1024
MAX_BODY_BYTES: Final = 1024 * 1024
_HEX_DIGITS: Final = frozenset(b"0123456789abcdefABCDEF")
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_CONTROL_METHODS: Final = {b"health": b"GET", b"stats": b"GET", b"faults": b"GET, POST", b"reset": b"POST"}
_REASONS: Final = {status.value: status.phrase.encode() for status in HTTPStatus}


class _HttpError(Exception):
    """A request this server cannot take; answered with ``status`` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class _Head:
    method: bytes
    path: bytes
    keep_alive: bool
    content_length: int | None
    chunked: bool
    expect_continue: bool
    authorization: str | None
    security_token: str | None = None


def _parse_head(head: bytes) -> _Head:
    """Parse a request line and headers (without the blank line that ends them)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise _HttpError(400, "malformed request line")
    method, target, version = parts
    if version == b"HTTP/1.1":
        keep_alive = True
    elif version == b"HTTP/1.0":
        keep_alive = False
    elif version.startswith(b"HTTP/"):
        raise _HttpError(505, "only HTTP/1.0 and HTTP/1.1 are served")
    else:
        raise _HttpError(400, "malformed request line")
    content_length: int | None = None
    chunked = expect_continue = False
    authorization: str | None = None
    security_token: str | None = None
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():  # also refuses obsolete line folding
            raise _HttpError(400, "malformed header line")
        name = name.lower()
        value = value.strip()
        if name == b"content-length":
            if not value.isdigit() or (content_length is not None and int(value) != content_length):
                raise _HttpError(400, "bad Content-Length")
            content_length = int(value)
        elif name == b"transfer-encoding":
            if value.lower() != b"chunked":
                raise _HttpError(501, "only the chunked transfer coding is served")
            chunked = True
        elif name == b"connection":
            # HTTP/1.0 connections are closed after the answer even when the client asks otherwise.
            if b"close" in {token.strip() for token in value.lower().split(b",")}:
                keep_alive = False
        elif name == b"expect":
            if value.lower() != b"100-continue":
                raise _HttpError(417, "only Expect: 100-continue is served")
            expect_continue = True
        elif name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"x-amz-security-token":
            security_token = value.decode("latin-1")
    if chunked and content_length is not None:
        raise _HttpError(400, "both Content-Length and Transfer-Encoding")
    if content_length is not None and content_length > MAX_BODY_BYTES:
        raise _HttpError(413, f"body over {MAX_BODY_BYTES} bytes")
    path = target.split(b"?", 1)[0]
    return _Head(
        method, path, keep_alive, content_length, chunked, expect_continue, authorization, security_token
    )


def _take_chunked(buffer: bytearray) -> tuple[bytes, int] | None:
    """Decode a chunked body at the start of ``buffer``: (body, bytes used), or ``None`` if incomplete."""
    pos = 0
    parts: list[bytes] = []
    total = 0
    while True:
        eol = buffer.find(b"\r\n", pos)
        if eol < 0:
            if len(buffer) - pos > 4096:
                raise _HttpError(400, "malformed chunk size line")
            return None
        size_text = bytes(buffer[pos:eol]).split(b";", 1)[0].strip()
        if not size_text or not _HEX_DIGITS.issuperset(size_text) or len(size_text) > 8:
            raise _HttpError(400, "malformed chunk size")
        size = int(size_text, 16)
        pos = eol + 2
        if size == 0:
            while True:  # optional trailer fields, then the blank line
                eol = buffer.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return b"".join(parts), eol + 2
                pos = eol + 2
        total += size
        if total > MAX_BODY_BYTES:
            raise _HttpError(413, f"body over {MAX_BODY_BYTES} bytes")
        if len(buffer) < pos + size + 2:
            return None
        if buffer[pos + size : pos + size + 2] != b"\r\n":
            raise _HttpError(400, "chunk not followed by CRLF")
        parts.append(bytes(buffer[pos : pos + size]))
        pos += size + 2


class _Connection(asyncio.Protocol):
    """One client connection: parses requests in order and answers them in the same order.

    While a call waits out its injected latency the connection is *busy*: later requests (pipelined)
    stay in the buffer until it is answered. A client that leaves during the wait does not cancel
    the call: it is decided, and recorded if accepted, as a real service would; only the answer is lost.
    """

    def __init__(self, server: EmulatorServer) -> None:
        self._server = server
        self._emulator = server.emulator
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: _Head | None = None
        self._continue_sent = False
        self._busy: asyncio.TimerHandle | None = None
        self._paused = False
        self._open = False
        self._eof = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not registered as an asyncio.Transport, so no isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        self._open = True
        self._server.connections.add(self)
        if self._server.closing:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._open = False
        self._transport = None
        self._server.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if not self._open:
            return
        self._buffer += data
        if self._busy is not None:
            if len(self._buffer) > MAX_HEAD_BYTES + MAX_BODY_BYTES and not self._paused:
                assert self._transport is not None
                self._transport.pause_reading()  # a pipelining client must wait for the slow call
                self._paused = True
            return
        self._process()

    def eof_received(self) -> bool:
        # The client will send nothing more: answer a call still in progress, then close.
        self._eof = True
        return self._busy is not None

    # state

    @property
    def idle(self) -> bool:
        """No call in progress and no request partly received."""
        return self._busy is None and self._head is None and not self._buffer

    def close(self) -> None:
        """Close once what was written is sent; a call in progress is still decided."""
        self._open = False
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close at once without an answer; a call waiting out its latency is cut, never decided."""
        if self._busy is not None:
            self._busy.cancel()
            self._busy = None
            self._server.pending.discard(self)
        self._open = False
        if self._transport is not None:
            self._transport.abort()

    # requests

    def _process(self) -> None:
        """Answer every complete request in the buffer, in order, until one must wait."""
        try:
            while self._open and self._busy is None:
                head = self._head or self._take_head()
                if head is None:
                    if self._eof:
                        self.close()
                    return
                body = self._take_body(head)
                if body is None:
                    if self._eof:
                        self.close()
                    elif head.expect_continue and not self._continue_sent and self._transport is not None:
                        self._transport.write(_CONTINUE)
                        self._continue_sent = True
                    return
                self._head = None
                self._dispatch(head, body)
        except _HttpError as exc:
            self._head = None
            self._buffer.clear()
            self._respond(exc.status, orjson.dumps({"message": exc.message}), keep_alive=False)

    def _take_head(self) -> _Head | None:
        """Parse the request head at the start of the buffer, if it has fully arrived."""
        end = self._buffer.find(b"\r\n\r\n")
        if end > MAX_HEAD_BYTES or (end < 0 and len(self._buffer) > MAX_HEAD_BYTES):
            raise _HttpError(431, "request head too large")
        if end < 0:
            return None
        self._head = _parse_head(bytes(self._buffer[:end]))
        del self._buffer[: end + 4]
        self._continue_sent = False
        return self._head

    def _take_body(self, head: _Head) -> bytes | None:
        if head.chunked:
            taken = _take_chunked(self._buffer)
            if taken is None:
                return None
            body, used = taken
            del self._buffer[:used]
            return body
        length = head.content_length or 0
        if len(self._buffer) < length:
            return None
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        return body

    def _dispatch(self, head: _Head, body: bytes) -> None:
        path = head.path
        if path == b"/events":
            if head.method != b"POST":
                self._respond_json(405, {"message": "use POST"}, head.keep_alive, extra=b"Allow: POST\r\n")
                return
            delay = self._emulator.begin_call()
            if delay > 0:
                loop = asyncio.get_running_loop()
                self._busy = loop.call_later(delay, self._after_delay, head, body)
                self._server.pending.add(self)
                return
            self._finish_call(head, body)
        elif path.startswith(b"/_emulator/"):
            self._control(head, path[len(b"/_emulator/") :], body)
        else:
            self._respond_json(404, {"message": f"no such path: {path.decode('latin-1')}"}, head.keep_alive)

    def _after_delay(self, head: _Head, body: bytes) -> None:
        self._busy = None
        self._server.pending.discard(self)
        self._finish_call(head, body)
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        if self._transport is None:
            return  # the client left: the call was decided all the same
        if self._open:
            self._process()

    def _finish_call(self, head: _Head, body: bytes) -> None:
        reply = self._emulator.finish_call(body, head.authorization, head.security_token)
        if reply is None:
            self._open = False
            if self._transport is not None:
                self._transport.abort()
            return
        self._respond(reply.status, reply.body, keep_alive=head.keep_alive, error_type=reply.error_type)

    def _control(self, head: _Head, name: bytes, body: bytes) -> None:
        method = head.method
        emulator = self._emulator
        if name == b"health" and method == b"GET":
            self._respond_json(200, {"status": "ok"}, head.keep_alive)
        elif name == b"stats" and method == b"GET":
            self._respond_json(200, emulator.stats_json(), head.keep_alive)
        elif name == b"reset" and method == b"POST":
            emulator.reset_stats()
            self._respond_json(200, emulator.stats_json(), head.keep_alive)
        elif name == b"faults" and method == b"GET":
            self._respond_json(200, emulator.faults.as_json(), head.keep_alive)
        elif name == b"faults" and method == b"POST":
            try:
                settings = emulator.apply_faults(orjson.loads(body)).as_json()
            except orjson.JSONDecodeError as exc:
                self._respond_json(400, {"message": f"body: not valid JSON: {exc}"}, head.keep_alive)
            except InvalidSettingError as exc:
                self._respond_json(400, {"message": str(exc)}, head.keep_alive)
            else:
                self._respond_json(200, settings, head.keep_alive)
        elif name in _CONTROL_METHODS:
            allow = b"Allow: " + _CONTROL_METHODS[name] + b"\r\n"
            self._respond_json(405, {"message": "method not allowed"}, head.keep_alive, extra=allow)
        else:
            self._respond_json(
                404, {"message": f"no such control endpoint: {name.decode('latin-1')}"}, head.keep_alive
            )

    def _respond_json(self, status: int, document: object, keep_alive: bool, *, extra: bytes = b"") -> None:
        self._respond(status, orjson.dumps(document), keep_alive=keep_alive, extra=extra)

    def _respond(
        self,
        status: int,
        body: bytes,
        *,
        keep_alive: bool,
        error_type: str | None = None,
        extra: bytes = b"",
    ) -> None:
        transport = self._transport
        if transport is None or not self._open:
            return
        server = self._server
        keep_alive = keep_alive and not server.closing
        head = b"HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
            status,
            _REASONS.get(status, b"Unknown"),
            server.http_date(),
            len(body),
        )
        if error_type is not None:
            head += b"x-amzn-ErrorType: " + error_type.encode() + b"\r\n"
        head += b"x-amzn-RequestId: " + server.next_request_id() + b"\r\n" + extra
        if not keep_alive:
            head += b"Connection: close\r\n"
        transport.write(head + b"\r\n" + body)
        if not keep_alive:
            self.close()


class EmulatorServer:
    """The HTTP front-end of an :class:`Emulator` on a listening socket.

    ``POST /events`` is the service; ``GET /_emulator/health``, ``GET /_emulator/stats``,
    ``GET /_emulator/faults`` and ``POST /_emulator/faults`` (a JSON object of settings, applied all
    at once or not at all; answers the new settings) are the control endpoints.
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.connections: set[_Connection] = set()
        self.pending: set[_Connection] = set()  # connections whose call waits out a latency
        self.closing = False
        self._server: asyncio.AbstractServer | None = None
        self._request_ids = 0
        self._date_second = -1
        self._date = b""

    async def start(self, sock: socket.socket) -> None:
        """Serve on ``sock``, a listening TCP socket (see :func:`bind_socket`)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), sock=sock, backlog=1024)

    async def close(self, grace: float = 1.0) -> None:
        """Stop accepting, close idle connections, give calls in progress ``grace`` seconds, cut the rest.

        A call cut while it waits out its injected latency is never decided nor recorded: it counts
        in ``requests`` only, and its client sees the connection close without an answer.
        """
        self.closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection.idle:
                connection.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while (self.connections or self.pending) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections | self.pending):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()

    def next_request_id(self) -> bytes:
        # Shaped like the service's UUIDs, but a counter: cheap, and ordered for whoever debugs a run.
        self._request_ids += 1
        return b"00000000-0000-4000-8000-%012x" % self._request_ids

    def http_date(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = formatdate(now, usegmt=True).encode()
        return self._date


def bind_socket(host: str, port: int, *, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on the first address ``host`` resolves to; port 0 picks a free port.

    Binding one socket ourselves (rather than letting the loop bind every address of a name such as
    ``localhost``) guarantees one port to report even when ``port`` is 0.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    return socket.create_server(sockaddr[:2], family=family, backlog=backlog)


def format_url(host: str, port: int) -> str:
    """``http://host:port``, with an IPv6 literal in brackets."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def serve(
    emulator: Emulator,
    sock: socket.socket,
    *,
    stop: asyncio.Event,
    ready: Callable[[], None] | None = None,
    grace: float = 1.0,
) -> None:
    """Serve ``emulator`` on the listening ``sock`` until ``stop`` is set, then close (see
    :meth:`EmulatorServer.close`). ``ready`` is called once connections are accepted. ``sock`` is
    closed on return.
    """
    server = EmulatorServer(emulator)
    try:
        await server.start(sock)
        if ready is not None:
            ready()
        await stop.wait()
    finally:
        await server.close(grace)
        sock.close()
