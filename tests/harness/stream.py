"""A steady stream of events into Kafka, and when each one was accepted by the emulator.

:class:`SteadyFeed` produces events at a fixed rate, each with a unique ``eventId`` and ``sentAt`` = the
time it was produced (so the emulator's ``delay_ms`` is end-to-end latency). :class:`AcceptanceWatch`
tails the emulator's record file and notes the wall-clock time each event id was first seen there. Both
are threads bounded by their ``halt`` event and joined with a timeout by their caller.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from confluent_kafka import Producer

WATCH_INTERVAL_S = 0.1  # resolution of AcceptanceWatch's acceptance times


class SteadyFeed(threading.Thread):
    """Produces ``rate`` events/s over ``sessions`` sessions until ``halt`` is set (or ``limit`` events).

    ``produced`` maps each event id to the wall-clock time it was handed to the producer; ``count`` is how
    many were produced."""

    def __init__(
        self, bootstrap: str, topic: str, rate: int = 300, sessions: int = 200, limit: int | None = None
    ) -> None:
        super().__init__(daemon=True, name="feed")
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.topic = topic
        self.rate = rate
        self.sessions = sessions
        self.limit = limit
        self.halt = threading.Event()
        self.count = 0
        self.produced: dict[str, float] = {}

    def run(self) -> None:
        start = time.monotonic()
        while not self.halt.is_set() and (self.limit is None or self.count < self.limit):
            n = self.count
            session = f"s-{n % self.sessions}"
            now = time.time()
            ev = {"eventId": f"e-{n}", "sessionId": session, "eventType": "view", "sentAt": round(now, 3)}
            self.producer.produce(self.topic, key=session.encode(), value=json.dumps(ev).encode())
            self.produced[str(ev["eventId"])] = now
            self.count += 1
            if n % 20 == 0:
                self.producer.poll(0)
                ahead = start + n / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        self.producer.flush(30)

    def stop(self, timeout: float = 40) -> None:
        """Stop producing and wait (bounded) until what was produced is flushed."""
        self.halt.set()
        self.join(timeout)


class AcceptanceWatch(threading.Thread):
    """Tails an emulator record file; ``accepted`` maps each event id to when it was first seen there."""

    def __init__(self, record: Path) -> None:
        super().__init__(daemon=True, name="acceptance-watch")
        self.record = record
        self.halt = threading.Event()
        self.accepted: dict[str, float] = {}
        self.repeats = 0
        self._offset = 0
        self._partial = b""

    def run(self) -> None:
        while not self.halt.wait(WATCH_INTERVAL_S):
            self.read_new()
        self.read_new()

    def read_new(self) -> None:
        """Read the lines appended since the last read; stamp their events with the time now."""
        if not self.record.exists():
            return
        with self.record.open("rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        now = time.time()
        for line in lines:
            body = json.loads(line)
            if body.get("operation") != "PutEvents":
                continue
            for ev in body["eventList"]:
                event_id = str(ev.get("eventId"))
                if event_id in self.accepted:
                    self.repeats += 1
                else:
                    self.accepted[event_id] = now

    def stop(self, timeout: float = 10) -> None:
        """Stop tailing after one last read."""
        self.halt.set()
        self.join(timeout)


def late_events(feed: SteadyFeed, watch: AcceptanceWatch, since: float, bound_s: float) -> dict[str, float]:
    """Events produced at or after ``since`` (wall clock) that were accepted more than ``bound_s`` after
    being produced, or never (``inf``): event id → delay in seconds."""
    out: dict[str, float] = {}
    for event_id, produced in list(feed.produced.items()):
        if produced < since:
            continue
        delay = watch.accepted.get(event_id, float("inf")) - produced
        if delay > bound_s:
            out[event_id] = delay
    return out


def max_delay(feed: SteadyFeed, watch: AcceptanceWatch, since: float, until: float = float("inf")) -> float:
    """The longest produce-to-acceptance delay of the events produced in [``since``, ``until``)."""
    delays = [
        watch.accepted.get(event_id, float("inf")) - produced
        for event_id, produced in list(feed.produced.items())
        if since <= produced < until
    ]
    return max(delays, default=0.0)
