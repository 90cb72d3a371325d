"""Outages, scoped to the tracker they concern: which tracking ids the service refuses, since when, when
to probe next, and when a tracker's held events give up.

Two scopes:

- the **configured** tracker (``personalize.tracking_id``), and every cause that is not about a tracker
  (credentials, signatures, a misconfigured endpoint): a true outage. Every batch waits, consumption
  pauses (flow control reads :attr:`Outages.global_outage`), offsets are kept, one batch probes, and it
  never gives up;
- **another** tracker, one that messages carry themselves, answered ``ResourceNotFoundException`` or
  ``AccessDeniedException`` (:data:`~forwarder.personalize.errors.TARGET_OUTAGE_CODES`): only that
  tracker's batches wait; every other session keeps flowing. After ``retry.outage_max_s`` the outage
  *expires*: the held batches fail with :class:`OutageExpired` (dead-letter stage ``outage``), and each
  later batch of that tracker makes one call (which ends the outage if it gets through) and is
  dead-lettered at once if refused, so one typo never holds a partition's commits for longer than the
  bound. Nothing expires while the configured tracker is in an outage (its cause may be every tracker's).

Probes start ``retry.outage_first_probe_s`` after the outage began and double up to
``retry.outage_retry_interval_s`` (:class:`ProbeSchedule`), so a blip costs seconds and a long outage one
slow probe. Pure state with an injected clock; the waiting and probing around the calls is
:class:`forwarder.probe.OutageProbe`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from forwarder.personalize.errors import TARGET_OUTAGE_CODES, Outage


class ProbeSchedule:
    """The waits before each probe: ``first``, then doubling, never above ``interval``."""

    __slots__ = ("_interval", "_next")

    def __init__(self, first_s: float, interval_s: float) -> None:
        self._interval = interval_s
        self._next = min(first_s, interval_s)

    def next_delay(self) -> float:
        """The wait before the next probe (each call is one probe)."""
        delay = self._next
        self._next = min(self._interval, delay * 2)
        return delay


@dataclass(eq=False)
class TrackerOutage:
    """One tracker's outage: why, since when, its probe schedule; ``over`` is set when it ends."""

    tracking_id: str
    code: str
    reason: str
    since: float
    schedule: ProbeSchedule
    over: asyncio.Event = field(default_factory=asyncio.Event)
    probe: asyncio.Lock = field(default_factory=asyncio.Lock)  # one batch probes at a time
    expired_reported: bool = False  # the expiry was logged and the outage gauge dropped

    @property
    def active(self) -> bool:
        """Whether the outage still holds."""
        return not self.over.is_set()


class OutageExpired(Exception):
    """A tracker's outage outlasted ``retry.outage_max_s``: its held events go to the dead-letter topic."""

    def __init__(self, state: TrackerOutage, held_s: float, max_s: float) -> None:
        self.code = state.code
        self.message = (
            f"tracking id {state.tracking_id!r} refused for {held_s:.0f}s "
            f"(retry.outage_max_s {max_s:g}): {state.reason}"
        )
        super().__init__(self.message)


class Outages:
    """Every current outage, by scope (a tracking id; the configured one stands for the replica).

    ``configured`` is ``personalize.tracking_id``; ``None`` makes every outage the replica's (no scoping).
    """

    def __init__(
        self,
        configured: str | None,
        first_probe_s: float,
        interval_s: float,
        max_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.configured = configured
        self._global = configured if configured is not None else ""
        self._first = first_probe_s
        self._interval = interval_s
        self.max_s = max_s
        self._clock = clock
        self._by_scope: dict[str, TrackerOutage] = {}

    @property
    def global_scope(self) -> str:
        """The scope of the replica's own outages (the configured tracking id)."""
        return self._global

    @property
    def global_outage(self) -> TrackerOutage | None:
        """The replica's outage, if there is one: everything waits and consumption pauses."""
        return self._by_scope.get(self._global)

    @property
    def scoped(self) -> list[TrackerOutage]:
        """The outages of other trackers."""
        return [state for scope, state in self._by_scope.items() if scope != self._global]

    def scope_of(self, tracking_id: str, exc: Outage) -> str:
        """The scope an outage error of a call for ``tracking_id`` belongs to."""
        if self.configured is not None and exc.code in TARGET_OUTAGE_CODES:
            return tracking_id
        return self._global

    def get(self, scope: str) -> TrackerOutage | None:
        """The scope's outage, if it has one."""
        return self._by_scope.get(scope)

    def begin(self, scope: str, exc: Outage) -> tuple[TrackerOutage, bool]:
        """The scope's outage, begun now unless it already was; whether it is new."""
        state = self._by_scope.get(scope)
        if state is not None:
            return state, False
        state = TrackerOutage(
            scope, exc.code, str(exc), self._clock(), ProbeSchedule(self._first, self._interval)
        )
        self._by_scope[scope] = state
        return state, True

    def end(self, state: TrackerOutage) -> bool:
        """The outage is over (a call got through); False if it already was."""
        if not state.active:
            return False
        state.over.set()
        if self._by_scope.get(state.tracking_id) is state:
            del self._by_scope[state.tracking_id]
        return True

    def remaining(self, state: TrackerOutage) -> float | None:
        """Seconds until the outage expires; ``None`` if it cannot now (the replica's own, or while the
        replica's outage stops the clock); 0 once expired."""
        if state.tracking_id == self._global or self.global_outage is not None:
            return None
        return max(0.0, self.max_s - (self._clock() - state.since))

    def expired(self, state: TrackerOutage) -> bool:
        """Whether the outage outlasted ``max_s`` (never the replica's own)."""
        return self.remaining(state) == 0.0

    def expiry(self, state: TrackerOutage) -> OutageExpired:
        """The error that dead-letters the held events of an expired outage."""
        return OutageExpired(state, self._clock() - state.since, self.max_s)
