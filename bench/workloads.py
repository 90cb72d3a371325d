"""Workloads: seeded traces of interaction events, and the best mean batch size each one allows.

Two traces, both deterministic for a seed:

- **catch-up** (:class:`CatchupTrace`): a backlog. Sessions hold ``min_len``..``max_len`` events (uniform);
  ``active`` sessions are open at any point of the stream and each next event belongs to one of them
  picked at random, so a session's events sit close together (a session of *n* events spans about
  *n* × ``active`` positions) while many sessions interleave. When a session ends the next one opens.
  Best possible mean events per call = Σ events ÷ Σ ⌈events of a session ÷ 10⌉.
- **live** (:class:`LiveTrace`): events at ``rate`` per second for ``duration`` seconds. Users act in
  bursts (a page view and what follows it: ``burst_min``..``burst_max`` events, gaps exponential with
  mean ``burst_gap_ms``); bursts arrive as a Poisson process and each goes to a session drawn from a pool
  sized so that a session sees ``events_per_minute`` events per minute on average (a few). Best possible
  for a linger: each session's events are cut into batches that close when full (10) or when the next
  event comes ``linger`` or more after the batch's first one (:func:`best_batches_with_linger`).

Messages are JSON objects with PutEvents' own field names, keyed by session id (a session's events share
a partition and keep their order). No ``eventId``: the forwarder derives ``topic@topic_id:partition:offset``.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

# The live producer's linger.ms (librdkafka's default): part of every live event's produce→accepted time.
LIVE_PRODUCER_LINGER_MS: Final = 5

MAX_EVENTS_PER_CALL: Final = 10
EVENT_TYPES: Final = ("view", "click", "add-to-cart", "purchase")
EVENT_WEIGHTS: Final = (60, 25, 10, 5)
DEVICES: Final = ("web", "ios", "android")
ITEMS: Final = 20_000


def calls_needed(events: int, per_call: int = MAX_EVENTS_PER_CALL) -> int:
    """Fewest calls that carry ``events`` events of one session."""
    return math.ceil(events / per_call)


def _event(rng: random.Random, session: int, position: int, sent_at: float) -> dict[str, Any]:
    """One interaction event of ``session`` (a third of the sessions are anonymous: no userId)."""
    cumulative = bisect.bisect(_CUMULATIVE_WEIGHTS, rng.random() * _CUMULATIVE_WEIGHTS[-1])
    event_type = EVENT_TYPES[min(cumulative, len(EVENT_TYPES) - 1)]
    event: dict[str, Any] = {
        "sessionId": f"sess-{session:08d}",
        "eventType": event_type,
        "itemId": f"item-{rng.randrange(ITEMS):05d}",
        "sentAt": round(sent_at, 3),
        "properties": {"device": DEVICES[session % 3], "position": position},
    }
    if session % 3:
        event["userId"] = f"user-{(session * 7919) % 1_000_000:07d}"
    kind = rng.random()
    if kind < 0.25:
        event["impression"] = [f"item-{rng.randrange(ITEMS):05d}" for _ in range(rng.randint(2, 10))]
    elif kind < 0.45:
        event["recommendationId"] = f"RID-{rng.getrandbits(48):012x}"
    if event_type == "purchase":
        event["eventValue"] = round(rng.uniform(5, 200), 2)
    return event


_CUMULATIVE_WEIGHTS: Final = [sum(EVENT_WEIGHTS[: i + 1]) for i in range(len(EVENT_WEIGHTS))]


def wire_event(message: dict[str, Any], event_id: str) -> dict[str, Any]:
    """A trace message as it goes into PutEvents' ``eventList`` (what a plain client would build)."""
    wire: dict[str, Any] = {
        "eventId": event_id,
        "eventType": message["eventType"],
        "sentAt": message["sentAt"],
    }
    for name in ("itemId", "eventValue", "impression", "recommendationId"):
        if name in message:
            wire[name] = message[name]
    if "properties" in message:
        wire["properties"] = orjson.dumps(message["properties"]).decode()
    return wire


def session_key(message: dict[str, Any], tracking_id: str) -> tuple[str, str | None, str]:
    """(trackingId, userId, sessionId): what one PutEvents call is about."""
    return (message.get("trackingId") or tracking_id, message.get("userId"), message["sessionId"])


@dataclass
class CatchupTrace:
    """A backlog of ``events`` events; :meth:`messages` yields (key, value) in stream order."""

    events: int
    seed: int = 7
    active: int = 256
    min_len: int = 10
    max_len: int = 50
    start: float = 1_764_000_000.0  # sentAt of the first event (epoch seconds)
    lengths: list[int] = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(f"{self.seed}:lengths")
        lengths: list[int] = []
        total = 0
        while total < self.events:
            n = min(rng.randint(self.min_len, self.max_len), self.events - total)
            lengths.append(n)
            total += n
        self.lengths = lengths

    @property
    def sessions(self) -> int:
        """Sessions in the trace."""
        return len(self.lengths)

    @property
    def best_calls(self) -> int:
        """Fewest PutEvents calls that deliver the whole trace."""
        return sum(calls_needed(n) for n in self.lengths)

    @property
    def best_mean(self) -> float:
        """Best possible mean events per call: Σ events ÷ Σ ⌈session events ÷ 10⌉."""
        return self.events / self.best_calls

    def messages(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, JSON value) of every event, in stream order; the same for the same seed."""
        rng = random.Random(f"{self.seed}:stream")
        queue = iter(enumerate(self.lengths))
        slots: list[list[int]] = []  # [session, position, length]
        for _ in range(self.active):
            nxt = next(queue, None)
            if nxt is None:
                break
            slots.append([nxt[0], 0, nxt[1]])
        dumps = orjson.dumps
        emitted = 0
        while slots:
            i = rng.randrange(len(slots))
            slot = slots[i]
            session, position = slot[0], slot[1]
            event = _event(rng, session, position, self.start + emitted * 0.001)
            emitted += 1
            yield event["sessionId"].encode(), dumps(event)
            slot[1] = position + 1
            if slot[1] >= slot[2]:
                nxt = next(queue, None)
                if nxt is None:
                    slots[i] = slots[-1]
                    slots.pop()
                else:
                    slots[i] = [nxt[0], 0, nxt[1]]

    def sample_bodies(self, count: int, tracking_id: str) -> list[bytes]:
        """``count`` request bodies of 10 events of one session each, as a client sends them."""
        rng = random.Random(f"{self.seed}:bodies")
        bodies: list[bytes] = []
        for b in range(count):
            session = b
            events = [_event(rng, session, p, self.start + p) for p in range(MAX_EVENTS_PER_CALL)]
            first = events[0]
            body: dict[str, Any] = {"trackingId": tracking_id}
            if "userId" in first:
                body["userId"] = first["userId"]
            body["sessionId"] = first["sessionId"]
            body["eventList"] = [wire_event(ev, f"ceiling:{b}:{p}") for p, ev in enumerate(events)]
            bodies.append(orjson.dumps(body))
        return bodies


@dataclass(slots=True)
class LiveEvent:
    """One event of the live trace: when to produce it (seconds from the start) and its message."""

    at: float
    session: int
    message: dict[str, Any]


@dataclass
class LiveTrace:
    """Events at ``rate``/s for ``duration`` s, in bursts, over many sessions with realistic gaps."""

    rate: float
    duration: float
    seed: int = 11
    burst_min: int = 1
    burst_max: int = 10
    burst_gap_ms: float = 20.0
    events_per_minute: float = 5.0
    events: list[LiveEvent] = field(init=False)
    sessions: int = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(f"{self.seed}:live")
        mean_burst = (self.burst_min + self.burst_max) / 2
        burst_rate = self.rate / mean_burst
        pool = max(1, round(self.rate * 60 / self.events_per_minute))
        out: list[LiveEvent] = []
        t = 0.0
        while True:
            t += rng.expovariate(burst_rate)
            if t >= self.duration:
                break
            session = rng.randrange(pool)
            at = t
            for position in range(rng.randint(self.burst_min, self.burst_max)):
                if position:
                    at += rng.expovariate(1000.0 / self.burst_gap_ms)
                if at >= self.duration:
                    break
                out.append(LiveEvent(at, session, _event(rng, session, position, 0.0)))
        out.sort(key=lambda ev: ev.at)
        self.events = out
        self.sessions = pool

    def best_calls(self, linger_s: float) -> int:
        """Fewest calls for this trace when no event may wait more than ``linger_s`` for its batch."""
        times: dict[int, list[float]] = {}
        for ev in self.events:
            times.setdefault(ev.session, []).append(ev.at)
        return sum(best_batches_with_linger(ts, linger_s) for ts in times.values())

    def best_mean(self, linger_s: float) -> float:
        """Best possible mean events per call for this trace and linger."""
        return len(self.events) / max(1, self.best_calls(linger_s))


def best_batches_with_linger(times: list[float], linger_s: float, per_call: int = MAX_EVENTS_PER_CALL) -> int:
    """Batches of one session's events (sorted times): a batch closes when full or when the next event
    comes ``linger_s`` or more after the batch's first event."""
    batches = 0
    first = 0.0
    size = 0
    for t in times:
        if size and (size >= per_call or t - first >= linger_s):
            size = 0
        if size == 0:
            batches += 1
            first = t
        size += 1
    return batches
