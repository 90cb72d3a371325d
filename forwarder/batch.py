"""Batch: group events by session into PutEvents calls of at most ``max_events``.

Contract:
- Events of one :class:`~forwarder.decode.SessionKey` leave in the order they were added, and at most
  one batch per session is out (handed to the sender and not yet :meth:`Batcher.complete`-d): that keeps
  a session's events in order at the service and makes retries simple.
- A batch leaves when it is full, or when its oldest event has waited ``linger`` seconds, or at once
  while flush mode is on (:meth:`Batcher.set_flushing`: rebalance, shutdown).
- :meth:`add` and :meth:`complete` return the batch that became ready, if any; :meth:`due` returns the
  batches whose linger has passed. The caller sends them and calls :meth:`complete` for each.
- Time is passed in (monotonic seconds), so the batcher is deterministic in tests.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from forwarder.decode import Event, SessionKey


@dataclass(slots=True, eq=False)
class Batch:
    """Events of one session, in order, for one PutEvents call."""

    key: SessionKey
    events: list[Event]


@dataclass(slots=True, eq=False)
class _Session:
    events: deque[Event] = field(default_factory=deque)
    out: bool = False  # a batch of this session is with the sender


class Batcher:
    """Per-session queues, a linger deadline heap, and the one-batch-out rule."""

    def __init__(self, max_events: int, linger_s: float) -> None:
        if not 1 <= max_events <= 10:
            raise ValueError("max_events must be between 1 and 10")
        self.max_events = max_events
        self.linger_s = linger_s
        self._sessions: dict[SessionKey, _Session] = {}
        self._deadlines: list[tuple[float, int, SessionKey]] = []  # lazy: entries may be stale
        self._seq = 0
        self._flushing = False
        self.buffered = 0  # events added and not yet in a batch

    def _take(self, key: SessionKey, session: _Session, now: float) -> Batch:
        events = session.events
        n = min(len(events), self.max_events)
        batch = Batch(key, [events.popleft() for _ in range(n)])
        self.buffered -= n
        session.out = True
        return batch

    def _schedule(self, key: SessionKey, at: float) -> None:
        self._seq += 1
        heapq.heappush(self._deadlines, (at, self._seq, key))

    def add(self, event: Event, now: float) -> Batch | None:
        """Buffer an event; return its session's batch if that became ready."""
        key = event.key
        found = self._sessions.get(key)
        session = found if found is not None else self._sessions.setdefault(key, _Session())
        event.arrived = now
        events = session.events
        events.append(event)
        self.buffered += 1
        if session.out:
            return None
        if len(events) >= self.max_events or self._flushing:
            return self._take(key, session, now)
        if len(events) == 1:
            self._schedule(key, now + self.linger_s)
        return None

    def complete(self, key: SessionKey, now: float) -> Batch | None:
        """The session's batch is finished (sent or dead-lettered); return its next batch if ready."""
        session = self._sessions.get(key)
        if session is None:
            return None
        session.out = False
        events = session.events
        if not events:
            del self._sessions[key]
            return None
        oldest_due = events[0].arrived + self.linger_s
        if len(events) >= self.max_events or self._flushing or oldest_due <= now:
            return self._take(key, session, now)
        self._schedule(key, oldest_due)
        return None

    def due(self, now: float) -> list[Batch]:
        """Batches whose oldest event has waited the linger time (all pending ones while flushing)."""
        ready: list[Batch] = []
        if self._flushing:
            for key, session in self._sessions.items():
                if session.events and not session.out:
                    ready.append(self._take(key, session, now))
            return ready
        heap = self._deadlines
        linger = self.linger_s
        while heap and heap[0][0] <= now:
            _, _, key = heapq.heappop(heap)
            entry = self._sessions.get(key)
            if entry is None or entry.out or not entry.events:
                continue  # stale entry: the session was sent, or completed and rescheduled
            oldest_due = entry.events[0].arrived + linger
            if oldest_due > now:
                self._schedule(key, oldest_due)
                continue
            ready.append(self._take(key, entry, now))
        return ready

    def next_deadline(self) -> float | None:
        """When :meth:`due` may next return something (a hint; entries may be stale). None while
        flushing: then :meth:`add` and :meth:`complete` hand every batch over at once, and the stale
        deadlines left in the past would only wake a caller in a busy loop."""
        if self._flushing or not self._deadlines:
            return None
        return self._deadlines[0][0]

    def set_flushing(self, flushing: bool) -> None:
        """In flush mode every pending event leaves at once, without waiting for linger."""
        self._flushing = flushing

    def discard(self, keep: Callable[[Event], bool]) -> list[Event]:
        """Remove buffered events for which ``keep`` is false (their partition was lost); return them."""
        removed: list[Event] = []
        for key in list(self._sessions):
            session = self._sessions[key]
            kept: deque[Event] = deque()
            for ev in session.events:
                (kept if keep(ev) else removed).append(ev)
            session.events = kept
            if not kept and not session.out:
                del self._sessions[key]
        self.buffered -= len(removed)
        return removed

    def sessions(self) -> int:
        """Sessions with buffered events or a batch out."""
        return len(self._sessions)

    def pending_events(self) -> Iterable[Event]:
        """Every buffered event (for tests and diagnostics)."""
        for session in self._sessions.values():
            yield from session.events
