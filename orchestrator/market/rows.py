"""Reading one recorded CSV file row by row: every row checked as it is read, exact
repeats dropped, nothing kept but what the caller keeps.

A row that cannot be right stops the read with a DataError naming the file and line.
Every value is bounded, so nothing absurd reaches the arithmetic of a run: times
from 2009 (no crypto market is older) to 2099, prices from 1e-12 to 1e12, volumes up
to 1e18, funding rates within +-1 (100 %) per settlement.

Two ways through a file, one result. The fast way reads the file in pieces of
``PIECE_CHARACTERS`` and checks each piece's rows together: its fields split at once,
each column converted at once (Decimal from the text, or from the file's texts met
before where they repeat; times compared as one text with those a step apart from the
first, or from a cache of the dates and times of day already read), the bounds checked
over the whole column (tests/test_rows_fast.py compares the two ways). It takes
only what csv.reader would read the same way (no quote, no lone carriage return, no
NUL, no field near the csv field limit, one plain gzip member). The careful way is
csv.reader, row by row: any piece the fast way does not take, and every row of it
after, is read that way; a piece whose rows are not all plainly right is checked row
by row, so that a row that cannot be right stops the read with the same message, at
the same line, either way.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import zlib
from collections.abc import Callable, Iterator, Sequence
from itertools import compress, count, islice
from operator import ge
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from orchestrator.market.records import (
    Candle,
    DataError,
    FundingRate,
    iso,
)

if TYPE_CHECKING:
    from _csv import Reader

# The fast way's pieces: characters of text (at most; a piece ends at a line's end).
# Far below csv's field limit (131,072 by default), so that no field can reach it.
PIECE_CHARACTERS = 1 << 15
_READ_BYTES = 1 << 14  # read from the file at a time (compressed, for a .gz file)

T = TypeVar("T", Candle, FundingRate)
# One piece of a file: the times, items and line numbers of its rows kept, in order.
Chunk = tuple[list[int], list[T], Sequence[int]]


class Parser(Protocol[T]):
    """A file's rows to items: one row (the careful way), or a piece's rows together."""

    def __call__(self, row: list[str]) -> tuple[int, T]:
        """The row's time and item; raises RowError saying what is wrong with it."""

    def fields(self, fields: list[str], rows: int) -> tuple[list[int], list[T], bool] | None:
        """The times and items of ``rows`` rows whose fields are ``fields``, row after
        row (each row's last field ends with a newline), and whether the times are
        known to increase; None unless every one is plainly right (then the rows are
        parsed one by one, to say what is wrong)."""


RowParser = Parser[T]
MakeParser = Callable[[dict[str, int]], Parser[T]]


class Watch(Protocol):
    """Sees every row kept: one at a time (the careful way), or a piece's at once."""

    def __call__(self, time: int, item: Any, line: int) -> None: ...

    def many(self, times: list[int], items: list[Any], lines: Sequence[int]) -> None:
        """``self(time, item, line)`` of each, in order."""


class RowError(Exception):
    """What is wrong with one row; the reader adds the file and line."""


class _Careful(Exception):
    """The fast way stops here: the careful way reads the file on from this line."""


class _Place(Generic[T]):
    """Where a read of one file stands: the last row kept, the lines read."""

    __slots__ = ("lines", "parse", "prev_item", "prev_line", "prev_time", "width")

    def __init__(self) -> None:
        self.lines = 0  # lines read and taken (the header's included)
        self.width = 0  # columns of the header (0: not read yet)
        self.parse: Parser[T] | None = None
        self.prev_time = self.prev_line = 0
        self.prev_item: T | None = None


class _Kept(Generic[T]):
    """Rows kept, as a chunk is made of them."""

    __slots__ = ("items", "lines", "times")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.items: list[T] = []
        self.lines: list[int] = []

    def chunk(self) -> Chunk[T]:
        return self.times, self.items, self.lines


class FileRows(Generic[T]):
    """One file's rows in order, each checked: iterating yields (time ms, item, line);
    ``chunks`` yields them a piece at a time.

    An exact repeat of the row before is dropped, its line kept in ``duplicates``;
    ``notes`` says what is odd but possible once the file has been read."""

    def __init__(
        self,
        path: Path,
        columns: tuple[str, ...],
        make_parser: MakeParser[T],
        watch: Watch | None = None,
    ) -> None:
        self.path = path
        self.columns = columns
        self.make_parser: MakeParser[T] = make_parser
        self.watch: Watch | None = watch  # sees every row kept
        self.duplicates: list[int] = []
        self.notes: list[str] = []

    def __iter__(self) -> Iterator[tuple[int, T, int]]:
        for times, items, numbers in self.chunks():
            yield from zip(times, items, numbers, strict=True)

    def chunks(self) -> Iterator[Chunk[T]]:
        """The rows kept, a piece of the file at a time: the fast way while it can, the
        careful way on from where it cannot (module docstring)."""
        place: _Place[T] = _Place()
        try:
            yield from self._fast(place)
        except _Careful:
            yield from self._careful(place)
            return
        if place.prev_item is None:
            raise DataError(f"{self.path}:1: no rows after the header")

    # -- the careful way: csv.reader, row by row

    def _careful(self, place: _Place[T]) -> Iterator[Chunk[T]]:
        path = self.path
        reader = None
        try:
            with open_text(path) as handle:
                reader = csv.reader(handle)
                yield from self._rows(reader, place)
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
            if reader is None:
                raise DataError(f"{path}: cannot read the file: {exc}") from exc
            # csv counts the line it failed to parse; a failed read has not counted its line yet.
            line = reader.line_num + (0 if isinstance(exc, csv.Error) else 1)
            raise DataError(f"{path}:{line}: cannot read the file: {exc}") from exc

    def _rows(self, reader: Reader, place: _Place[T]) -> Iterator[Chunk[T]]:
        if place.parse is None:
            header = next(reader, None)
            if header is None:
                expected = ",".join(self.columns)
                raise DataError(f"{self.path}:1: the file is empty; expected the header {expected}")
            self._header(header, place)
        else:  # the lines the fast way took: plain lines, one row each
            for _ in islice(reader, place.lines):
                pass
        kept: _Kept[T] = _Kept()
        for row in reader:
            # the row's last line: a quoted field may span several
            self._take(row, reader.line_num, place, kept)
            if len(kept.times) >= 1024:
                yield kept.chunk()
                kept = _Kept()
        if kept.times:
            yield kept.chunk()
        if place.prev_item is None:
            raise DataError(f"{self.path}:1: no rows after the header")

    def _header(self, header: list[str], place: _Place[T]) -> None:
        path, columns = self.path, self.columns
        names = [name.strip() for name in header]
        missing = [name for name in columns if names.count(name) != 1]
        if missing:
            raise DataError(
                f"{path}:1: the header {','.join(names)!r} does not have each of "
                f"{', '.join(missing)} once; expected {','.join(columns)}"
            )
        place.width = len(names)
        place.parse = self.make_parser({name: names.index(name) for name in columns})
        place.lines = 1

    def _take(self, row: list[str], line: int, place: _Place[T], kept: _Kept[T]) -> None:
        """One row, checked, added to ``chunk`` unless it repeats the row before."""
        path, width, parse = self.path, place.width, place.parse
        assert parse is not None
        if len(row) != width:
            what = "a blank line" if not row else f"{len(row)} columns"
            raise DataError(f"{path}:{line}: {what} where the header has {width} columns")
        try:
            time_ms, item = parse(row)
        except RowError as exc:
            raise DataError(f"{path}:{line}: {exc}") from None
        self._keep(time_ms, item, line, place, kept)

    def _keep(self, time_ms: int, item: T, line: int, place: _Place[T], kept: _Kept[T]) -> None:
        path, prev_time = self.path, place.prev_time
        if place.prev_item is not None and time_ms <= prev_time:
            if time_ms < prev_time:
                raise DataError(
                    f"{path}:{line}: timestamp {iso(time_ms)} goes back from "
                    f"{iso(prev_time)} at line {place.prev_line}"
                )
            if item != place.prev_item:
                raise DataError(
                    f"{path}:{line}: timestamp {iso(time_ms)} repeats line {place.prev_line} "
                    "with different values"
                )
            self.duplicates.append(line)
            return
        if self.watch is not None:
            self.watch(time_ms, item, line)
        kept.times.append(time_ms)
        kept.items.append(item)
        kept.lines.append(line)
        place.prev_time, place.prev_item, place.prev_line = time_ms, item, line

    # -- the fast way: a piece of plain lines at a time

    def _fast(self, place: _Place[T]) -> Iterator[Chunk[T]]:
        limit = csv.field_size_limit()
        for text, n in _plain_pieces(self.path):
            if len(text) >= limit:
                raise _Careful
            if place.parse is None:
                end = text.index("\n")
                self._header(text[:end].split(",") if end else [], place)
                text = text[end + 2 :]
                n -= 1
                if not text:
                    continue
            yield self._piece(text, n, place)
        if place.parse is None:
            raise _Careful  # an empty file: the careful way says so

    def _piece(self, text: str, rows: int, place: _Place[T]) -> Chunk[T]:
        """The ``rows`` rows of ``text``: whole plain lines, each ending with a newline
        and a comma (``_plain_pieces``)."""
        parse, width = place.parse, place.width
        assert parse is not None
        fields = text.split(",")
        fields.pop()  # after the last newline
        first = place.lines + 1
        parsed = None
        # A newline ends the field before a comma: a field holds at most one. When the
        # rows newlines are in the rows fields that end a row's width, every row has
        # ``width`` fields, as csv.reader would split them.
        if len(fields) == rows * width and "".join(fields[width - 1 :: width]).count("\n") == rows:
            parsed = parse.fields(fields, rows)
        place.lines += rows
        if parsed is None:  # a row that is not plainly right: one by one, as csv reads it
            kept: _Kept[T] = _Kept()
            for line, cells in enumerate(text[:-2].split("\n,"), first):
                self._take(cells.split(",") if cells else [], line, place, kept)
            return kept.chunk()
        times, items, increasing = parsed
        numbers: Sequence[int] = range(first, first + rows)
        # Rows whose time is not after the row's before: exact repeats are dropped.
        repeats = (
            [] if increasing else list(compress(count(1), map(ge, times, islice(times, 1, None))))
        )
        if place.prev_item is not None and times[0] <= place.prev_time:
            repeats.insert(0, 0)
        if repeats:
            if not self._repeats(times, items, repeats, place):
                kept = _Kept()  # a time going back, or a repeat with other values
                for row in zip(times, items, numbers, strict=True):
                    self._keep(*row, place, kept)
                return kept.chunk()
            self.duplicates += [first + i for i in repeats]
            keep = [True] * rows
            for i in repeats:
                keep[i] = False
            times, items = list(compress(times, keep)), list(compress(items, keep))
            numbers = list(compress(numbers, keep))
        if self.watch is not None:
            self.watch.many(times, items, numbers)
        if times:
            place.prev_time, place.prev_item, place.prev_line = times[-1], items[-1], numbers[-1]
        return times, items, numbers

    @staticmethod
    def _repeats(times: list[int], items: list[T], repeats: list[int], place: _Place[T]) -> bool:
        """Whether each of these rows is an exact repeat of the row before it."""
        for i in repeats:
            before = (place.prev_time, place.prev_item) if i == 0 else (times[i - 1], items[i - 1])
            if (times[i], items[i]) != before:
                return False
        return True


def _plain_pieces(path: Path) -> Iterator[tuple[str, int]]:
    """The file's text in pieces of whole lines, and their count: each line ending with
    a newline and a comma instead of its end of line (``\\n`` or ``\\r\\n``; a missing
    last one added), so that the piece splits at commas into its rows' fields, each
    row's last one ending with the newline. Raises _Careful where csv.reader might read it otherwise
    than split at commas and newlines, or where the read fails (the careful way says
    how)."""
    try:
        raw = path.open("rb")
    except OSError:
        raise _Careful from None
    with raw:
        gz = path.name.endswith(".gz")
        inflate = zlib.decompressobj(31) if gz else None
        decode = codecs.getincrementaldecoder("utf-8-sig")().decode
        tail = ""
        done = False
        while not done:
            try:
                if inflate is None:
                    data = raw.read(_READ_BYTES)
                    done = not data
                elif inflate.eof:
                    if inflate.unused_data or raw.read(1):
                        raise _Careful  # another gzip member, or bytes after the first
                    data, done = b"", True
                else:
                    block = inflate.unconsumed_tail or raw.read(_READ_BYTES)
                    if not block:
                        raise _Careful  # cut short
                    data = inflate.decompress(block, PIECE_CHARACTERS)
                text = tail + decode(data, done)
            except (OSError, zlib.error, UnicodeDecodeError):
                raise _Careful from None
            if done and text and not text.endswith("\n"):
                text += "\n"
            end = text.rfind("\n") + 1
            if not end:
                tail = text
                continue
            text, tail = text[:end], text[end:]
            if "\r" in text:
                text = text.replace("\r\n", "\n")  # some lines may end with \n alone
                if "\r" in text:
                    raise _Careful
            size = len(text)
            text = text.replace("\n", "\n,")  # a character more a line
            if '"' in text or "\x00" in text:
                raise _Careful
            yield text, len(text) - size
        if tail:
            raise _Careful


def open_text(path: Path) -> IO[str]:
    # utf-8-sig: a file saved by a spreadsheet starts with a byte-order mark.
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")
