"""The three kinds of failure of a Personalize call, and how an error response maps onto them.

- :class:`InvalidInput`: the service rejected the request's content; the same request cannot succeed
  (the sender bisects the batch and dead-letters the events rejected alone);
- :class:`Retryable`: throttling, a 5xx, a timeout (HTTP 408, ``RequestTimeout``...) or a broken
  connection; the same request may succeed later (the sender retries it with backoff);
- :class:`Outage`: the service refuses every call (wrong tracking id or dataset, a dataset in use,
  access denied, bad or missing credentials, a signature too old for the service's clock, a redirect or
  an answer that is not the operation's); not the messages' fault (the sender pauses and probes; nothing
  is dead-lettered).

The retryable codes follow botocore's own retry rules (``botocore/retries/standard.py``: its transient
codes ``RequestTimeout``, ``RequestTimeoutException``, ``PriorRequestNotComplete`` and its throttled
codes; ``botocore/data/_retry.json``: 429, 500, 502, 503, 504, 509), plus HTTP 408, which is a timeout by
definition (RFC 9110). ``RequestExpired`` is not retried by botocore: it says the signature's time is
outside the service's window, which a fresh signature may fix (a delayed request) or not (a skewed clock),
so it is an outage: the probe signs again, and a skewed clock never turns the events into dead letters.

Every transport raises only these (as :class:`PutEventsError`), so the sending policy does not depend on
the transport.
"""

from __future__ import annotations

from typing import Final

import orjson
from botocore.exceptions import CredentialRetrievalError, NoCredentialsError, RefreshWithMFAUnsupportedError

THROTTLING_CODES: Final = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "LimitExceededException",
        # botocore's other throttled codes (retries/standard.py, ThrottledRetryableChecker)
        "PriorRequestNotComplete",
        "TransactionInProgressException",
        "BandwidthLimitExceeded",
        "EC2ThrottledException",
    }
)
# botocore's transient codes (retries/standard.py, TransientRetryableChecker): the same request may succeed.
TRANSIENT_CODES: Final = frozenset({"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"})
TIMEOUT_STATUS: Final = 408
OUTAGE_CODES: Final = frozenset(
    {
        "ResourceNotFoundException",
        # 409 from PutItems, PutUsers, PutActions, PutActionInteractions while their dataset is busy: the
        # records are not at fault, so it pauses and probes rather than dead-letters.
        "ResourceInUseException",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "NotAuthorized",
        # The signature's time is outside the service's window: a skewed clock or a delayed request.
        "RequestExpired",
        "RequestTimeTooSkewed",
        "RequestInTheFuture",
    }
)
# Outage codes that concern the target of the call (the tracking id or dataset it names), not the
# replica: a message carrying its own tracking id that the service does not know, or forbids.
TARGET_OUTAGE_CODES: Final = frozenset({"ResourceNotFoundException", "AccessDeniedException"})

# Credentials that cannot be had (none found, a provider that fails, a refresh that fails) are an outage:
# not the messages' fault, so nothing is dead-lettered for them; the sender retries slowly until they work.
CREDENTIAL_ERRORS: Final = (NoCredentialsError, CredentialRetrievalError, RefreshWithMFAUnsupportedError)


class PutEventsError(Exception):
    """A call failed; ``code`` is the service's error type (or a transport's name for it)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class InvalidInput(PutEventsError):
    """The service rejected the request's content; retrying the same request cannot succeed."""


class Retryable(PutEventsError):
    """Throttling, a 5xx, a timeout or a broken connection: the same request may succeed later."""

    @property
    def throttled(self) -> bool:
        """Whether the service asked to slow down."""
        return self.code in THROTTLING_CODES or self.status == 429


class Outage(PutEventsError):
    """The service refuses every call (wrong tracking id, bad credentials): not the messages' fault."""


def classify(status: int, code: str, message: str) -> PutEventsError:
    """Map an error response onto the three kinds of failure the forwarder treats differently."""
    if code in THROTTLING_CODES or status == 429:
        return Retryable(code or "Throttled", message, status)
    if code in TRANSIENT_CODES or status == TIMEOUT_STATUS:
        return Retryable(code or f"HTTP{status}", message or "request timeout", status)
    if code in OUTAGE_CODES or status in (401, 403) or (status == 404 and not code):
        return Outage(code or f"HTTP{status}", message, status)
    if 300 <= status < 400:
        # PutEvents never redirects: the endpoint (personalize.endpoint_url, the region) is wrong. Every
        # call would get the same answer, so it is an outage, never the events' fault.
        detail = message or "a redirect"
        return Outage(code or f"HTTP{status}", f"{detail}: the endpoint is misconfigured", status)
    if status >= 500 or status < 400:
        return Retryable(code or f"HTTP{status}", message, status)
    return InvalidInput(code or f"HTTP{status}", message, status)


def unexpected_success(status: int, payload: bytes) -> Outage | None:
    """``None`` if a 2xx answer is the operation's success, else the outage it amounts to.

    Every Personalize write operation answers success with an empty output shape: no body, or a JSON
    object (whose members are ignored, as botocore ignores unknown members). A 2xx whose body is neither
    (an HTML page, a proxy's text) did not come from the service: the events were not accepted, and every
    call would get the same answer, so it is an outage (nothing is finished, nothing dead-lettered).
    """
    if not payload.strip():
        return None
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        return None
    return Outage(
        "UnexpectedResponse",
        f"HTTP {status} with a body that is not the operation's answer ({len(payload)} bytes): "
        "the endpoint is not the Personalize events service",
        status,
    )


def answer_error(status: int, error_type: str, payload: bytes) -> PutEventsError | None:
    """``None`` if a raw answer is the operation's success, else the error it amounts to: a 2xx is
    judged by :func:`unexpected_success`, anything else by :func:`classify_response`."""
    if 200 <= status < 300:
        return unexpected_success(status, payload)
    return classify_response(status, error_type, payload)


def classify_response(status: int, error_type: str, payload: bytes) -> PutEventsError:
    """:func:`classify` for a raw non-2xx response of the service's JSON protocol.

    The code is the ``x-amzn-ErrorType`` header, else the body's ``__type``, stripped of its namespace
    (``...#Code``) and of anything after a colon; the message is the body's ``message`` (or ``Message``).
    A body that is not JSON counts as empty.
    """
    code, message = error_type, ""
    try:
        parsed = orjson.loads(payload) if payload else {}
    except orjson.JSONDecodeError:
        parsed = {}
    if isinstance(parsed, dict):
        code = code or str(parsed.get("__type", ""))
        message = str(parsed.get("message") or parsed.get("Message") or "")
    code = code.split(":", 1)[0].rsplit("#", 1)[-1]
    return classify(status, code, message)


def credentials_outage(exc: Exception) -> Outage:
    """The outage that credentials which cannot be had (one of :data:`CREDENTIAL_ERRORS`) amount to."""
    code = "NoCredentials" if isinstance(exc, NoCredentialsError) else "CredentialsUnavailable"
    return Outage(code, f"AWS credentials: {type(exc).__name__}: {exc}")
