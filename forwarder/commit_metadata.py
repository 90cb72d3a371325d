"""Commit metadata: the offsets above a committed one that are already finished, as a short ASCII string.

A partition is committed up to its lowest unfinished offset; the messages after it that did finish
would be sent again by the next owner. The commit's metadata string carries them, so that a new owner
can skip them (issue #14). This module is only the codec; the tracker and the committer use it.

Format (``FORMAT_VERSION`` 1): a four-character tag, then standard base64 of a binary body.

- tag: ``fw`` (this project), the version digit ``1``, and the encoding, ``R`` (runs) or ``B`` (bitset);
- body: the base offset as an unsigned LEB128 varint, the encoding's payload, then a CRC-32 (4 bytes,
  big-endian) of the tag's bytes and everything before it;
- ``R`` payload: varints alternating *gap* (offsets not finished) and *run* (offsets finished), starting
  with the gap after the base offset (possibly 0) and ending with a run; every other number is >= 1;
- ``B`` payload: one bit per offset from ``base + 1`` on, least significant bit first in each byte; the
  last byte is not zero.

The base offset is inside the body so that metadata read back next to a different committed offset
(reset by a tool, or written by a replica with an older commit) is refused instead of shifted.

Contract:
- :func:`encode` returns the shorter encoding, or ``""`` for an empty set, or ``None`` when neither fits
  in ``budget`` characters (then commit the plain offset and count the miss). For a broker whose
  ``offset.metadata.max.bytes`` is ``m``, pass ``m - 1`` (see ``DEFAULT_BUDGET``).
- :func:`decode` returns exactly the encoded set for what :func:`encode` produced with the same base, an
  empty set for ``""``, and raises :class:`UnreadableMetadata` for anything else: another tool's
  metadata, an unknown version or encoding, a wrong base, a bad checksum, a non-canonical body. It never
  returns a set that was not encoded.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

FORMAT_VERSION = 1
# The broker's offset.metadata.max.bytes (4,096 by default) less one: confluent-kafka sends the string
# with its NUL terminator, and the broker counts it (tests/integration/test_commit_metadata_kafka.py).
DEFAULT_BUDGET = 4095
_MAGIC = "fw"
_TAG_RUNS = f"{_MAGIC}{FORMAT_VERSION}R"
_TAG_BITSET = f"{_MAGIC}{FORMAT_VERSION}B"
_TAG_LEN = len(_TAG_RUNS)
_CRC_LEN = 4
_OFFSET_END = 1 << 63  # Kafka offsets are int64
_ONES = re.compile("1+")

Range = tuple[int, int]


class UnreadableMetadata(ValueError):
    """Commit metadata that is not a finished set this codec wrote for this committed offset."""


@dataclass(frozen=True, slots=True)
class FinishedOffsets:
    """A set of offsets as sorted, disjoint, non-touching half-open ranges ``[start, end)``.

    Offsets are Kafka offsets (>= 0). Membership is O(log ranges); ``len`` is the number of offsets.
    """

    ranges: tuple[Range, ...] = ()

    def __post_init__(self) -> None:
        prev_end = -1
        for start, end in self.ranges:
            if not (prev_end < start < end <= _OFFSET_END):
                raise ValueError(f"ranges must be sorted, disjoint, not touching and non-empty: {start, end}")
            prev_end = end

    @classmethod
    def of(cls, offsets: Iterable[int]) -> FinishedOffsets:
        """The set of the given offsets (any order, duplicates allowed)."""
        return cls(tuple(_ranges_of_sorted(sorted(set(offsets)))))

    @classmethod
    def from_sorted(cls, offsets: Iterable[int]) -> FinishedOffsets:
        """The set of offsets given in strictly increasing order (not checked: the tracker's order)."""
        return cls(tuple(_ranges_of_sorted(offsets)))

    def __contains__(self, offset: object) -> bool:
        if not isinstance(offset, int):
            return False
        i = bisect_right(self.ranges, (offset, _OFFSET_END + 1)) - 1
        return i >= 0 and self.ranges[i][0] <= offset < self.ranges[i][1]

    def __len__(self) -> int:
        return sum(end - start for start, end in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __iter__(self) -> Iterator[int]:
        for start, end in self.ranges:
            yield from range(start, end)

    def at_or_above(self, offset: int) -> FinishedOffsets:
        """The offsets >= ``offset``."""
        out = [(max(start, offset), end) for start, end in self.ranges if end > offset]
        return FinishedOffsets(tuple(out))

    def union(self, other: FinishedOffsets) -> FinishedOffsets:
        """Both sets together."""
        merged: list[Range] = []
        for start, end in sorted(self.ranges + other.ranges):
            if merged and start <= merged[-1][1]:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return FinishedOffsets(tuple(merged))


def _ranges_of_sorted(offsets: Iterable[int]) -> Iterator[Range]:
    it = iter(offsets)
    for first in it:
        start = end = first
        for o in it:
            if o == end + 1:
                end = o
            else:
                yield (start, end + 1)
                start = end = o
        yield (start, end + 1)


def max_body_bytes(budget: int) -> int:
    """Most body bytes whose tag plus base64 fit in ``budget`` characters."""
    return max(0, (budget - _TAG_LEN) // 4 * 3)


def encode(base: int, finished: FinishedOffsets, budget: int = DEFAULT_BUDGET) -> str | None:
    """Metadata for a commit at ``base`` naming the ``finished`` offsets (all must be > ``base``).

    Returns ``""`` for an empty set, the shorter of the run-length and bitset encodings otherwise, or
    ``None`` when neither fits in ``budget`` characters. Raises ``ValueError`` for an offset <= ``base``
    or a negative ``base``: the committed offset is the lowest unfinished one, never finished.
    """
    if not 0 <= base < _OFFSET_END:
        raise ValueError(f"base offset {base} is not an offset")
    ranges = finished.ranges
    if not ranges:
        return ""
    if ranges[0][0] <= base:
        raise ValueError(f"offset {ranges[0][0]} is not above the committed offset {base}")
    limit = max_body_bytes(budget) - _CRC_LEN - _varint_len(base)
    if limit <= 0:
        return None
    first = base + 1
    span = ranges[-1][1] - first
    bitset_len = (span + 7) // 8
    # Each range costs at least two bytes of runs; past the limit on both, do not build either.
    if bitset_len > limit and 2 * len(ranges) > limit:
        return None
    # Runs cost at least two bytes a range: when that already loses to the bitset, do not build them.
    runs = _runs_payload(first, ranges, min(limit, bitset_len)) if 2 * len(ranges) <= bitset_len else None
    if runs is not None and len(runs) <= bitset_len:
        return _wrap(_TAG_RUNS, base, runs)
    if bitset_len <= limit:
        return _wrap(_TAG_BITSET, base, _bitset_payload(first, ranges, span))
    return None


def decode(metadata: str, base: int) -> FinishedOffsets:
    """The finished offsets that ``metadata``, read back with a commit at ``base``, names.

    ``""`` is an empty set (a plain commit). Anything this codec did not write for ``base`` raises
    :class:`UnreadableMetadata` with the reason.
    """
    if metadata == "":
        return FinishedOffsets()
    tag = metadata[:_TAG_LEN]
    if tag not in (_TAG_RUNS, _TAG_BITSET):
        if tag.startswith(_MAGIC) and tag[2:3].isdigit() and tag[2:3] != str(FORMAT_VERSION):
            raise UnreadableMetadata(f"format version {tag[2:3]} is not {FORMAT_VERSION}")
        raise UnreadableMetadata(f"not this codec's metadata (starts {metadata[:8]!r})")
    try:
        body = base64.b64decode(metadata[_TAG_LEN:].encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise UnreadableMetadata(f"not base64: {exc}") from None
    if len(body) < _CRC_LEN + 1:
        raise UnreadableMetadata("too short")
    payload, crc = body[:-_CRC_LEN], body[-_CRC_LEN:]
    if zlib.crc32(tag.encode("ascii") + payload).to_bytes(_CRC_LEN, "big") != crc:
        raise UnreadableMetadata("checksum mismatch")
    written_base, pos = _read_varint(payload, 0)
    if not 0 <= base < _OFFSET_END:
        raise UnreadableMetadata(f"committed offset {base} is not an offset")
    if written_base != base:
        raise UnreadableMetadata(f"written for a commit at {written_base}, read with one at {base}")
    first = base + 1
    if tag == _TAG_RUNS:
        return FinishedOffsets(tuple(_decode_runs(payload, pos, first)))
    return FinishedOffsets(tuple(_decode_bitset(payload[pos:], first)))


def _wrap(tag: str, base: int, payload: bytes) -> str:
    head = _varint(base) + payload
    crc = zlib.crc32(tag.encode("ascii") + head).to_bytes(_CRC_LEN, "big")
    return tag + base64.b64encode(head + crc).decode("ascii")


def _runs_payload(first: int, ranges: tuple[Range, ...], limit: int) -> bytes | None:
    out = bytearray()
    cursor = first
    for start, end in ranges:
        out += _varint(start - cursor)
        out += _varint(end - start)
        if len(out) > limit:
            return None
        cursor = end
    return bytes(out)


def _bitset_payload(first: int, ranges: tuple[Range, ...], span: int) -> bytes:
    # Build the bit string with str ops (C speed), most significant = highest offset, then to bytes.
    parts: list[str] = []
    cursor = first
    for start, end in ranges:
        parts.append("0" * (start - cursor))
        parts.append("1" * (end - start))
        cursor = end
    bits = "".join(parts)
    return int(bits[::-1], 2).to_bytes((span + 7) // 8, "little")


def _decode_runs(payload: bytes, pos: int, first: int) -> Iterator[Range]:
    cursor = first
    n = 0
    while pos < len(payload):
        gap, pos = _read_varint(payload, pos)
        if pos >= len(payload):
            raise UnreadableMetadata("runs end with a gap")
        run, pos = _read_varint(payload, pos)
        if (gap == 0 and n > 0) or run == 0:
            raise UnreadableMetadata("empty run or gap")
        start = cursor + gap
        cursor = start + run
        if cursor > _OFFSET_END:
            raise UnreadableMetadata("offsets past int64")
        n += 1
        yield (start, cursor)
    if n == 0:
        raise UnreadableMetadata("no runs")


def _decode_bitset(payload: bytes, first: int) -> Iterator[Range]:
    if not payload or payload[-1] == 0:
        raise UnreadableMetadata("bitset empty or not trimmed")
    bits = format(int.from_bytes(payload, "little"), "b")[::-1]
    for m in _ONES.finditer(bits):
        yield (first + m.start(), first + m.end())


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise UnreadableMetadata("truncated varint")
        byte = data[pos]
        pos += 1
        if shift >= 63 or (byte == 0 and shift > 0):
            raise UnreadableMetadata("varint too long or not minimal")
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
