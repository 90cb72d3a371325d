"""KeyedBatcher: full and lingered batches of one target, per-id ordering, batches out, flush, discard."""

from __future__ import annotations

from forwarder.keyed_batch import KeyedBatcher, RecordBatch, RoutedRecord
from forwarder.outcome import Envelope


def _record(key: str, n: int = 0) -> RoutedRecord:
    return RoutedRecord(Envelope(None, offset=n), key, {"itemId": key, "n": n}, b"{}")  # type: ignore[arg-type]


def _keys(batch: RecordBatch) -> list[tuple[str, int]]:
    return [(r.order_key, r.source.offset) for r in batch.events]


def _batcher(max_records: int = 10, linger: float = 1.0, out: int = 4) -> KeyedBatcher:
    return KeyedBatcher("arn:t", max_records, linger, out)


def test_full_batch_leaves_at_once_and_a_partial_one_after_linger() -> None:
    b = _batcher(max_records=3)
    assert b.add(_record("a", 0), 0.0) == []
    assert b.add(_record("b", 1), 0.1) == []
    [batch] = b.add(_record("c", 2), 0.2)
    assert batch.key == "arn:t"
    assert _keys(batch) == [("a", 0), ("b", 1), ("c", 2)]
    b.add(_record("d", 3), 0.3)
    assert b.due(1.2) == []
    assert b.next_deadline() == 1.3
    [late] = b.due(1.3)
    assert _keys(late) == [("d", 3)]
    assert b.buffered == 0


def test_two_records_of_one_id_are_never_out_together_and_keep_their_order() -> None:
    b = _batcher(max_records=3)
    b.add(_record("a", 0), 0.0)
    b.add(_record("a", 1), 0.0)
    # Three records, but not three ids: not full, so it waits for its linger.
    assert b.add(_record("b", 2), 0.0) == []
    [first] = b.due(1.0)
    # One batch never holds the same id twice: the second update of a waits, b goes.
    assert _keys(first) == [("a", 0), ("b", 2)]
    # a's second update waits while the first is out, however long it lingered.
    b.add(_record("c", 3), 0.0)
    assert [_keys(x) for x in b.due(5.0)] == [[("c", 3)]]
    assert b.due(6.0) == []
    assert b.next_deadline() is None  # only a completion frees it: no busy ticking
    [second] = b.complete(first, 6.0)
    assert _keys(second) == [("a", 1)]


def test_a_later_record_of_a_blocked_id_does_not_overtake_an_earlier_one() -> None:
    b = _batcher(max_records=2, out=10)
    b.add(_record("x", 0), 0.0)
    [first] = b.add(_record("y", 1), 0.0)
    ready = [
        batch for n, key in enumerate(["x", "z", "x", "w"], start=2) for batch in b.add(_record(key, n), 0.0)
    ]
    # x waits (out); the records behind it of other ids go, two by two, as soon as two can.
    [batch] = ready
    assert _keys(batch) == [("z", 3), ("w", 5)]
    [after] = b.complete(first, 3.0)
    assert _keys(after) == [("x", 2)]
    b.complete(batch, 3.0)
    [last] = b.complete(after, 3.0)
    assert _keys(last) == [("x", 4)]


def test_batches_out_are_bounded() -> None:
    b = _batcher(max_records=1, out=2)
    out = [batch for n in range(5) for batch in b.add(_record(f"k{n}", n), 0.0)]
    assert len(out) == 2
    assert b.buffered == 3
    assert b.next_deadline() is None
    assert len(b.complete(out[0], 0.0)) == 1


def test_flush_sends_everything_takeable_and_discard_drops_lost_records() -> None:
    b = _batcher(max_records=10)
    for n in range(4):
        b.add(_record(f"k{n}", n), 0.0)
    b.set_flushing(True)
    [batch] = b.due(0.0)
    assert len(batch.events) == 4
    b.set_flushing(False)
    for n in range(4, 8):
        b.add(_record(f"k{n}", n), 0.0)
    removed = b.discard(lambda r: r.source.offset % 2 == 0)
    assert [r.source.offset for r in removed] == [5, 7]
    assert b.buffered == 2
