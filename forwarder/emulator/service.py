"""The Personalize emulator's service model: its rules, fault injection, quotas, recording and stats.

Pure: no sockets, no event loop. The wire layer (:mod:`forwarder.emulator.server`) parses HTTP and calls
:meth:`Emulator.begin_call` and :meth:`Emulator.finish_call`; anything else (a test, another front-end)
can drive the same model directly.

It serves the five write operations of ``personalize-events`` (:data:`SERVED`: ``POST /events``,
``/items``, ``/users``, ``/actions``, ``/action-interactions``). Contract of a call (what a stock boto3
``personalize-events`` client sees), the same for each operation, checked in this order:

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
7. the body must be JSON that the operation's check in :mod:`forwarder.personalize.limits` accepts and
   hold no event or item whose ``itemId`` is in ``reject_item_ids``, else 400 ``InvalidInputException``
   whose message starts with the field path;
8. the target must exist: ``tracking_ids`` (when not ``None``) must hold the ``trackingId`` (PutEvents,
   PutActionInteractions), ``dataset_arns`` (when not ``None``) the ``datasetArn`` (PutItems, PutUsers,
   PutActions), else 404 ``ResourceNotFoundException``; a datasetArn in ``datasets_in_use`` gets 409
   ``ResourceInUseException``; a trackingId in ``forbidden_tracking_ids`` gets 403
   ``AccessDeniedException`` (a tracker this caller may not write to);
9. the quota (``quota_rps``, or the operation's own in ``operation_quota_rps``; when > 0): a token bucket
   per operation and target (that many calls per second, bursts up to as many calls); past it, 400
   ``ThrottlingException``; a call whose ``sessionId`` is in ``throttle_session_ids`` gets the same answer
   every time (one session held back, the others not);
10. success: the body, with ``"operation": "<Name>"`` put first, is appended to the record file as one
    line and flushed, then 200 ``{}``.

Steps 2 to 10 use the settings in force when the latency is over. Only calls that reach step 10
are recorded. Every random decision has its own generator seeded from
``seed`` and the fault's name, so one fault's sequence does not shift when another fault is turned on.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, BinaryIO, Final, NamedTuple

import orjson

from forwarder.personalize.limits import (
    ACTION,
    ITEM,
    USER,
    check_action_interactions_request,
    check_catalog_request,
    check_request,
)

SIGNING_NAME: Final = "personalize"

_AUTH_SCHEME: Final = "AWS4-HMAC-SHA256 "
_RATE_FIELDS: Final = ("throttle_rate", "error_rate", "drop_rate", "spike_rate")
_NON_NEGATIVE_FIELDS: Final = ("latency_ms", "latency_jitter_ms", "spike_ms", "quota_rps")
_ID_SET_FIELDS: Final = (
    "tracking_ids",
    "dataset_arns",
    "reject_item_ids",
    "datasets_in_use",
    "throttle_session_ids",
    "forbidden_tracking_ids",
)


@dataclass(frozen=True, slots=True)
class Served:
    """One operation the emulator serves: its API name, its request check, the field naming its target
    (``trackingId`` or ``datasetArn``) and the field holding its records."""

    name: str
    check: Callable[[object], str | None]
    target: str
    records: str


# REST path -> the operation served there
SERVED: Final = {
    "/events": Served("PutEvents", check_request, "trackingId", "eventList"),
    "/items": Served("PutItems", lambda body: check_catalog_request(ITEM, body), "datasetArn", "items"),
    "/users": Served("PutUsers", lambda body: check_catalog_request(USER, body), "datasetArn", "users"),
    "/actions": Served(
        "PutActions", lambda body: check_catalog_request(ACTION, body), "datasetArn", "actions"
    ),
    "/action-interactions": Served(
        "PutActionInteractions", check_action_interactions_request, "trackingId", "actionInteractions"
    ),
}
EVENTS: Final = SERVED["/events"]


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


def _operation_quotas(name: str, value: object) -> tuple[tuple[str, float], ...]:
    """``{"PutItems": 10, ...}`` (or its pairs) as sorted pairs; names must be served operations."""
    pairs = value.items() if isinstance(value, Mapping) else value
    if not isinstance(pairs, Iterable) or isinstance(pairs, str):
        raise InvalidSettingError(f"{name}: must be an object of operation names to calls/s, got {value!r}")
    known = {served.name for served in SERVED.values()}
    out = {}
    for pair in pairs:
        if not isinstance(pair, tuple | list) or len(pair) != 2 or pair[0] not in known:
            raise InvalidSettingError(
                f"{name}: {pair!r} is not (operation, calls/s); operations: {sorted(known)}"
            )
        out[pair[0]] = _number(f"{name}.{pair[0]}", pair[1])
    return tuple(sorted(out.items()))


def _id_set(name: str, value: object) -> frozenset[str]:
    if not isinstance(value, list | tuple | set | frozenset) or not all(isinstance(v, str) for v in value):
        raise InvalidSettingError(f"{name}: must be a list of strings, got {value!r}")
    return frozenset(value)


@dataclass(frozen=True, slots=True)
class Faults:
    """Fault settings. Immutable: a change replaces the whole object, so one request sees one set.

    Rates are probabilities in ``[0, 1]``; durations are milliseconds; ``quota_rps`` 0 means no quota;
    ``operation_quota_rps`` (operation name -> calls/s; pairs here, an object in JSON) replaces
    ``quota_rps`` for the operations it names (0: none for that one), as the service's rates differ;
    ``tracking_ids`` ``None`` means any tracking id exists, ``dataset_arns`` ``None`` any dataset ARN;
    ``reject_item_ids`` lists item ids whose presence in a call (an event's or an item's ``itemId``) makes
    the service reject the whole call; ``datasets_in_use`` lists dataset ARNs that answer 409
    ``ResourceInUseException`` (a busy dataset); ``throttle_session_ids`` lists session ids whose
    calls are always throttled; ``forbidden_tracking_ids`` lists tracking ids that answer 403
    ``AccessDeniedException``.
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
    dataset_arns: frozenset[str] | None = None
    datasets_in_use: frozenset[str] = frozenset()
    operation_quota_rps: tuple[tuple[str, float], ...] = ()
    throttle_session_ids: frozenset[str] = frozenset()
    forbidden_tracking_ids: frozenset[str] = frozenset()

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
        if self.dataset_arns is not None:
            _id_set("dataset_arns", self.dataset_arns)
        _id_set("reject_item_ids", self.reject_item_ids)
        _id_set("throttle_session_ids", self.throttle_session_ids)
        _id_set("datasets_in_use", self.datasets_in_use)
        _id_set("forbidden_tracking_ids", self.forbidden_tracking_ids)
        _operation_quotas("operation_quota_rps", self.operation_quota_rps)

    def quota_for(self, operation: str) -> float:
        """The calls/s quota of ``operation`` (0: none)."""
        for name, rps in self.operation_quota_rps:
            if name == operation:
                return rps
        return self.quota_rps

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
        dataset_arns = current["dataset_arns"]
        kwargs["dataset_arns"] = None if dataset_arns is None else _id_set("dataset_arns", dataset_arns)
        reject = current["reject_item_ids"]
        kwargs["reject_item_ids"] = frozenset() if reject is None else _id_set("reject_item_ids", reject)
        held = current["throttle_session_ids"]
        kwargs["throttle_session_ids"] = (
            frozenset() if held is None else _id_set("throttle_session_ids", held)
        )
        forbidden = current["forbidden_tracking_ids"]
        kwargs["forbidden_tracking_ids"] = (
            frozenset() if forbidden is None else _id_set("forbidden_tracking_ids", forbidden)
        )
        in_use = current["datasets_in_use"]
        kwargs["datasets_in_use"] = frozenset() if in_use is None else _id_set("datasets_in_use", in_use)
        quotas = current["operation_quota_rps"]
        kwargs["operation_quota_rps"] = _operation_quotas("operation_quota_rps", quotas or {})
        return Faults(**kwargs)

    def as_json(self) -> dict[str, object]:
        """The settings as a JSON object; id sets become sorted lists."""
        out: dict[str, object] = {name: getattr(self, name) for name in self.field_names()}
        out["operation_quota_rps"] = dict(self.operation_quota_rps)
        for name in _ID_SET_FIELDS:
            value = out[name]
            if isinstance(value, frozenset):
                out[name] = sorted(value)
        return out


class Stats:
    """Counters of one operation's calls (``POST /events``, ``/items``...).

    ``requests`` counts every call; each answered or dropped call also lands in exactly one of
    ``accepted_calls``, ``invalid``, ``throttled``, ``errors``, ``dropped``, ``not_found``, ``in_use``,
    ``access_denied`` and ``unauthenticated``. ``accepted_events`` counts the records of accepted
    calls (events, items, users, actions, action interactions), ``quota_throttled`` the part of
    ``throttled`` due to ``quota_rps``. A call still waiting out its injected latency, or cut by a
    shutdown, is in ``requests`` only. Requests refused at the HTTP level (malformed, or a body over
    1 MiB: 413) are in none. ``in_use`` (only datasets answer it) is in the per-operation view only, so
    PutEvents' top-level counters keep their fields.
    """

    __slots__ = (
        "accepted_calls",
        "accepted_events",
        "access_denied",
        "dropped",
        "errors",
        "in_use",
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
    in_use: int
    access_denied: int
    unauthenticated: int

    def as_json(self) -> dict[str, int]:
        """PutEvents' counters as ``GET /_emulator/stats`` has always shown them at its top level."""
        return {name: getattr(self, name) for name in self.__slots__ if name != "in_use"}

    def as_operation_json(self) -> dict[str, int]:
        """The counters as the per-operation section shows them: ``accepted_records`` for
        ``accepted_events``, a name that fits every operation."""
        out = {name: getattr(self, name) for name in self.__slots__}
        out["accepted_records"] = out.pop("accepted_events")
        return out


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


class _Quotas:
    """Token buckets, one per (operation, target), of ``rps`` calls per second each (a burst of up to
    ``max(rps, 1)``); a new bucket starts full."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def clear(self) -> None:
        """Forget every bucket: a new quota starts with full buckets."""
        self._buckets.clear()

    def take(self, key: tuple[str, str], rps: float) -> bool:
        """Take a token from ``key``'s bucket: ``False`` when it has none (the call is throttled)."""
        now = self._clock()
        bucket = self._buckets.get(key)
        capacity = max(rps, 1.0)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, now)
        else:
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rps)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False


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

    It knows nothing of HTTP: a front-end calls :meth:`begin_call` when a call to one of the
    :data:`SERVED` paths has fully arrived, waits the latency it returns, then calls :meth:`finish_call`
    for the answer.

    ``record``, when given, is an open binary file owned by the caller; each accepted call is written
    to it as one line (the body as received with ``"operation":"<Name>"`` put first, or re-encoded
    compactly if it held a line break) and flushed before the answer is sent, so a reader sees a call
    once the client has its 200. ``seed`` makes the random faults repeatable; ``clock`` (monotonic
    seconds) drives the quota.

    ``stats`` are PutEvents' counters (the top level of ``GET /_emulator/stats``, as before the other
    operations existed); ``operation_stats`` holds every operation's, PutEvents' being the same object.
    """

    def __init__(
        self,
        faults: Faults | None = None,
        *,
        seed: int | None = None,
        record: BinaryIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.operation_stats: dict[str, Stats] = {}
        self.reset_stats()
        self._faults = faults or Faults()
        self._record = record
        self._quotas = _Quotas(clock)
        self._latency_rng = _seeded(seed, "latency")
        self._spike_rng = _seeded(seed, "spike")
        self._drop_rng = _seeded(seed, "drop")
        self._error_rng = _seeded(seed, "error")
        self._throttle_rng = _seeded(seed, "throttle")

    @property
    def stats(self) -> Stats:
        """PutEvents' counters."""
        return self.operation_stats[EVENTS.name]

    @property
    def faults(self) -> Faults:
        """The settings in force; assigning replaces them for every decision made from then on."""
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        if (faults.quota_rps, faults.operation_quota_rps) != (
            self._faults.quota_rps,
            self._faults.operation_quota_rps,
        ):
            self._quotas.clear()
        self._faults = faults

    def apply_faults(self, changes: object) -> Faults:
        """Apply a JSON object of settings all at once, or none of them (:class:`InvalidSettingError`)."""
        if not isinstance(changes, Mapping):
            raise InvalidSettingError("body: must be a JSON object of settings")
        self.faults = self._faults.changed(changes)
        return self._faults

    def begin_call(self, served: Served = EVENTS) -> float:
        """Count one call of ``served`` and draw its injected latency, in seconds (0 for none)."""
        self.operation_stats[served.name].requests += 1
        faults = self._faults
        delay_ms = faults.latency_ms
        if faults.latency_jitter_ms:
            jitter = faults.latency_jitter_ms
            delay_ms += self._latency_rng.uniform(-jitter, jitter)
        if faults.spike_rate and self._spike_rng.random() < faults.spike_rate:
            delay_ms += faults.spike_ms
        return delay_ms / 1000.0 if delay_ms > 0 else 0.0

    def finish_call(
        self,
        raw: bytes,
        authorization: str | None,
        served: Served = EVENTS,
        security_token: str | None = None,
    ) -> Reply | None:
        """Decide a call of ``served`` whose latency is over: its :class:`Reply`, or ``None`` to drop the
        connection. ``security_token`` is the caller's ``x-amz-security-token`` (quoted by the
        ``signature_mismatch`` fault, as the service does).

        The order of the checks is in this module's docstring. Only accepted calls are recorded.
        """
        stats = self.operation_stats[served.name]
        if self._faults.drop_rate and self._drop_rng.random() < self._faults.drop_rate:
            stats.dropped += 1
            return None
        refused = self._refusal(authorization, served, stats, security_token)
        if refused is not None:
            return refused
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            stats.invalid += 1
            return _error(400, "InvalidInputException", f"request body: not valid JSON: {exc}")
        refused = self._check_request(body, served, stats)
        if refused is not None:
            return refused
        self._accept(raw, body, served, stats)
        return _ACCEPTED

    def _refusal(
        self, authorization: str | None, served: Served, stats: Stats, security_token: str | None = None
    ) -> Reply | None:
        """Steps 3 to 6: what is refused before the body is read (authentication, injected faults)."""
        faults = self._faults
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
                403, "AccessDeniedException", f"User is not authorized to perform: personalize:{served.name}"
            )
        if faults.error_rate and self._error_rng.random() < faults.error_rate:
            stats.errors += 1
            if self._error_rng.random() < 0.5:
                return _error(500, "InternalFailure", "We encountered an internal error. Try again.")
            return _error(503, "ServiceUnavailable", "Service is unavailable. Try again.")
        if faults.throttle_rate and self._throttle_rng.random() < faults.throttle_rate:
            stats.throttled += 1
            return _THROTTLED
        return None

    def _check_request(self, body: Any, served: Served, stats: Stats) -> Reply | None:
        """Steps 7 to 9: the limits, the rejected item ids, the target and the quota."""
        faults = self._faults
        problem = served.check(body)
        if problem is not None:
            stats.invalid += 1
            return _error(400, "InvalidInputException", problem)
        rejected = _rejected_item(body[served.records], served.records, faults.reject_item_ids)
        if rejected is not None:
            stats.invalid += 1
            return _error(400, "InvalidInputException", rejected)
        target: str = body[served.target]
        if served.target == "trackingId":
            known, what = faults.tracking_ids, "Tracking ID"
        else:
            known, what = faults.dataset_arns, "Dataset"
        if known is not None and target not in known:
            stats.not_found += 1
            return _error(404, "ResourceNotFoundException", f"{what} {target} not found")
        if served.target == "trackingId" and target in faults.forbidden_tracking_ids:
            stats.access_denied += 1
            message = f"User is not authorized to perform: personalize:{served.name} on tracker {target}"
            return _error(403, "AccessDeniedException", message)
        if served.target == "datasetArn" and target in faults.datasets_in_use:
            stats.in_use += 1
            return _error(409, "ResourceInUseException", "The specified resource is in use.")
        quota = faults.quota_for(served.name)
        if quota and not self._quotas.take((served.name, target), quota):
            stats.throttled += 1
            stats.quota_throttled += 1
            return _THROTTLED
        if faults.throttle_session_ids and body.get("sessionId") in faults.throttle_session_ids:
            stats.throttled += 1
            return _THROTTLED
        return None

    def _accept(self, raw: bytes, body: dict[str, Any], served: Served, stats: Stats) -> None:
        """Step 10: record the call (flushed before the answer), count it and its events' delays."""
        if self._record is not None:
            _record_call(self._record, raw, body, served.name)
        records: list[dict[str, Any]] = body[served.records]
        stats.accepted_calls += 1
        stats.accepted_events += len(records)
        if served is not EVENTS:
            return
        now_ms = time.time() * 1000
        add_delay = self.delays.add
        for event in records:
            add_delay(now_ms - event["sentAt"] * 1000)

    def reset_stats(self) -> None:
        """Zero the counters and the delay histogram (between phases of a benchmark)."""
        self.operation_stats = {served.name: Stats() for served in SERVED.values()}
        self.delays = DelayHistogram()

    def stats_json(self) -> dict[str, object]:
        """``GET /_emulator/stats``: PutEvents' counters and ``delay_ms`` at the top level (as before the
        other operations), and ``operations``: each operation's counters, by its API name."""
        return {
            **self.stats.as_json(),
            "delay_ms": self.delays.as_json(),
            "operations": {name: stats.as_operation_json() for name, stats in self.operation_stats.items()},
        }


def _seeded(seed: int | None, name: str) -> random.Random:
    """The random source of one kind of fault: repeatable per ``seed``, independent of the others."""
    return random.Random(None if seed is None else f"{seed}:{name}")


def _rejected_item(records: list[dict[str, Any]], field: str, rejected: frozenset[str]) -> str | None:
    """The message for the first record whose itemId the ``reject_item_ids`` fault names, if any."""
    if not rejected:
        return None
    for i, record in enumerate(records):
        item_id = record.get("itemId")
        if item_id is not None and item_id in rejected:
            return f"{field}[{i}].itemId: item {item_id!r} is rejected (emulator)"
    return None


def _record_call(record: BinaryIO, raw: bytes, body: dict[str, Any], operation: str) -> None:
    """One accepted call as a line of the record file, flushed (a reader sees it once the client has its
    200): the body as received with ``"operation"`` put first, re-encoded if it held a line break."""
    line = raw.strip()
    if b"\n" in line or b"\r" in line:
        # Line breaks can only be whitespace between JSON tokens; orjson writes none.
        line = orjson.dumps(body)
    # An accepted body is an object with at least one field, so "{" starts it and a field follows.
    record.write(b'{"operation":"' + operation.encode() + b'",' + line[1:] + b"\n")
    record.flush()


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
