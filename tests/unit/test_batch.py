"""Batching: per session, at most max_events, in order, one batch out per session, linger by clock."""

from __future__ import annotations

from confluent_kafka import Message

from forwarder.batch import Batch, Batcher
from forwarder.decode import Event, SessionKey
from forwarder.outcome import Envelope


def _event(session: str, n: int, user: str | None = "u") -> Event:
    return Event(
        key=SessionKey("trk", user, session),
        wire={"eventType": "click", "sentAt": 1, "eventId": f"{session}-{n}"},
        encoded=b"{}",
        source=Envelope(Message(topic="t", partition=0, offset=n)),
        both_impression_kinds=False,
    )


def _ids(batch: Batch) -> list[str]:
    return [ev.wire["eventId"] for ev in batch.events]


def test_a_full_batch_leaves_at_once_and_never_exceeds_max() -> None:
    batcher = Batcher(max_events=10, linger_s=1.0)
    out = [b for n in range(25) if (b := batcher.add(_event("s", n), now=0.0)) is not None]
    assert len(out) == 1
    assert _ids(out[0]) == [f"s-{n}" for n in range(10)]
    # One batch out per session: the next ten wait for the first to complete.
    nxt = batcher.complete(out[0].key, now=0.1)
    assert nxt is not None
    assert _ids(nxt) == [f"s-{n}" for n in range(10, 20)]
    assert batcher.complete(nxt.key, now=0.2) is None  # five left, linger not over
    assert batcher.buffered == 5
    late = batcher.due(now=1.0)
    assert [_ids(b) for b in late] == [[f"s-{n}" for n in range(20, 25)]]


def test_linger_sends_a_partial_batch_when_its_oldest_event_has_waited() -> None:
    batcher = Batcher(max_events=10, linger_s=0.5)
    assert batcher.add(_event("a", 0), now=0.0) is None
    assert batcher.add(_event("b", 0), now=0.3) is None
    assert batcher.add(_event("a", 1), now=0.4) is None
    assert batcher.due(now=0.49) == []
    first = batcher.due(now=0.5)
    assert [_ids(b) for b in first] == [["a-0", "a-1"]]
    second = batcher.due(now=0.8)
    assert [_ids(b) for b in second] == [["b-0"]]


def test_sessions_never_mix_and_keys_include_user_and_tracking_id() -> None:
    batcher = Batcher(max_events=2, linger_s=10)
    batches = []
    for n in range(4):
        for user in ("u1", "u2", None):
            b = batcher.add(_event("same-session", n, user), now=0.0)
            if b is not None:
                batches.append(b)
    assert len(batches) == 3
    for b in batches:
        assert {ev.key for ev in b.events} == {b.key}


def test_events_arriving_while_a_batch_is_out_wait_and_keep_their_order() -> None:
    batcher = Batcher(max_events=3, linger_s=0.1)
    batcher.add(_event("s", 0), now=0.0)
    (first,) = batcher.due(now=0.1)
    for n in range(1, 5):
        assert batcher.add(_event("s", n), now=0.2) is None, "one batch out per session"
    assert batcher.due(now=5.0) == [], "still out: nothing else of this session leaves"
    nxt = batcher.complete(first.key, now=5.0)
    assert nxt is not None
    assert _ids(nxt) == ["s-1", "s-2", "s-3"]
    last = batcher.complete(nxt.key, now=5.0)
    assert last is not None, "its linger is long over"
    assert _ids(last) == ["s-4"]
    assert batcher.complete(last.key, now=5.0) is None
    assert batcher.sessions() == 0


def test_flush_mode_sends_everything_at_once() -> None:
    batcher = Batcher(max_events=10, linger_s=60)
    for s in ("a", "b", "c"):
        batcher.add(_event(s, 0), now=0.0)
    assert batcher.next_deadline() == 60
    batcher.set_flushing(True)
    assert sorted(_ids(b)[0] for b in batcher.due(now=0.0)) == ["a-0", "b-0", "c-0"]
    assert batcher.add(_event("d", 0), now=0.0) is not None
    # The deadlines left behind are stale: no wake-up is asked for while flushing.
    assert batcher.next_deadline() is None
    batcher.set_flushing(False)
    assert batcher.next_deadline() == 60


def test_discard_removes_buffered_events_of_lost_partitions() -> None:
    batcher = Batcher(max_events=10, linger_s=60)
    keep, drop = _event("a", 0), _event("a", 1)
    batcher.add(keep, now=0)
    batcher.add(drop, now=0)
    removed = batcher.discard(lambda ev: ev is keep)
    assert removed == [drop]
    assert list(batcher.pending_events()) == [keep]
    assert batcher.buffered == 1
