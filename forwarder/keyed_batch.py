"""Batch for the record operations (items, users, actions, action interactions): calls of up to
``max_records`` records of one target, with linger, and per-id ordering.

Contract:
- A route has one target (its datasetArn or tracking id), so the batcher keeps one queue, in Kafka order.
- **Per-id ordering**: each record has an ``order_key`` (its itemId, userId or actionId; an action
  interaction's session). Never are two records of the same key out at once (in one batch, or in two
  batches handed to the sender and not yet :meth:`KeyedBatcher.complete`-d), and a record never leaves
  before an earlier record of its key. So updates of one id reach the service in Kafka order, retries
  and bisection included (a batch holds its keys until it completes, however many calls that takes).
- Records of other keys are not held behind a blocked one: a batch is filled from the queue in order,
  skipping the keys that are out (and every later record of a skipped key).
- A batch leaves when ``max_records`` records can be taken, when the queue's oldest record has waited
  ``linger`` seconds, or at once in flush mode; at most ``max_batches_out`` batches are out at a time
  (more would only queue on the route's sender while holding their ids).
- Time is passed in (monotonic seconds), so the batcher is deterministic in tests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from forwarder.outcome import Envelope

SCAN_LIMIT: Final = 1000  # records looked at to fill one batch past blocked keys (bounds the work)


@dataclass(slots=True, eq=False)
class RoutedRecord:
    """One decoded record of a route, with its message: ``wire`` and ``encoded`` are what the operation's
    body and params builders read; ``source`` is finished when the record is accepted or dead-lettered."""

    source: Envelope
    order_key: str
    wire: dict[str, Any]
    encoded: bytes
    arrived: float = 0.0


@dataclass(slots=True, eq=False)
class RecordBatch:
    """Records of one call, in Kafka order; ``key`` is the call's target, ``events`` its records (the
    names :class:`forwarder.send.Sender` reads)."""

    key: str
    events: list[RoutedRecord]


class KeyedBatcher:
    """One route's queue, its linger, the keys out and the batches out."""

    def __init__(self, target: str, max_records: int, linger_s: float, max_batches_out: int) -> None:
        if not 1 <= max_records <= 10:
            raise ValueError("max_records must be between 1 and 10")
        self.target = target
        self.max_records = max_records
        self.linger_s = linger_s
        self.max_batches_out = max_batches_out
        self._queue: deque[RoutedRecord] = deque()
        self._out_keys: set[str] = set()
        self.batches_out = 0
        self._flushing = False
        self._stalled = (
            False  # the queue's next records all wait for keys out: nothing to do until one completes
        )

    @property
    def buffered(self) -> int:
        """Records added and not yet in a batch."""
        return len(self._queue)

    def add(self, record: RoutedRecord, now: float) -> list[RecordBatch]:
        """Queue a record; return the batches that became ready (usually none)."""
        record.arrived = now
        self._queue.append(record)
        self._stalled = False
        if len(self._queue) >= self.max_records or self._flushing:
            return self.due(now)
        return []

    def complete(self, batch: RecordBatch, now: float) -> list[RecordBatch]:
        """The batch is finished (accepted or dead-lettered): its keys are free; return what is ready."""
        self._out_keys.difference_update(record.order_key for record in batch.events)
        self.batches_out -= 1
        self._stalled = False
        return self.due(now)

    def due(self, now: float) -> list[RecordBatch]:
        """Every batch that may leave now: full ones, lingered ones, or all while flushing."""
        ready: list[RecordBatch] = []
        queue = self._queue
        while queue and self.batches_out < self.max_batches_out and not self._stalled:
            lingered = self._flushing or queue[0].arrived + self.linger_s <= now
            if not lingered and len(queue) < self.max_records:
                break
            batch = self._take(need_full=not lingered)
            if batch is None:
                # Lingered and nothing takeable: every queued key is out, only a completion helps.
                # Not lingered: fewer than a full batch can be taken yet; the linger deadline decides.
                self._stalled = lingered
                break
            ready.append(batch)
        return ready

    def _take(self, need_full: bool) -> RecordBatch | None:
        queue, out, limit = self._queue, self._out_keys, self.max_records
        picked: list[int] = []
        seen: set[str] = set()
        skipped = False
        for index, record in enumerate(queue):
            if index >= SCAN_LIMIT:
                break
            key = record.order_key
            if key in out or key in seen:
                skipped = True  # this key waits; so does every later record of it
            else:
                picked.append(index)
            seen.add(key)
            if len(picked) == limit:
                break
        if not picked or (need_full and len(picked) < limit):
            return None
        if not skipped:
            records = [queue.popleft() for _ in picked]
        else:
            chosen = set(picked)
            records = [queue[index] for index in picked]
            self._queue = deque(record for index, record in enumerate(queue) if index not in chosen)
        out.update(record.order_key for record in records)
        self.batches_out += 1
        return RecordBatch(self.target, records)

    def next_deadline(self) -> float | None:
        """When :meth:`due` may next return something; None when only a completion can free a batch."""
        if self._flushing or self._stalled or not self._queue or self.batches_out >= self.max_batches_out:
            return None
        return self._queue[0].arrived + self.linger_s

    def set_flushing(self, flushing: bool) -> None:
        """In flush mode every takeable record leaves at once, without waiting for linger."""
        self._flushing = flushing
        self._stalled = False

    def discard(self, keep: Callable[[RoutedRecord], bool]) -> list[RoutedRecord]:
        """Remove queued records for which ``keep`` is false (their partition was lost); return them."""
        kept: deque[RoutedRecord] = deque()
        removed: list[RoutedRecord] = []
        for record in self._queue:
            (kept if keep(record) else removed).append(record)
        self._queue = kept
        self._stalled = False
        return removed
