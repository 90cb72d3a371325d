"""SigV4 for the fast transport: botocore's signer, with the work that is the same for every call done once.

:class:`RequestSigner` signs one request body at a time with the credentials it is given (boto3's chain,
read and refreshed off the event loop by :mod:`forwarder.personalize.credentials`) and builds a new
:class:`CachedSigV4Auth` only when they change. tests/unit/test_signing.py
compares the headers, byte for byte, with stock ``SigV4Auth`` on a real ``AWSRequest``.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from botocore.auth import SIGNED_HEADERS_BLACKLIST, SigV4Auth, _host_from_url
from botocore.awsrequest import AWSRequest

log = logging.getLogger(__name__)

SIGNING_NAME: Final = "personalize"  # the scope the service checks; not the client's "personalize-events"
_CONTENT_TYPE: Final = {"Content-Type": "application/json"}


class _SigningRequest:
    """What ``SigV4Auth.add_auth`` reads and writes of an ``AWSRequest``, without its email-based headers."""

    __slots__ = ("auth_path", "body", "context", "headers", "method", "params", "url")

    def __init__(self, url: str, body: bytes) -> None:
        self.method = "POST"
        self.url = url
        self.body = body
        self.headers: dict[str, str] = dict(_CONTENT_TYPE)
        self.context: dict[str, Any] = {}
        self.params: dict[str, str] = {}
        self.auth_path = None


class _HeaderMap(dict[str, str]):
    """The part of botocore's HTTPHeaders that SigV4Auth's canonicalisation reads (one value a name)."""

    def get_all(self, name: str) -> list[str]:
        value = self.get(name)
        return [] if value is None else [value]


class CachedSigV4Auth(SigV4Auth):  # type: ignore[misc]
    """botocore's SigV4Auth for one URL, with the work that is the same for every call done once.

    ``add_auth``, the canonical request, the string to sign and the final HMAC are botocore's; what
    changes is only how the pieces that never vary between calls are obtained: the signing key is
    derived once per day (not four HMACs per call), the host once per endpoint (not a URL parse per
    call), the headers to sign in a dict (not an email.message). What that saves is measured in
    docs/benchmarks.md; the signatures are equal (tests/unit/test_signing.py).
    """

    def __init__(self, credentials: Any, service: str, region: str, url: str) -> None:
        super().__init__(credentials, service, region)
        self._host = _host_from_url(url)
        self._keys: dict[str, bytes] = {}
        self._paths: dict[str, str] = {}

    def headers_to_sign(self, request: Any) -> _HeaderMap:
        headers = _HeaderMap()
        for name, value in request.headers.items():
            lower = name.lower()
            if lower not in SIGNED_HEADERS_BLACKLIST:
                headers[lower] = value
        headers.setdefault("host", self._host)
        return headers

    def canonical_query_string(self, request: Any) -> str:
        if not request.params and "?" not in request.url:
            return ""
        query: str = super().canonical_query_string(request)
        return query

    def _normalize_url_path(self, path: str) -> str:
        normalized = self._paths.get(path)
        if normalized is None:
            normalized = self._paths[path] = super()._normalize_url_path(path)
        return normalized

    def signature(self, string_to_sign: str, request: Any) -> str:
        day = request.context["timestamp"][0:8]
        key = self._keys.get(day)
        if key is None:
            k_date = self._sign(f"AWS4{self.credentials.secret_key}".encode(), day)
            key = self._sign(
                self._sign(self._sign(k_date, self._region_name), self._service_name), "aws4_request"
            )
            self._keys = {day: key}  # yesterday's key is never needed again
        signature: str = self._sign(key, string_to_sign, hex=True)
        return signature


class RequestSigner:
    """Signs ``POST url`` requests with JSON bodies, with the credentials each call is given.

    The credentials are botocore's frozen ones (``ReadOnlyCredentials``), which the caller obtains without
    blocking the event loop (:mod:`forwarder.personalize.credentials`); a new :class:`CachedSigV4Auth` is
    built only when they change.
    """

    def __init__(self, region: str, url: str) -> None:
        self._region = region
        self._url = url
        self._light = True
        self._signing: tuple[Any, SigV4Auth] | None = None

    def _signer(self, frozen: Any) -> SigV4Auth:
        if self._signing is None or self._signing[0] != frozen:
            self._signing = (frozen, CachedSigV4Auth(frozen, SIGNING_NAME, self._region, self._url))
        return self._signing[1]

    def headers(self, body: bytes, credentials: Any) -> dict[str, str]:
        """The request's headers (``Content-Type`` and the SigV4 ones) for ``body``, signed with the
        frozen ``credentials``.

        It signs a light stand-in for ``AWSRequest`` (plain dict headers). Should a botocore release need
        more of ``AWSRequest`` than the stand-in has, signing falls back to it for good.
        """
        signer = self._signer(credentials)
        if self._light:
            request: Any = _SigningRequest(self._url, body)
            try:
                signer.add_auth(request)
                headers: dict[str, str] = request.headers
                return headers
            except AttributeError as exc:
                log.warning("botocore's signer needs a full AWSRequest (%s); using it from now on", exc)
                self._light = False
        request = AWSRequest(method="POST", url=self._url, data=body, headers=dict(_CONTENT_TYPE))
        signer.add_auth(request)
        return dict(request.headers.items())
