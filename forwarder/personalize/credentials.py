"""boto3's credentials for a transport on the event loop: found and refreshed in a worker thread.

botocore looks credentials up, and refreshes temporary ones, with blocking calls (a file, the container or
instance metadata endpoint, STS) that may take seconds. :class:`CredentialSource` keeps every such call
off the loop:

- :meth:`~CredentialSource.current` never blocks: the credentials it holds, while they have more than
  ``min_validity_s`` left. When botocore wants them refreshed (its advisory window, 15 minutes before
  expiry) it starts the refresh in the worker thread and goes on with the current ones meanwhile.
- :meth:`~CredentialSource.get` awaits the worker when there is nothing usable: none were found yet (each
  call looks again, so credentials that appear after the start, such as a credentials file written later
  or an instance role back, are found by the next outage probe), or they are about to expire. What
  cannot be had is an :class:`~forwarder.personalize.errors.Outage`.

One lookup or refresh runs at a time; callers that need one while it runs wait for the same one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from botocore.exceptions import ClientError

from forwarder.personalize.errors import CREDENTIAL_ERRORS, Outage, credentials_outage

log = logging.getLogger(__name__)

MIN_VALIDITY_S: Final = 60.0  # credentials closer to expiry than this are not used: a call may take long
ADVISORY_RETRY_S: Final = 5.0  # after a refresh, the next background one starts no sooner than this


class CredentialSource:
    """Credentials from ``lookup`` (a boto3 session's ``get_credentials``), refreshed off the loop."""

    def __init__(
        self,
        lookup: Callable[[], Any],
        *,
        min_validity_s: float = MIN_VALIDITY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._min_validity_s = min_validity_s
        self._clock = clock
        self._credentials: Any = None  # botocore's (refreshable) credentials, once found
        self._frozen: Any = None  # their ReadOnlyCredentials, as the worker last read them
        self._pending: asyncio.Future[tuple[Any, Any]] | None = None
        self._finished_at = float("-inf")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="credentials")

    def current(self) -> Any:
        """The frozen credentials to sign with now, or ``None`` if :meth:`get` must be awaited. Never blocks."""
        frozen = self._frozen
        if frozen is None:
            return None
        refresh_needed = getattr(self._credentials, "refresh_needed", None)
        if refresh_needed is None or not refresh_needed():  # static, or not in the refresh window
            return frozen
        if self._pending is None and self._clock() - self._finished_at >= ADVISORY_RETRY_S:
            self._start()
        return None if refresh_needed(self._min_validity_s) else frozen

    async def get(self) -> Any:
        """Usable frozen credentials, looked up or refreshed in the worker if need be; :class:`Outage` if none."""
        frozen = self.current()
        if frozen is not None:
            return frozen
        pending = self._pending or self._start()
        try:
            await asyncio.shield(pending)
        except (*CREDENTIAL_ERRORS, ClientError, RuntimeError) as exc:
            # ClientError: an STS provider refused; RuntimeError: botocore's "refreshed but still expired".
            raise credentials_outage(exc) from None
        if self._frozen is None:
            raise Outage("NoCredentials", "no AWS credentials found by boto3's default chain")
        refresh_needed = getattr(self._credentials, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed(0):
            raise Outage("CredentialsUnavailable", "AWS credentials: expired, and not refreshed")
        return self._frozen

    def _start(self) -> asyncio.Future[tuple[Any, Any]]:
        pending = asyncio.get_running_loop().run_in_executor(self._pool, self._read)
        pending.add_done_callback(self._finished)
        self._pending = pending
        return pending

    def _read(self) -> tuple[Any, Any]:
        """In the worker: the credentials (looked up again while there are none) and their frozen values.

        botocore refreshes them here when they are in its refresh window, except just after a lookup:
        credentials just found are used as they are while valid (:meth:`current` then refreshes them in
        the background if botocore wants it), so a slow endpoint does not hold up the first call.
        """
        credentials = self._credentials
        if credentials is None:
            credentials = self._lookup()
            if credentials is None:
                return None, None
            # What botocore's accessors would return after their refresh; absent on static credentials.
            held = getattr(credentials, "_frozen_credentials", None)
            refresh_needed = getattr(credentials, "refresh_needed", None)
            if held is not None and refresh_needed is not None and not refresh_needed(self._min_validity_s):
                return credentials, held
        return credentials, credentials.get_frozen_credentials()

    def _finished(self, pending: asyncio.Future[tuple[Any, Any]]) -> None:
        self._pending = None
        if self._credentials is not None:  # a refresh, not a lookup: the next one waits a little
            self._finished_at = self._clock()
        if pending.cancelled():
            return
        exc = pending.exception()
        if exc is not None:
            log.debug("AWS credentials could not be had: %s", exc)  # get() raises it as an Outage
            return
        self._credentials, self._frozen = pending.result()

    def close(self) -> None:
        """Stop the worker thread (a lookup in progress ends on its own)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
