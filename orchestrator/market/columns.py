"""What a replay reads of a series: the time of each event (a candle's close, a
settlement) and its value (the close, the rate), in time order.

A series short enough is kept in memory as loaded: a list of candles or funding
rates, whose columns (times, values) are made once and shared by every replay of
it. A long one is not held at all: while its files are checked, its columns are
written to a spill file (times as int64, values as their exact decimal text; in the
process's own folder, spill.py) that each replay streams a chunk at a time, and the
candles themselves are read again from the files only when something iterates them
(the venue, a rehearsal).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import IO, Protocol, TypeVar, cast, overload

from orchestrator.market.records import HOUR_MS, Candle, FundingRate
from orchestrator.market.spill import spill_folder

CHUNK_ROWS = 1024  # rows per chunk of a spill file (a replay holds one per series)
T = TypeVar("T", Candle, FundingRate)
Take = tuple[list[int], list[Decimal]]


class ColumnReader(Protocol):
    def peek(self) -> int | None:
        """The time of the next event, None at the end."""

    def take(self, until_ms: int) -> Take:
        """The times and values of the events before ``until_ms``, consumed."""


class Columns(Protocol):
    count: int

    def reader(self) -> ColumnReader: ...


class MemoryColumns:
    def __init__(self, times: list[int], values: list[Decimal]) -> None:
        self.times, self.values = times, values
        self.count = len(times)

    def reader(self) -> MemoryReader:
        return MemoryReader(self.times, self.values)


class MemoryReader:
    def __init__(self, times: list[int], values: list[Decimal]) -> None:
        self.times, self.values = times, values
        self.pos = 0

    def peek(self) -> int | None:
        return self.times[self.pos] if self.pos < len(self.times) else None

    def take(self, until_ms: int) -> Take:
        i = self.pos
        j = bisect_left(self.times, until_ms, i)
        self.pos = j
        return self.times[i:j], self.values[i:j]


class SpillWriter:
    """Columns written as they come, a chunk at a time, to a file in a folder of its
    own (deleted with the columns that read it, or when the process ends)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="series-", dir=spill_folder()))
        self.path = self.folder / "columns.bin"
        self._file: IO[bytes] = self.path.open("wb")
        self._times: list[int] = []
        self._values: list[Decimal] = []
        self.chunks: list[tuple[int, int]] = []  # (rows, bytes of text) per chunk
        self.count = 0

    def add(self, time_ms: int, value: Decimal) -> None:
        self._times.append(time_ms)
        self._values.append(value)
        if len(self._times) >= CHUNK_ROWS:
            self._flush()

    def add_many(self, times: list[int], values: list[Decimal]) -> None:
        """``add`` of each, in order (the same chunks)."""
        done = 0
        while done < len(times):
            take = CHUNK_ROWS - len(self._times)
            self._times += times[done : done + take]
            self._values += values[done : done + take]
            done += take
            if len(self._times) >= CHUNK_ROWS:
                self._flush()

    def _flush(self) -> None:
        if not self._times:
            return
        text = "\n".join(map(str, self._values)).encode("ascii")
        self._file.write(array("q", self._times).tobytes())
        self._file.write(text)
        self.chunks.append((len(self._times), len(text)))
        self.count += len(self._times)
        self._times, self._values = [], []

    def finish(self) -> SpilledColumns:
        self._flush()
        self._file.close()
        return SpilledColumns(self.folder, self.path, self.chunks, self.count)

    def discard(self) -> None:
        self._file.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class SpilledColumns:
    def __init__(self, folder: Path, path: Path, chunks: list[tuple[int, int]], count: int) -> None:
        self.path, self.chunks, self.count = path, chunks, count
        self._cleanup = weakref.finalize(self, shutil.rmtree, folder, True)

    def reader(self) -> SpillReader:
        return SpillReader(self)


class SpillReader:
    def __init__(self, columns: SpilledColumns) -> None:
        self._columns = columns  # keeps the file while it is read
        self._file: IO[bytes] | None = columns.path.open("rb")
        self._chunks = iter(columns.chunks)
        self._times: list[int] = []
        self._values: list[Decimal] = []
        self._pos = 0

    def _load(self) -> bool:
        if self._file is None:
            return False
        chunk = next(self._chunks, None)
        if chunk is None:
            self._file.close()
            self._file = None
            return False
        rows, size = chunk
        times = array("q")
        times.frombytes(self._file.read(8 * rows))
        text = self._file.read(size).decode("ascii")
        self._times, self._values, self._pos = times.tolist(), list(map(Decimal, text.split())), 0
        return True

    def peek(self) -> int | None:
        if self._pos >= len(self._times) and not self._load():
            return None
        return self._times[self._pos]

    def take(self, until_ms: int) -> Take:
        out_t: list[int] = []
        out_v: list[Decimal] = []
        while self._pos < len(self._times) or self._load():
            times, i = self._times, self._pos
            if times[-1] < until_ms:
                out_t += times[i:] if i else times
                out_v += self._values[i:] if i else self._values
                self._pos = len(times)
                continue
            j = bisect_left(times, until_ms, i)
            out_t += times[i:j]
            out_v += self._values[i:j]
            self._pos = j
            break
        return out_t, out_v


class CandleList(list[Candle]):
    """Loaded candles held in memory; their replay columns are made on first use."""

    interval_ms: int = HOUR_MS
    _columns: MemoryColumns | None = None

    @property
    def columns(self) -> MemoryColumns:
        if self._columns is None or self._columns.count != len(self):
            self._columns = packed(candle_columns(self))
        return self._columns


class FundingList(list[FundingRate]):
    """Loaded funding rates held in memory; their replay columns are made on first use."""

    _columns: MemoryColumns | None = None

    @property
    def columns(self) -> MemoryColumns:
        if self._columns is None or self._columns.count != len(self):
            self._columns = packed(funding_columns(self))
        return self._columns


def packed(columns: MemoryColumns) -> MemoryColumns:
    """The columns with their values copied side by side in memory, for the columns a
    loaded series keeps for every replay of it. A loaded value lies among its row's
    other fields (five Decimals a candle): a replay reading a column in order then missed
    the cache at nearly every value (measured: about a tenth of a replay's time, for
    about 110 bytes a row). ``v.copy_sign(v)`` is an exact copy (digits, exponent and
    sign), a new object."""
    return MemoryColumns(columns.times, [value.copy_sign(value) for value in columns.values])


class StreamedSeries(Sequence[T]):
    """A long series that is not held: its first and last items, its length, its replay
    columns (spilled), and its items read again from its files when iterated."""

    def __init__(
        self,
        read: Callable[[], Iterator[T]],
        first: T,
        last: T,
        columns: SpilledColumns,
        interval_ms: int = HOUR_MS,
    ) -> None:
        self._read: Callable[[], Iterator[T]] = read
        self._first: T = first
        self._last: T = last
        self.columns = columns
        self.interval_ms = interval_ms

    def __len__(self) -> int:
        return self.columns.count

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step != 1:
                return list(self)[index]
            return list(islice(self._read(), start, max(start, stop)))
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("series index out of range")
        if i == 0:
            return self._first
        if i == n - 1:
            return self._last
        return next(islice(self._read(), i, None))

    def __iter__(self) -> Iterator[T]:
        return self._read()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or len(other) != len(self):
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{len(self):,} rows from {self._first!r} to {self._last!r}, read from files>"


def as_list(series: CandleList | StreamedSeries[Candle]) -> list[Candle]:
    """A loaded candle series, typed as PairData holds it: its users index, slice and
    iterate it as a list, which a streamed series does too (reading its files)."""
    return cast(list[Candle], series)


def candle_columns(candles: Iterable[Candle]) -> MemoryColumns:
    rows = candles if isinstance(candles, list) else list(candles)
    return MemoryColumns([c.open_time_ms + c.interval_ms for c in rows], [c.close for c in rows])


def funding_columns(rates: Iterable[FundingRate]) -> MemoryColumns:
    rows = rates if isinstance(rates, list) else list(rates)
    return MemoryColumns([f.time_ms for f in rows], [f.rate for f in rows])


def columns_of(series: Sequence[Candle] | Sequence[FundingRate], *, candles: bool) -> Columns:
    """The replay columns of a loaded series, or made from any sequence of items."""
    found = getattr(series, "columns", None)
    if found is not None:
        return found  # type: ignore[no-any-return]
    if candles:
        return candle_columns(series)  # type: ignore[arg-type]
    return funding_columns(series)  # type: ignore[arg-type]
