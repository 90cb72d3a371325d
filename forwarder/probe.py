"""The outage probe: how a call waits out the outages it is subject to, and how one batch per outage
probes on its schedule until the service accepts (the state and the rules are :mod:`forwarder.outages`).

Contract of :meth:`OutageProbe.attempt`: it returns once the call got through, raises the call's
non-outage :class:`~forwarder.personalize.errors.PutEventsError` for the sender's policy (retries,
bisection), and raises :class:`~forwarder.outages.OutageExpired` when the call's tracker (not the
configured one) has been refused for longer than ``retry.outage_max_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from forwarder.config import RetryConfig
from forwarder.decode import Event, SessionKey
from forwarder.outages import OutageExpired, Outages, TrackerOutage
from forwarder.personalize.errors import Outage, PutEventsError

if TYPE_CHECKING:
    from forwarder.send import SendResult

log = logging.getLogger("forwarder.send")

Call = Callable[[SessionKey, list[Event], "SendResult"], Awaitable[None]]


class OutageObserver(Protocol):
    """Who hears of outages beginning and ending (:class:`forwarder.send.SendObserver`)."""

    def outage(self, active: bool, reason: str, tracking_id: str) -> None:
        """An outage of ``tracking_id`` began (``active``) or ended."""


class OutageProbe:
    """Waiting, probing and expiry around one transport call (``call``: the sender's, counted)."""

    def __init__(self, outages: Outages, retry: RetryConfig, call: Call, observer: OutageObserver) -> None:
        self.outages = outages
        self._retry = retry
        self._call = call
        self._observer = observer

    async def attempt(self, key: SessionKey, events: list[Event], result: SendResult) -> None:
        """One call, waiting out the outages it is subject to; raises :class:`OutageExpired` when its
        tracker's outage has outlasted ``retry.outage_max_s``."""
        while True:
            expired = await self._wait_for_turn(_tracker(key))
            try:
                await self._call(key, events, result)
            except Outage as exc:
                scope = self.outages.scope_of(_tracker(key), exc)
                if expired is not None and scope == expired.tracking_id:
                    raise self._expired(expired) from None  # one call each once expired, no holding
                state = self._begin_outage(scope, exc)
                if await self._probe_until_healthy(state, key, events, result):
                    return
                continue  # another batch's probe got through: try this one again the normal way
            if expired is not None:
                self._end_outage(expired)
            return

    async def _wait_for_turn(self, tracking_id: str) -> TrackerOutage | None:
        """Wait while the replica's outage or this tracker's holds; return the tracker's outage if it had
        expired already (the batch then makes one call). A batch held until its tracker's outage expires
        raises :class:`OutageExpired` without a call: the probe spoke for it."""
        outages, held = self.outages, False
        while True:
            state = outages.global_outage
            if state is None:
                state = outages.get(tracking_id)
                if state is None:
                    return None
                left = outages.remaining(state)
                if left == 0.0:
                    if held:
                        raise self._expired(state)
                    return state
            else:
                left = None
            held = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.over.wait(), left)

    def _begin_outage(self, scope: str, exc: Outage) -> TrackerOutage:
        state, new = self.outages.begin(scope, exc)
        if not new:
            return state
        self._observer.outage(True, str(exc), scope)
        cfg = self._retry
        if scope == self.outages.global_scope:
            log.error(
                "PutEvents refuses every call (%s). This is not the messages' fault: check "
                "personalize.tracking_id, the region and the AWS credentials. Consumption is paused, "
                "offsets are kept, nothing is dead-lettered; probing after %gs, doubling up to every %gs.",
                exc,
                cfg.outage_first_probe_s,
                cfg.outage_retry_interval_s,
            )
        else:
            log.error(
                "PutEvents refuses calls for tracking id %r, which messages carry (%s). Only its sessions "
                "wait; the others flow. Probing after %gs, doubling up to every %gs; after "
                "retry.outage_max_s (%gs) its events go to the dead-letter topic with stage outage.",
                scope,
                exc,
                cfg.outage_first_probe_s,
                cfg.outage_retry_interval_s,
                cfg.outage_max_s,
            )
        return state

    async def _probe_until_healthy(
        self, state: TrackerOutage, key: SessionKey, events: list[Event], result: SendResult
    ) -> bool:
        """Retry this batch on the probe schedule until the service accepts it; True if this batch's call
        got through, False if another's did.

        One batch probes per outage while the others of its scope wait, so a wrong tracking id does not
        become a storm of calls. A non-outage error from the probe ends the outage and goes back to the
        normal path. An outage of another tracker that expires raises :class:`OutageExpired`. A probe of
        the replica's outage answered with its own tracker's refusal ends the replica's outage and goes on
        probing its tracker's (outside the replica's probe lock, which others may wait on).
        """
        async with state.probe:
            handover = await self._probe_loop(state, key, events, result)
        if isinstance(handover, bool):
            return handover
        return await self._probe_until_healthy(handover, key, events, result)

    async def _probe_loop(
        self, state: TrackerOutage, key: SessionKey, events: list[Event], result: SendResult
    ) -> bool | TrackerOutage:
        """:meth:`_probe_until_healthy` under the outage's probe lock; an outage to probe next instead."""
        outages = self.outages
        while state.active:
            left = outages.remaining(state)
            if left == 0.0:
                raise self._expired(state)
            delay = state.schedule.next_delay()
            await asyncio.sleep(delay if left is None else min(delay, left))
            if outages.expired(state):
                raise self._expired(state)
            try:
                await self._call(key, events, result)
            except Outage as exc:
                log.warning("PutEvents still refuses calls for %r: %s", state.tracking_id, exc)
                scope = outages.scope_of(_tracker(key), exc)
                if scope == state.tracking_id:
                    continue
                other = self._begin_outage(scope, exc)
                if scope == outages.global_scope:
                    continue  # the replica's outage now: this tracker's stands too
                # The replica's cause is gone: the service answers about this batch's own tracker.
                self._end_outage(state)
                return other
            except PutEventsError:
                self._end_outage(state)
                raise
            self._end_outage(state)
            return True
        return False

    def _expired(self, state: TrackerOutage) -> OutageExpired:
        """The error that dead-letters a batch of an expired outage; the first time, the outage stops
        counting as one (its gauge series goes, the dead-letter counter takes over) and one line says so."""
        if not state.expired_reported:
            state.expired_reported = True
            log.error(
                "PutEvents refused tracking id %r for longer than retry.outage_max_s (%gs): its held events "
                "go to the dead-letter topic with stage outage; each later batch of it is tried once",
                state.tracking_id,
                self.outages.max_s,
            )
            self._observer.outage(False, "", state.tracking_id)
        return self.outages.expiry(state)

    def _end_outage(self, state: TrackerOutage) -> None:
        if self.outages.end(state):
            log.warning("PutEvents accepts calls for %r again; resuming", state.tracking_id)
            self._observer.outage(False, "", state.tracking_id)


def _tracker(key: object) -> str:
    """A PutEvents batch's tracking id. A record route casts its batch key (the route's target) in here; it
    has no tracker scope, as its sender is built without a configured tracker (every outage is the route's)."""
    return key.tracking_id if isinstance(key, SessionKey) else ""
