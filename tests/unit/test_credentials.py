"""CredentialSource's contract with botocore's credential objects, without sockets: what it signs with, when
it refreshes (in its worker thread, never on the loop) and what it cannot have (an Outage)."""

from __future__ import annotations

import asyncio
import datetime
import threading
from typing import Any

import pytest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.exceptions import CredentialRetrievalError

from forwarder.personalize.credentials import CredentialSource
from forwarder.personalize.errors import Outage


def _refreshable(expires_in_s: float, refresh: Any) -> RefreshableCredentials:
    expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=expires_in_s)
    return RefreshableCredentials("AKID", "old", "tok", expiry, refresh, "test")


def _metadata(expires_in_s: float, secret: str) -> dict[str, str]:
    expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=expires_in_s)
    return {"access_key": "AKID", "secret_key": secret, "token": "tok", "expiry_time": expiry.isoformat()}


def test_static_credentials_are_looked_up_once_and_used_as_they_are() -> None:
    lookups = []

    def lookup() -> Credentials:
        lookups.append(1)
        return Credentials("AKID", "secret")

    async def go() -> None:
        source = CredentialSource(lookup)
        assert source.current() is None  # nothing looked up yet: get() must be awaited
        first = await source.get()
        assert first == ReadOnlyCredentials("AKID", "secret", None)
        assert source.current() == first
        assert await source.get() == first
        source.close()

    asyncio.run(go())
    assert len(lookups) == 1


def test_no_credentials_is_an_outage_and_each_call_looks_again() -> None:
    found: list[Any] = [None]

    async def go() -> None:
        source = CredentialSource(lambda: found[0])
        for _ in range(2):
            with pytest.raises(Outage, match="NoCredentials"):
                await source.get()
        found[0] = Credentials("AKID", "late")
        assert (await source.get()).secret_key == "late"
        source.close()

    asyncio.run(go())


def test_valid_credentials_in_the_refresh_window_are_used_while_the_worker_refreshes() -> None:
    started, release = threading.Event(), threading.Event()
    loop_threads: list[bool] = []

    def refresh() -> dict[str, str]:
        loop_threads.append(threading.current_thread() is threading.main_thread())
        started.set()
        release.wait(10)  # a slow endpoint
        return _metadata(3600, "new")

    credentials = _refreshable(12 * 60, refresh)  # botocore's advisory window, still valid

    async def go() -> None:
        source = CredentialSource(lambda: credentials)
        assert (await source.get()).secret_key == "old"  # just found: used as they are
        assert source.current().secret_key == "old"  # and the refresh starts in the worker
        await asyncio.to_thread(started.wait, 10)
        assert source.current().secret_key == "old"  # still the current ones while it runs
        release.set()
        for _ in range(500):
            if source.current().secret_key == "new":
                break
            await asyncio.sleep(0.01)
        assert source.current().secret_key == "new"
        source.close()

    asyncio.run(go())
    assert loop_threads == [False], "refreshed once, in the worker thread"


def test_credentials_about_to_expire_wait_for_the_refresh_and_a_failed_one_is_an_outage() -> None:
    def failing() -> dict[str, str]:
        raise CredentialRetrievalError(provider="test", error_msg="endpoint down")

    credentials = _refreshable(30, failing)  # under a minute left: botocore's mandatory window

    async def go() -> None:
        source = CredentialSource(lambda: credentials)
        with pytest.raises(Outage, match="CredentialsUnavailable"):
            await source.get()
        assert source.current() is None
        source.close()

    asyncio.run(go())


def test_valid_credentials_whose_refresh_fails_are_used_until_a_minute_before_expiry() -> None:
    """botocore would block each call on a refresh in its mandatory window (10 minutes before expiry) and
    raise when it fails; credentials with 5 minutes left still sign, and the refresh is retried."""
    attempts: list[int] = []

    def failing() -> dict[str, str]:
        attempts.append(1)
        raise CredentialRetrievalError(provider="test", error_msg="endpoint down")

    credentials = _refreshable(5 * 60, failing)

    async def go() -> None:
        source = CredentialSource(lambda: credentials)
        assert (await source.get()).secret_key == "old"
        assert source.current().secret_key == "old"  # starts the refresh in the worker
        for _ in range(500):
            if attempts and source._pending is None:
                break
            await asyncio.sleep(0.01)
        assert (await source.get()).secret_key == "old"
        source.close()

    asyncio.run(go())
    assert attempts == [1]
