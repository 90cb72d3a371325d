"""The ``boto3`` transport: the operation's client method, called from a thread pool.

The SDK's blocking call runs in a pool as large as the allowed concurrency, so the event loop never
waits on it (nor on a credential refresh, which botocore makes in the calling thread). Its errors are
mapped onto the three kinds in :mod:`forwarder.personalize.errors`; a certificate that does not verify
against the CA bundle (:mod:`forwarder.personalize.tls`) is an outage. A client built while the
credential chain found nothing never looks again by itself, so while there are none each call looks
again and builds a new client once they appear.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, SSLError

from forwarder.config import PersonalizeConfig
from forwarder.personalize.client import boto_session, personalize_events_client
from forwarder.personalize.errors import (
    CREDENTIAL_ERRORS,
    Retryable,
    classify,
    credentials_outage,
    unexpected_success,
)
from forwarder.personalize.operations import PUT_EVENTS, Operation
from forwarder.personalize.tls import ca_bundle, is_verification_failure, verification_outage


class Boto3Transport:
    """The boto3 client's method for ``operation``, from a thread pool of ``cfg.max_in_flight`` threads."""

    def __init__(self, cfg: PersonalizeConfig, operation: Operation[Any, Any] = PUT_EVENTS) -> None:
        self._operation = operation
        self._cfg = cfg
        self._session = boto_session()
        self._tls = ca_bundle(cfg, self._session)
        self._lock = threading.Lock()
        self._build_client()
        self._pool = ThreadPoolExecutor(
            max_workers=cfg.max_in_flight, thread_name_prefix=operation.method.replace("_", "-")
        )

    def _build_client(self) -> None:
        """A client with the credentials the chain finds now (building it looks them up)."""
        self._client = personalize_events_client(self._session, self._cfg, verify=self._tls.path)
        self._method = getattr(self._client, self._operation.method)
        # botocore takes any 2xx for a success and a body it cannot parse for a message: check the body.
        self._client.meta.events.register("after-call.personalize-events", _check_success)
        self._has_credentials = self._session.get_credentials() is not None

    def _method_now(self) -> Any:
        """The client's method; while the client has no credentials, one built again if there are now."""
        if not self._has_credentials:
            with self._lock:
                if not self._has_credentials and self._session.get_credentials() is not None:
                    self._build_client()
        return self._method

    def _call(self, key: Any, events: Sequence[Any]) -> None:
        try:
            self._method_now()(**self._operation.params(key, events))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            raise classify(status, error.get("Code", ""), error.get("Message", "")) from None
        except CREDENTIAL_ERRORS as exc:
            raise credentials_outage(exc) from None
        except SSLError as exc:
            if is_verification_failure(exc):
                raise verification_outage(exc, self._client.meta.endpoint_url, self._tls) from None
            raise Retryable(type(exc).__name__, str(exc)) from None
        except BotoCoreError as exc:
            raise Retryable(type(exc).__name__, str(exc)) from None

    async def put_events(self, key: Any, events: Sequence[Any]) -> None:
        """See :class:`~forwarder.personalize.transport.Transport`."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self._call, key, events)

    async def close(self) -> None:
        """See :class:`~forwarder.personalize.transport.Transport`."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _check_success(http_response: Any, **_: Any) -> None:
    """botocore's after-call hook: a 2xx that is not the operation's answer raises the outage it is."""
    status = http_response.status_code
    if 200 <= status < 300:
        error = unexpected_success(status, http_response.content)
        if error is not None:
            raise error


def create(cfg: PersonalizeConfig, operation: Operation[Any, Any]) -> Boto3Transport:
    """The registry's factory (:data:`forwarder.personalize.transport.TRANSPORTS`)."""
    return Boto3Transport(cfg, operation)
