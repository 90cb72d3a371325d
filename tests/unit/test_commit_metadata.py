"""The commit-metadata codec: exact round trips, the size budget, and refusal of anything it did not write."""

from __future__ import annotations

import base64
import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.commit_metadata import (
    DEFAULT_BUDGET,
    FinishedOffsets,
    UnreadableMetadata,
    decode,
    encode,
    max_body_bytes,
)

BASE = 1_234_567


def _holes(n: int, hole_rate: float, seed: int, base: int = BASE) -> FinishedOffsets:
    rng = random.Random(seed)
    return FinishedOffsets.from_sorted(o for o in range(base + 1, base + 1 + n) if rng.random() >= hole_rate)


def test_round_trip_of_a_small_set() -> None:
    finished = FinishedOffsets.of([BASE + 1, BASE + 2, BASE + 3, BASE + 9, BASE + 500])
    text = encode(BASE, finished)
    assert text is not None
    assert text.startswith("fw1")
    assert text.isascii()
    assert decode(text, BASE) == finished
    assert set(decode(text, BASE)) == {BASE + 1, BASE + 2, BASE + 3, BASE + 9, BASE + 500}


def test_the_empty_set_is_a_plain_commit() -> None:
    assert encode(BASE, FinishedOffsets()) == ""
    assert decode("", BASE) == FinishedOffsets()


def test_few_runs_pick_run_length_and_scattered_holes_pick_the_bitset() -> None:
    runs = _holes(10_000, 0.01, seed=1)
    dense = _holes(10_000, 0.5, seed=2)
    runs_text = encode(BASE, runs)
    dense_text = encode(BASE, dense)
    assert runs_text is not None
    assert dense_text is not None
    assert runs_text[:4] == "fw1R"
    assert dense_text[:4] == "fw1B"
    assert decode(runs_text, BASE) == runs
    assert decode(dense_text, BASE) == dense
    # the bitset of 10,000 offsets is 1,250 bytes: base64 of that plus the header, not more
    assert len(dense_text) <= 4 + 4 * -(-(1250 + 4 + 3) // 3)


def test_a_long_run_costs_a_few_bytes() -> None:
    finished = FinishedOffsets(((BASE + 2, BASE + 2 + 10_000_000),))
    text = encode(BASE, finished)
    assert text is not None
    assert len(text) < 24
    assert decode(text, BASE) == finished


def test_a_set_past_the_budget_is_none_and_one_just_inside_fits() -> None:
    # Every other offset: the bitset wins (runs would cost 2 bytes per offset); a bitset of ``span`` bits.
    limit = max_body_bytes(DEFAULT_BUDGET) - 4 - 3  # minus the CRC and the base's 3-byte varint
    fits = FinishedOffsets.of(range(BASE + 1, BASE + 1 + limit * 8, 2))
    text = encode(BASE, fits)
    assert text is not None
    assert len(text) <= DEFAULT_BUDGET
    assert len(text) > DEFAULT_BUDGET - 8, "the budget is used to its last base64 quantum"
    assert decode(text, BASE) == fits
    past = FinishedOffsets.of(range(BASE + 1, BASE + 1 + limit * 8 + 1, 2))
    assert encode(BASE, past) is None
    assert encode(BASE, fits, budget=1024) is None


@pytest.mark.parametrize("budget", [0, 4, 8, 9, 12, 13, 16, 100, 4096])
def test_no_encoding_is_longer_than_its_budget(budget: int) -> None:
    rng = random.Random(budget)
    for _ in range(50):
        finished = FinishedOffsets.of(rng.sample(range(1, 5000), rng.randint(1, 400)))
        text = encode(0, finished, budget)
        if text is not None:
            assert len(text) <= budget
            assert decode(text, 0) == finished


def test_offsets_at_or_below_the_base_are_refused() -> None:
    with pytest.raises(ValueError, match="not above"):
        encode(BASE, FinishedOffsets.of([BASE]))
    with pytest.raises(ValueError, match="not an offset"):
        encode(-1, FinishedOffsets.of([3]))


def test_metadata_read_with_another_committed_offset_is_refused() -> None:
    text = encode(BASE, FinishedOffsets.of([BASE + 5]))
    assert text is not None
    with pytest.raises(UnreadableMetadata, match="written for a commit at"):
        decode(text, BASE + 1)


def _forge(tag: str, body: bytes) -> str:
    crc = zlib.crc32(tag.encode() + body).to_bytes(4, "big")
    return tag + base64.b64encode(body + crc).decode()


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ("some other tool's note", "not this codec"),
        ('{"owner": "x"}', "not this codec"),
        ("fw2R" + base64.b64encode(b"\x00\x01\x01abcd").decode(), "format version 2"),
        ("fw1X" + base64.b64encode(b"\x00\x01\x01abcd").decode(), "not this codec"),
        ("fw1R!!!!", "not base64"),
        ("fw1Rä", "not base64"),
        ("fw1R" + base64.b64encode(b"\x00\x01").decode(), "too short"),
        ("fw1R" + base64.b64encode(b"\x00\x01\x01abcd").decode(), "checksum"),
        (_forge("fw1R", b"\x00"), "no runs"),
        (_forge("fw1R", b"\x00\x01"), "end with a gap"),
        (_forge("fw1R", b"\x00\x01\x00"), "empty run"),
        (_forge("fw1R", b"\x00\x00\x02\x00\x01"), "empty run or gap"),
        (_forge("fw1R", b"\x00\x80"), "truncated varint"),
        (_forge("fw1R", b"\x00\x81\x00\x01"), "not minimal"),
        (_forge("fw1R", b"\x00" + b"\xff" * 9 + b"\x7f\x01"), "too long"),
        (_forge("fw1R", b"\x00\x01\xff\xff\xff\xff\xff\xff\xff\xff\x7f"), "past int64"),
        (_forge("fw1B", b"\x00"), "bitset empty"),
        (_forge("fw1B", b"\x00\x01\x00"), "not trimmed"),
    ],
)
def test_malformed_metadata_is_refused_with_a_reason(metadata: str, reason: str) -> None:
    with pytest.raises(UnreadableMetadata, match=reason):
        decode(metadata, 0)


def test_a_single_changed_character_is_never_read_as_another_set() -> None:
    finished = _holes(2000, 0.3, seed=5)
    text = encode(BASE, finished)
    assert text is not None
    rng = random.Random(3)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for _ in range(300):
        i = rng.randrange(len(text))
        changed = text[:i] + rng.choice(alphabet.replace(text[i], "")) + text[i + 1 :]
        try:
            got = decode(changed, BASE)
        except UnreadableMetadata:
            continue
        assert got == finished  # only a change in base64's unused padding bits can decode, to the same set


offsets_above_base = st.integers(min_value=0, max_value=2**40).flatmap(
    lambda base: st.tuples(
        st.just(base),
        st.lists(st.integers(min_value=base + 1, max_value=base + 50_000), max_size=300)
        | st.lists(st.tuples(st.integers(1, 5000), st.integers(1, 5000)), max_size=40).map(
            lambda steps: _from_steps(base, steps)
        ),
    )
)


def _from_steps(base: int, steps: list[tuple[int, int]]) -> list[int]:
    out: list[int] = []
    cursor = base + 1
    for gap, run in steps:
        out.extend(range(cursor + gap, cursor + gap + run))
        cursor += gap + run
    return out


@settings(max_examples=300, deadline=None)
@given(offsets_above_base, st.sampled_from([64, 512, DEFAULT_BUDGET]))
def test_any_finished_set_round_trips_or_does_not_fit(case: tuple[int, list[int]], budget: int) -> None:
    base, offsets = case
    finished = FinishedOffsets.of(offsets)
    assert set(finished) == set(offsets)
    text = encode(base, finished, budget)
    if text is None:
        assert offsets, "the empty set always fits"
        return
    assert len(text) <= budget
    assert text.isascii()
    assert set(decode(text, base)) == set(offsets)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.integers(min_value=0, max_value=2**62))
def test_arbitrary_text_decodes_to_a_set_above_the_base_or_is_refused(text: str, base: int) -> None:
    try:
        got = decode(text, base)
    except UnreadableMetadata:
        return
    assert all(o > base for o in got)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(["fw1R", "fw1B"]))
def test_arbitrary_checksummed_bodies_never_crash_the_decoder(body: bytes, tag: str) -> None:
    try:
        got = decode(_forge(tag, body), 0)
    except UnreadableMetadata:
        return
    assert all(o > 0 for o in got)


def test_finished_offsets_set_operations() -> None:
    a = FinishedOffsets.of([1, 2, 3, 7, 9])
    assert a.ranges == ((1, 4), (7, 8), (9, 10))
    assert 2 in a
    assert 4 not in a
    assert 9 in a
    assert 0 not in a
    assert "2" not in a
    assert len(a) == 5
    assert a.at_or_above(3) == FinishedOffsets.of([3, 7, 9])
    assert a.union(FinishedOffsets.of([4, 8, 20])) == FinishedOffsets.of([1, 2, 3, 4, 7, 8, 9, 20])
    assert not FinishedOffsets()


@pytest.mark.parametrize(
    "ranges", [((3, 3),), ((5, 8), (8, 9)), ((5, 8), (2, 3)), ((-1, 2),), ((0, 2**63 + 1),)]
)
def test_ranges_that_are_not_canonical_are_refused(ranges: tuple[tuple[int, int], ...]) -> None:
    with pytest.raises(ValueError, match="sorted, disjoint"):
        FinishedOffsets(ranges)
