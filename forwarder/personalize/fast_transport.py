"""The ``fast`` transport: the same request as boto3's, built by the operation, signed with botocore's SigV4
(:mod:`forwarder.personalize.signing`) and posted over the project's own keep-alive HTTP/1.1 pool
(:class:`forwarder.personalize.http.HttpClient`). aiohttp is used instead only where an HTTP(S) proxy is
configured for the endpoint, which the lean client does not speak.

boto3 still supplies the credentials (read off the loop: :mod:`forwarder.personalize.credentials`), the
region and the endpoint (:mod:`forwarder.personalize.client`). TLS is verified against the CA bundle of
:mod:`forwarder.personalize.tls` on both paths, with or without a proxy; a certificate that does not
verify is an :class:`~forwarder.personalize.errors.Outage`. What this saves against the boto3 transport,
per call and per event, is in docs/benchmarks.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import aiohttp

from forwarder.config import PersonalizeConfig
from forwarder.personalize.client import boto_session, personalize_events_client
from forwarder.personalize.credentials import CredentialSource
from forwarder.personalize.errors import Retryable, answer_error
from forwarder.personalize.http import HttpClient, HttpConnectionError, proxy_configured
from forwarder.personalize.operations import PUT_EVENTS, Operation
from forwarder.personalize.signing import RequestSigner
from forwarder.personalize.tls import ca_bundle, is_verification_failure, verification_outage

log = logging.getLogger(__name__)


class FastTransport:
    """``operation``'s call, built with orjson, signed, and sent on keep-alive connections."""

    def __init__(self, cfg: PersonalizeConfig, operation: Operation[Any, Any] = PUT_EVENTS) -> None:
        session = boto_session()
        self._tls = ca_bundle(cfg, session)
        client = personalize_events_client(session, cfg, verify=self._tls.path)
        base = client.meta.endpoint_url.rstrip("/")
        self._operation = operation
        self._path = operation.path
        self._url = base + operation.path
        self._ssl = self._tls.context() if base.startswith("https:") else None
        self.credentials = CredentialSource(session.get_credentials)
        self.signer = RequestSigner(client.meta.region_name, self._url)
        self._lean: HttpClient | None = None
        self._aiohttp: aiohttp.ClientSession | None = None
        self._timeout_s = cfg.request_timeout_s
        self._limit = cfg.max_in_flight
        if proxy_configured(self._url):
            log.info(
                "an HTTP(S) proxy is configured for %s: the fast transport sends through aiohttp", self._url
            )
        else:
            self._lean = HttpClient(
                base,
                max_connections=cfg.max_in_flight,
                timeout_s=cfg.request_timeout_s,
                ssl_context=self._ssl,
            )

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        """Status, ``x-amzn-ErrorType`` and body; :class:`Retryable` for broken connections and timeouts,
        :class:`~forwarder.personalize.errors.Outage` for a certificate that does not verify."""
        try:
            if self._lean is not None:
                response = await self._lean.post(self._path, body, headers)
                return response.status, response.headers.get("x-amzn-errortype", ""), response.body
            if self._aiohttp is None:
                self._aiohttp = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(
                        limit=self._limit, ttl_dns_cache=300, ssl=self._ssl or True
                    ),
                    timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                    skip_auto_headers=("User-Agent",),
                    trust_env=True,  # the proxy from HTTPS_PROXY / HTTP_PROXY, as botocore would use
                )
            async with self._aiohttp.post(self._url, data=body, headers=headers) as reply:
                return reply.status, reply.headers.get("x-amzn-ErrorType", ""), await reply.read()
        except (HttpConnectionError, aiohttp.ClientError, TimeoutError) as exc:
            if is_verification_failure(exc):
                raise verification_outage(exc, self._url, self._tls) from None
            raise Retryable(type(exc).__name__, str(exc) or type(exc).__name__) from None

    async def put_events(self, key: Any, events: Sequence[Any]) -> None:
        """See :class:`~forwarder.personalize.transport.Transport`."""
        body = self._operation.body(key, events)
        credentials = self.credentials.current() or await self.credentials.get()
        status, error_type, payload = await self._post(body, self.signer.headers(body, credentials))
        if status != 200 or (payload and payload != b"{}"):  # the usual successes: nothing to parse
            error = answer_error(status, error_type, payload)
            if error is not None:
                raise error

    async def close(self) -> None:
        """See :class:`~forwarder.personalize.transport.Transport`."""
        self.credentials.close()
        if self._lean is not None:
            await self._lean.close()
        if self._aiohttp is not None:
            await self._aiohttp.close()


def create(cfg: PersonalizeConfig, operation: Operation[Any, Any]) -> FastTransport:
    """The registry's factory (:data:`forwarder.personalize.transport.TRANSPORTS`)."""
    return FastTransport(cfg, operation)
