"""One series of a pair (spot candles, perp candles, funding rates) from all its files:
found by name, every row checked as it streams past, files merged in time order,
cut to the run's window, gaps and odd spacing reported.

What is kept: a series of at most ``KEEP_ROWS`` rows as a list (of candles or
funding rates, as loaded); a longer candle series is not held: its replay columns
are spilled to a temporary file as they stream past (see columns.py).
"""

from __future__ import annotations

import heapq
import threading
import weakref
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import compress, count, islice, pairwise, repeat
from operator import add, attrgetter, ne, sub
from pathlib import Path
from typing import Generic, TypeVar

from orchestrator.market.columns import (
    CandleList,
    FundingList,
    SpillWriter,
    StreamedSeries,
)
from orchestrator.market.parsers import (
    DATA_TYPES,
    FUNDING_COLUMNS,
    KLINE_COLUMNS,
    FundingNotes,
    candle_parser,
    funding_parser,
)
from orchestrator.market.records import (
    HOUR_MS,
    Candle,
    DataError,
    DataMissing,
    FundingRate,
    Interval,
    duration,
    iso,
    lines,
    market_id,
    parse_interval,
    rows,
)
from orchestrator.market.rows import FileRows, MakeParser

# Candle rows held in memory by every loaded series of the process together (about
# 130 MiB): a series that does not fit in what is left is streamed from its files.
# The recorded data (BTC and ETH, 21 months of hourly candles) holds 61,000.
KEEP_ROWS = 200_000
_held = 0
_held_lock = threading.Lock()


def _room(limit: int) -> int:
    """How many rows a new series may hold: at most ``limit``, and what is left."""
    with _held_lock:
        return max(0, min(limit, KEEP_ROWS - _held))


def _hold(kept: CandleList) -> None:
    """Count ``kept`` as held until it is freed."""
    global _held
    with _held_lock:
        _held += len(kept)
    weakref.finalize(kept, _release, len(kept))


def _release(rows: int) -> None:
    global _held
    with _held_lock:
        _held -= rows


T = TypeVar("T", Candle, FundingRate)
Row = tuple[int, T, int, int]  # time ms, item, line, index of its file
# Rows in time order, of one file: times, items, lines, the index of the file
Rows = tuple[list[int], list[T], Sequence[int], int]
_close = attrgetter("close")
_time = attrgetter("time_ms")


class Files(Generic[T]):
    """The files of one series and how to read them."""

    def __init__(
        self,
        paths: list[Path],
        columns: tuple[str, ...],
        make_parser: MakeParser[T],
        notes: type[FundingNotes] | None = None,
    ) -> None:
        self.paths = paths
        self.columns = columns
        self.make_parser: MakeParser[T] = make_parser
        self.notes = notes

    def first_pass(self) -> list[tuple[FileRows[T], FundingNotes | None]]:
        found: list[tuple[FileRows[T], FundingNotes | None]] = []
        for path in self.paths:
            watch = None if self.notes is None else self.notes(path)
            found.append((FileRows(path, self.columns, self.make_parser, watch), watch))
        return found

    def merged_chunks(self, files: list[FileRows[T]]) -> Iterator[Rows[T]]:
        """``merged(files)`` a piece at a time: a single file's pieces as it reads them;
        several files' rows one at a time."""
        if len(files) == 1:
            for times, items, lines in files[0].chunks():
                yield times, items, lines, 0
            return
        for time_ms, item, line, index in self.merged(files):
            yield [time_ms], [item], (line,), index

    def merged(self, files: list[FileRows[T]] | None = None) -> Iterator[Row[T]]:
        """Every row of every file in time order; a row found again in a later file is
        that file's duplicate (recorded in ``files``, when given: the first pass)."""
        if files is not None and len(files) == 1:
            for time_ms, item, line in files[0]:
                yield time_ms, item, line, 0
            return
        if files is not None:
            for file in files:  # each file read through first: its own errors come first
                for _ in file:
                    pass
        fresh = [FileRows(path, self.columns, self.make_parser) for path in self.paths]
        streams = [_tagged(index, file) for index, file in enumerate(fresh)]
        prev: tuple[int, int, T, int] | None = None
        for row in heapq.merge(*streams, key=lambda r: (r[0], r[1])):
            time_ms, index, item, line = row
            if prev is not None and prev[0] == time_ms:
                if prev[2] != item:
                    raise DataError(
                        f"{self.paths[prev[1]]}:{prev[3]} and {self.paths[index]}:{line}: "
                        f"two different rows for {iso(time_ms)}"
                    )
                if files is not None:
                    files[index].duplicates.append(line)
                continue
            prev = row
            yield time_ms, item, line, index

    def window(self, start_ms: int | None, end_ms: int | None) -> Iterator[T]:
        """The items within the window, read again (for a series that is not held)."""
        for time_ms, item, _, _ in self.merged():
            if start_ms is not None and time_ms < start_ms:
                continue
            if end_ms is not None and time_ms >= end_ms:
                return
            yield item


def _tagged(index: int, file: FileRows[T]) -> Iterator[tuple[int, int, T, int]]:
    for time_ms, item, line in file:
        yield time_ms, index, item, line


class Loader:
    def __init__(
        self,
        data_dir: Path,
        venue: str,
        pair: str,
        start_ms: int | None,
        end_ms: int | None,
        keep_rows: int = KEEP_ROWS,
    ) -> None:
        self.data_dir = data_dir
        self.venue = venue
        self.pair = pair  # the spot symbol names the pair to the download command
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.keep_rows = keep_rows
        self.warnings: list[str] = []

    def candles(self, symbol: str, kind: str) -> CandleList | StreamedSeries[Candle]:
        market = market_id(symbol)
        noun = f"{kind} candles"
        paths, interval = self._candle_files(symbol, kind, noun)
        files = Files(paths, KLINE_COLUMNS, candle_parser(market, DATA_TYPES[kind], interval), None)
        return self._candles(symbol, noun, files, interval)

    def funding(self, symbol: str) -> FundingList:
        market = market_id(symbol)
        noun = "funding rates"
        paths = self._paths(symbol, "funding_rates", noun)
        files = Files(paths, FUNDING_COLUMNS, funding_parser(market), FundingNotes)
        first_pass = files.first_pass()
        kept = FundingList()
        times: list[int] = []  # of every row of every file, for the usual spacing
        where: list[tuple[int, int]] = []  # (file, line) of each row kept
        for chunk, items, numbers, index in files.merged_chunks([f for f, _ in first_pass]):
            times += chunk
            start, end = self._cut(chunk)
            if start < end:
                kept += items[start:end]
                where += zip(repeat(index), numbers[start:end])
        self._refuse_empty(symbol, noun, times[0], times[-1], not kept)
        # Funding every 8 h on Bybit for these pairs, but not for every market.
        spacings = Counter(b - a for a, b in pairwise(times))
        step = spacings.most_common(1)[0][0] if spacings else 0
        gaps: list[str] = []
        if step:
            settled = list(map(_time, kept))
            spaced = map(sub, islice(settled, 1, None), settled)
            for i in compress(count(1), map(ne, spaced, repeat(step))):  # a gap's, or odd
                gap = self._gap(settled[i - 1], settled[i], step, "funding settlement")
                if gap:
                    gaps.append(f"{paths[where[i][0]].name}:{where[i][1]}: {gap}")
        self._report(first_pass, gaps)
        if step and kept:
            self._check_coverage(noun, kept[0].time_ms, kept[-1].time_ms, step)
        return kept

    # -- candles

    def _candle_files(self, symbol: str, kind: str, noun: str) -> tuple[list[Path], Interval]:
        prefix = f"{self.venue}_{market_id(symbol)}_{kind}_"
        by_interval: dict[str, tuple[Interval, list[Path]]] = {}
        for path in self._glob(f"{prefix}*"):
            interval = parse_interval(path.name[len(prefix) :].split("_", 1)[0])
            if interval is not None:
                by_interval.setdefault(interval.text, (interval, []))[1].append(path)
        if not by_interval:
            raise self._missing(symbol, noun)
        if len(by_interval) > 1:
            named = "; ".join(
                f"{text}: {', '.join(p.name for p in paths)}"
                for text, (_, paths) in by_interval.items()
            )
            raise DataError(
                f"{noun} for {symbol} in {self.data_dir} come in more than one interval "
                f"({named}): keep the files of one"
            )
        interval, paths = next(iter(by_interval.values()))
        return paths, interval

    def _candles(
        self, symbol: str, noun: str, files: Files[Candle], interval: Interval
    ) -> CandleList | StreamedSeries[Candle]:
        step = interval.ms
        first_pass = files.first_pass()
        kept = CandleList()
        kept.interval_ms = step
        spill: SpillWriter | None = None
        gaps: list[str] = []
        first_ms = last_ms = -1
        first: Candle | None = None
        last: Candle | None = None
        room = _room(self.keep_rows)
        try:
            for times, items, numbers, index in files.merged_chunks([f for f, _ in first_pass]):
                if first_ms < 0:
                    first_ms = times[0]
                last_ms = times[-1]
                start, end = self._cut(times)
                if start >= end:
                    continue
                if start or end < len(times):
                    times, items, numbers = times[start:end], items[start:end], numbers[start:end]
                if last is None:
                    first = items[0]
                    before = times[0] - step
                else:
                    before = last.open_time_ms
                # The times are strictly increasing multiples of the step: there is no
                # gap when they span exactly their count of steps.
                if times[-1] - before != len(times) * step:
                    name = files.paths[index].name
                    prev = None if last is None else last.open_time_ms
                    for time_ms, line in zip(times, numbers, strict=True):
                        gap = (
                            None if prev is None else self._gap(prev, time_ms, step, interval.noun)
                        )
                        if gap:
                            gaps.append(f"{name}:{line}: {gap}")
                        prev = time_ms
                last = items[-1]
                if spill is not None:
                    spill.add_many(list(map(add, times, repeat(step))), list(map(_close, items)))
                    continue
                kept += items
                if len(kept) > room:
                    spill = SpillWriter()
                    spill.add_many([c.open_time_ms + step for c in kept], list(map(_close, kept)))
                    kept = CandleList()
            self._refuse_empty(symbol, noun, first_ms, last_ms, last is None)
        except BaseException:
            if spill is not None:
                spill.discard()
            raise
        self._report(first_pass, gaps)
        assert first is not None
        assert last is not None
        self._check_coverage(noun, first.open_time_ms, last.open_time_ms, step)
        if spill is None:
            _hold(kept)
            return kept
        since, until = self.start_ms, self.end_ms
        return StreamedSeries(
            lambda: files.window(since, until), first, last, spill.finish(), interval_ms=step
        )

    # -- shared

    def _cut(self, times: list[int]) -> tuple[int, int]:
        """Where the rows within the window begin and end among these (in time order)."""
        start = 0 if self.start_ms is None else bisect_left(times, self.start_ms)
        end = len(times) if self.end_ms is None else bisect_left(times, self.end_ms)
        return start, end

    def _glob(self, pattern: str) -> list[Path]:
        return sorted(
            path
            for path in self.data_dir.glob(pattern)
            if path.name.endswith((".csv", ".csv.gz")) and path.is_file()
        )

    def _paths(self, symbol: str, part: str, noun: str) -> list[Path]:
        paths = self._glob(f"{self.venue}_{market_id(symbol)}_{part}_*")
        if not paths:
            raise self._missing(symbol, noun)
        return paths

    def _missing(self, symbol: str, noun: str) -> DataMissing:
        folder = "" if self.data_dir.is_dir() else " (no such folder)"
        return self._missing_data(f"no {noun} for {symbol} in {self.data_dir}{folder}")

    def _refuse_empty(self, symbol: str, noun: str, first: int, last: int, empty: bool) -> None:
        if empty:
            raise self._missing_data(
                f"no {noun} for {symbol} in {self.data_dir}{self._window()} (the files hold "
                f"{iso(first)} to {iso(last)})"
            )

    def _missing_data(self, what: str) -> DataMissing:
        return DataMissing(what, [self.pair], self.data_dir, self.start_ms, self.end_ms)

    def _report(
        self, first_pass: list[tuple[FileRows[T], FundingNotes | None]], gaps: list[str]
    ) -> None:
        for file, notes in first_pass:
            if file.duplicates:
                found = sorted(file.duplicates)
                self.warnings.append(
                    f"{file.path.name}: dropped {rows(found, 'duplicate row')} ({lines(found)})"
                )
            if notes is not None:
                self.warnings.extend(notes.notes())
        self.warnings.extend(gaps)

    @staticmethod
    def _gap(before: int, time_ms: int, step: int, unit: str) -> str | None:
        gap = time_ms - before
        if gap == step:
            return None
        if gap % step == 0:
            missing = gap // step - 1
            span = iso(before + step)
            if missing > 1:
                span += f" to {iso(time_ms - step)}"
            return f"{missing} missing {unit}{'s' * (missing > 1)} ({span})"
        return (
            f"{iso(time_ms)} comes {duration(gap, step)} after the previous row "
            f"({iso(before)}); the usual spacing is {duration(step, step)}"
        )

    def _check_coverage(self, noun: str, first_ms: int, last_ms: int, step: int) -> None:
        if self.start_ms is not None and first_ms - self.start_ms >= step:
            self.warnings.append(
                f"{noun} start at {iso(first_ms)}, after the window's start {iso(self.start_ms)}"
            )
        if self.end_ms is not None and self.end_ms - last_ms > step:
            self.warnings.append(
                f"{noun} end at {iso(last_ms)}, before the window's end {iso(self.end_ms)}"
            )

    def _window(self) -> str:
        since = "" if self.start_ms is None else f" from {iso(self.start_ms)}"
        until = "" if self.end_ms is None else f" until {iso(self.end_ms)}"
        return since + until


__all__ = ["HOUR_MS", "KEEP_ROWS", "Files", "Loader"]
