"""A run's sampled curves (hourly equity, each pair's PnL), exact and compact.

A curve is a sequence of (time ms, Decimal) samples. Times are kept as int64; the
values as Decimal objects until ``compact_after`` of them have gathered, then as
their exact text (Decimal's own notation, which reads back to the same Decimal,
exponent and sign included), a block at a time: about 20 bytes a sample instead
of a tuple, an int and a Decimal (about 180). Reading a sample gives back the very
value that was appended; nothing passes through a float.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import overload

NO_SAMPLE = -(2**62)  # ``last_ms`` of an empty curve: every time is an hour after it


class Curve(Sequence[tuple[int, Decimal]]):
    """Samples appended with ``append``; curves sampled at the same times may follow
    one (``follow``): they share its times and get only their values (``add``), before
    it gets its own, and are compacted with it."""

    def __init__(self, compact_after: int = 16_384) -> None:
        self.compact_after = max(1, compact_after)
        self.times = array("q")
        self.last_ms = NO_SAMPLE
        self._followers: list[Curve] = []
        self._raw: list[Decimal] = []  # the newest values, not yet compacted
        self._blocks: list[bytes] = []  # older values as text, one line each
        self._starts: list[int] = []  # index of each block's first value
        self._compacted = 0
        self._decoded: tuple[int, list[Decimal]] = (-1, [])  # the last block read

    def append(self, time_ms: int, value: Decimal) -> None:
        self.times.append(time_ms)
        self.last_ms = time_ms
        raw = self._raw
        raw.append(value)
        if len(raw) >= self.compact_after:
            self.compact()

    def follow(self) -> Curve:
        """A curve sampled at this one's times."""
        follower = Curve(self.compact_after)
        follower.times = self.times
        self._followers.append(follower)
        return follower

    def add(self, value: Decimal) -> None:
        """A follower's value at the time its leader is about to get."""
        self._raw.append(value)

    def compact(self) -> None:
        """Store the values gathered so far as text (and the followers')."""
        for follower in self._followers:
            follower.compact()
        if not self._raw:
            return
        self._starts.append(self._compacted)
        self._blocks.append("\n".join(map(str, self._raw)).encode("ascii"))
        self._compacted += len(self._raw)
        self._raw = []

    def __len__(self) -> int:
        return len(self.times)

    def value(self, index: int) -> Decimal:
        if index >= self._compacted:
            return self._raw[index - self._compacted]
        block = bisect_right(self._starts, index) - 1
        return self._block(block)[index - self._starts[block]]

    def _block(self, block: int) -> list[Decimal]:
        if self._decoded[0] != block:
            self._decoded = (block, list(map(Decimal, self._blocks[block].decode().split())))
        return self._decoded[1]

    @overload
    def __getitem__(self, index: int) -> tuple[int, Decimal]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[int, Decimal]]: ...

    def __getitem__(self, index: int | slice) -> tuple[int, Decimal] | list[tuple[int, Decimal]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("curve index out of range")
        return self.times[i], self.value(i)

    def values(self) -> Iterator[Decimal]:
        """Every value in order, a block at a time."""
        for block in range(len(self._blocks)):
            yield from map(Decimal, self._blocks[block].decode().split())
        yield from self._raw

    def __iter__(self) -> Iterator[tuple[int, Decimal]]:
        return zip(self.times, self.values(), strict=True)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or len(other) != len(self):
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if not self:
            return "Curve([])"
        return f"Curve({len(self):,} samples, {self[0]!r} ... {self[-1]!r})"
