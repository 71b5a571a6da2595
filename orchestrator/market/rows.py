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
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from itertools import compress, count, filterfalse, islice, repeat
from operator import add, attrgetter, ge, itemgetter, le, lt, mod, ne
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from orchestrator.market.records import (
    DAY_MS,
    END_MS,
    END_YEAR,
    EPOCH,
    FIRST_MS,
    FIRST_YEAR,
    HOUR_MS,
    MINUTE_MS,
    ONE_MS,
    Candle,
    DataError,
    FundingRate,
    Interval,
    iso,
    lines,
    market_id,
    rows,
    shown,
)

if TYPE_CHECKING:
    from _csv import Reader

KLINE_COLUMNS = (
    "timestamp",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "source",
    "symbol",
    "data_type",
    "turnover",
)
FUNDING_COLUMNS = ("funding_timestamp", "funding_rate", "symbol", "source")
PRICE_FIELDS = ("open", "high", "low", "close", "volume")
DATA_TYPES = {"spot": "spot", "perp": "futures"}  # file kind -> its rows' data_type
_MAX_STAMP_DIGITS = 16  # int() refuses over 4,300 digits; 13 is the width of ms until 2286
_PRICE_MIN, _PRICE_MAX = Decimal("1e-12"), Decimal("1e12")
_VOLUME_MAX = Decimal("1e18")
# Funding: a fraction per settlement. Bybit caps it at a few percent (per symbol);
# 100 % would wipe out the position. Below 1e-12 is no venue's quote (Bybit: 8 decimals).
_RATE_MAX = Decimal(1)
_RATE_PLAUSIBLE = Decimal("0.05")
_RATE_MIN = Decimal("1e-12")
_NUMBER = re.compile(r"\s*[-+]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][-+]?\d+)?\s*")

_KNOWN_MAX = 1 << 16  # texts a file's candle parser keeps with their Decimals (at most)
_KNOWN_WAIT = 16  # pieces read without them, once they did not pay

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


def time_ms(text: str) -> int:
    """Epoch milliseconds of an ISO-8601 time with an offset, or of epoch milliseconds."""
    if text.isascii() and text.isdigit():
        # Epoch seconds (10 digits) fall before 2009 as milliseconds, microseconds after 2099.
        if len(text) > _MAX_STAMP_DIGITS or not FIRST_MS <= int(text) < END_MS:
            raise ValueError(
                f"timestamp {shown(text, quote=False)} is not epoch milliseconds of a "
                f"plausible date ({FIRST_YEAR} to {END_YEAR - 1})"
            )
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"timestamp {shown(text)} is neither ISO-8601 (2024-01-01T08:00:00Z) nor "
            "epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone: write UTC as {text}Z")
    # The year first: year 1 at +01:00 cannot even be turned into UTC.
    if not FIRST_YEAR - 1 <= moment.year <= END_YEAR or not (
        FIRST_MS <= (ms := (moment - EPOCH) // ONE_MS) < END_MS
    ):
        raise ValueError(
            f"timestamp {text!r} is outside {FIRST_YEAR} to {END_YEAR - 1}: "
            "not a time of market data"
        )
    return ms


def _check_symbol(symbol: str, market: str) -> None:
    if market_id(symbol) != market:
        raise RowError(f"symbol {symbol!r} is another market than {market}")


# The fast way's times: ISO-8601 of the usual shape (``2024-01-01T08:00:00Z``) read by
# their date and their time of day, each met once (a day of a series repeats its date
# in every row, every day its times of day). A date is kept only when the shape is
# exactly YYYY-MM-DD, a real day in 2009 to 2099; a time only when it is exactly
# Thh:mm:ssZ (or +00:00), h < 24, m < 60, s < 60: then time_ms reads date + time as
# the sum of the two (tests/test_recorded_data.py checks it). Both stay small: at most
# the days of 2009 to 2099, and the seconds of a day (twice).
_DAYS: dict[str, int] = {}
_CLOCK: dict[str, int] = {}
_DAY_SHAPE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_CLOCK_SHAPE = re.compile(r"T(\d{2}):(\d{2}):(\d{2})(?:Z|\+00:00)", re.ASCII)
_DATE_PART, _CLOCK_PART = itemgetter(slice(0, 10)), itemgetter(slice(10, None))
_WIDE_STAMP = len("2024-01-01T00:00:00+00:00")


def _learn(stamps: list[str]) -> None:
    for date in set(map(_DATE_PART, stamps)) - _DAYS.keys():
        found = _DAY_SHAPE.fullmatch(date)
        if found is None:
            continue
        try:
            day = datetime(int(found[1]), int(found[2]), int(found[3]), tzinfo=EPOCH.tzinfo)
        except ValueError:
            continue
        ms = (day - EPOCH) // ONE_MS
        if FIRST_MS <= ms < END_MS:
            _DAYS[date] = ms
    for clock in set(map(_CLOCK_PART, stamps)) - _CLOCK.keys():
        found = _CLOCK_SHAPE.fullmatch(clock)
        if found is not None:
            h, m, sec = int(found[1]), int(found[2]), int(found[3])
            if h < 24 and m < 60 and sec < 60:
                _CLOCK[clock] = h * HOUR_MS + m * MINUTE_MS + sec * 1000


def _times(stamps: list[str]) -> list[int] | None:
    """Epoch milliseconds of every stamp, as time_ms reads each; None unless every one
    is of a shape read here and right (then time_ms says what is wrong)."""
    for attempt in range(2):
        try:
            return list(
                map(
                    add,
                    map(_DAYS.__getitem__, map(_DATE_PART, stamps)),
                    map(_CLOCK.__getitem__, map(_CLOCK_PART, stamps)),
                )
            )
        except KeyError:
            if attempt or max(map(len, stamps)) > _WIDE_STAMP:
                return None
            _learn(stamps)
    return None


# The usual piece of a series: times one step apart, written alike. Its stamps are
# compared, all at once, with the text of the times they should be (a day of stamps per
# step and suffix, ``_PLACE`` where the date goes); equal, they are those times, as
# _times would read them.
_PLACE = "\x00"
_SUFFIXES = ("Z", "+00:00")
_DAY_TEXTS: dict[tuple[int, str], str] = {}
_DATES: dict[int, str] = {}
# Days of stamps with their date, per step of an hour or more (at most 24 stamps a
# day), of the days met lately.
_DAYS_WRITTEN: dict[tuple[int, str, int], str] = {}
_DAYS_WRITTEN_MAX = 4096


def _day_text(step: int, suffix: str) -> str:
    found = _DAY_TEXTS.get((step, suffix))
    if found is None:
        found = _DAY_TEXTS[(step, suffix)] = "".join(
            f"{_PLACE}T{ms // HOUR_MS:02d}:{ms // MINUTE_MS % 60:02d}:{ms // 1000 % 60:02d}"
            f"{suffix},"
            for ms in range(0, DAY_MS, step)
        )
    return found


def _date(day_ms: int) -> str:
    found = _DATES.get(day_ms)
    if found is None:
        found = _DATES[day_ms] = datetime.fromtimestamp(day_ms // 1000, EPOCH.tzinfo).strftime(
            "%Y-%m-%d"
        )
    return found


def _written(step: int, suffix: str, day: int, first: int, end: int) -> str:
    """The stamps ``first`` to ``end`` (excluded) of a day, each with its comma."""
    if step < HOUR_MS:  # only those of a day's many
        template = _day_text(step, suffix)
        size = len(template) * step // DAY_MS
        return template[first * size : end * size].replace(_PLACE, _date(day))
    key = (step, suffix, day)
    found = _DAYS_WRITTEN.get(key)
    if found is None:
        if len(_DAYS_WRITTEN) >= _DAYS_WRITTEN_MAX:
            _DAYS_WRITTEN.clear()
        found = _DAYS_WRITTEN[key] = _day_text(step, suffix).replace(_PLACE, _date(day))
    if first or end < DAY_MS // step:
        size = len(found) * step // DAY_MS
        return found[first * size : end * size]
    return found


def _regular_times(stamps: list[str], step: int) -> list[int] | None:
    """The times of stamps ``step`` apart, each written as the first
    (``2024-01-01T08:00:00Z`` or ``+00:00``), as _times reads them; None unless they are
    exactly that (then _times reads them one by one)."""
    first = stamps[0]
    suffix = first[19:]
    if suffix not in _SUFFIXES or step < MINUTE_MS or DAY_MS % step or step % 1000:
        return None
    found = _times([first])
    if found is None:
        return None
    start = found[0]
    end = start + len(stamps) * step  # after the last
    if start % step or end - step >= END_MS:
        return None
    parts: list[str] = []
    day = start - start % DAY_MS
    at = start
    while at < end:
        until = min(end, day + DAY_MS)
        parts.append(_written(step, suffix, day, (at - day) // step, (until - day) // step))
        at = day = until
    written = ",".join(stamps)
    expected = parts[0] if len(parts) == 1 else "".join(parts)
    if len(expected) != len(written) + 1 or not expected.startswith(written):
        return None
    return list(range(start, end, step))


def _epoch_times(stamps: list[str]) -> list[int] | None:
    """Epoch milliseconds written as integers, as time_ms reads them; None unless all are."""
    if not (
        all(map(str.isascii, stamps))
        and all(map(str.isdigit, stamps))
        and max(map(len, stamps)) <= _MAX_STAMP_DIGITS
    ):
        return None
    found = list(map(int, stamps))
    return found if min(found) >= FIRST_MS and max(found) < END_MS else None


def _column(fields: list[str], index: int, width: int) -> list[str]:
    """One column of rows' fields (the last column's without its newline)."""
    found = fields[index::width]
    if index == width - 1:
        found = [cell[:-1] for cell in found]
    return found


class CandleParser:
    def __init__(self, market: str, data_type: str, interval: Interval, cols: dict[str, int]):
        self.market, self.data_type, self.interval = market, data_type, interval
        self.cols = cols
        self.pick = itemgetter(*(cols[name] for name in ("timestamp", *PRICE_FIELDS, "symbol")))
        self.pick_type = itemgetter(cols["data_type"])
        # The fast way's numbers: texts met in this file and their Decimals, used for
        # a column while at most half of a piece's texts in it are new (not for a
        # column of prices that seldom repeat, where looking them up costs more).
        self.known: dict[str, Decimal] = {}
        self.wait = [0, 0, 0, 0]  # per column: pieces to read before trying them again

    def _decimals(self, texts: list[str], column: int) -> list[Decimal]:
        """``Decimal(text)`` of each text: an equal Decimal, perhaps one made before."""
        if self.wait[column]:
            self.wait[column] -= 1
            return list(map(Decimal, texts))
        known = self.known
        if len(known) > _KNOWN_MAX:
            known.clear()
        new = set(texts).difference(known)
        if new:
            known.update(zip(new, map(Decimal, new), strict=True))
        if 2 * len(new) > len(texts):
            self.wait[column] = _KNOWN_WAIT
        return list(map(known.__getitem__, texts))

    def __call__(self, row: list[str]) -> tuple[int, Candle]:
        stamp, o_text, h_text, l_text, c_text, v_text, symbol = self.pick(row)
        try:
            t = time_ms(stamp)
            o, h, lo, c, v = (
                Decimal(o_text),
                Decimal(h_text),
                Decimal(l_text),
                Decimal(c_text),
                Decimal(v_text),
            )
            # NaN fails the comparisons (InvalidOperation), infinities the bounds;
            # a volume must not be signed (negative, or -0).
            ok = (
                _PRICE_MIN <= lo <= o <= h <= _PRICE_MAX
                and lo <= c <= h
                and v <= _VOLUME_MAX
                and not v.is_signed()
            )
        except (ValueError, ArithmeticError):
            ok = False
        if not ok:
            raise RowError(_candle_problem(stamp, (o_text, h_text, l_text, c_text, v_text)))
        interval = self.interval
        if t % interval.ms:
            raise RowError(f"open time {stamp} is not on {interval.boundary}")
        if symbol != self.market:
            _check_symbol(symbol, self.market)
        if self.pick_type(row) != self.data_type:
            raise RowError(
                f"data_type {self.pick_type(row)!r} in a file of {self.data_type!r} candles"
            )
        return t, Candle(t, o, h, lo, c, v, interval.ms)

    def fields(self, fields: list[str], rows: int) -> tuple[list[int], list[Candle], bool] | None:
        """The same checks as a row's, each over a column at once."""
        cols, width = self.cols, len(fields) // rows
        stamps = _column(fields, cols["timestamp"], width)
        step = self.interval.ms
        regular = _regular_times(stamps, step)  # then on the step: a multiple of it
        times = regular or _times(stamps) or _epoch_times(stamps)
        if times is None:
            return None
        if regular is None and any(map(mod, times, repeat(step))):
            return None
        for name, wanted in (("symbol", self.market), ("data_type", self.data_type)):
            if _column(fields, cols[name], width).count(wanted) != rows:
                return None
        texts = [_column(fields, cols[name], width) for name in PRICE_FIELDS]
        o_texts, _, _, c_texts, v_texts = texts
        try:
            highs, lows, closes, volumes = map(self._decimals, texts[1:], count())
            # An open is most often the close before it, as text: the same Decimal.
            opens = [Decimal(o_texts[0]), *islice(closes, rows - 1)]
            for i in compress(count(1), map(ne, islice(o_texts, 1, None), c_texts)):
                opens[i] = Decimal(o_texts[i])
            # NaN fails the comparisons (InvalidOperation), infinities the bounds;
            # a volume must not be signed (negative, or -0).
            ok = (
                min(lows) >= _PRICE_MIN
                and max(highs) <= _PRICE_MAX
                and all(map(le, lows, opens))
                and all(map(le, opens, highs))
                and all(map(le, lows, closes))
                and all(map(le, closes, highs))
                and max(volumes) <= _VOLUME_MAX
                # A Decimal is signed only when its text has a minus.
                and ("-" not in "".join(v_texts) or not any(map(Decimal.is_signed, volumes)))
            )
        except (ValueError, ArithmeticError):
            return None
        if not ok:
            return None
        candles = list(map(Candle, times, opens, highs, lows, closes, volumes, repeat(step)))
        return times, candles, regular is not None


def candle_parser(market: str, data_type: str, interval: Interval) -> MakeParser[Candle]:
    def make(cols: dict[str, int]) -> CandleParser:
        return CandleParser(market, data_type, interval, cols)

    return make


def _candle_problem(stamp: str, texts: tuple[str, ...]) -> str:
    """Why a candle row failed the combined check: the first rule it breaks."""
    try:
        time_ms(stamp)
    except ValueError as exc:
        return str(exc)
    values: list[Decimal] = []
    for name, text in zip(PRICE_FIELDS, texts, strict=True):
        value = _number(name, text)
        if isinstance(value, str):
            return value
        if name == "volume":
            if value.is_signed():
                return f"volume {shown(text, quote=False)} is negative" + (
                    " (a negative zero)" if value.is_zero() else ""
                )
            if value > _VOLUME_MAX:
                return f"volume {shown(text, quote=False)} is beyond {_VOLUME_MAX}: not a volume"
        elif value <= 0:
            return f"{name} {shown(text, quote=False)} is not a positive price"
        elif not _PRICE_MIN <= value <= _PRICE_MAX:
            return (
                f"{name} {shown(text, quote=False)} is outside {_PRICE_MIN} to {_PRICE_MAX}: "
                "not a price"
            )
        values.append(value)
    o, h, _, c, _ = values
    if h < max(o, c):
        return f"high {texts[1]} is below max(open, close) = {max(o, c)}"
    # The one check left: low must not exceed min(open, close).
    return f"low {texts[2]} is above min(open, close) = {min(o, c)}"


def _number(name: str, text: str) -> Decimal | str:
    """A cell's number, finite; or why it is not one."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        if _NUMBER.fullmatch(text):
            return f"{name} {shown(text)} is out of range"
        return f"{name} {shown(text)} is not a number"
    if not value.is_finite():
        return f"{name} is {shown(text)}, not a finite number"
    return value


class FundingParser:
    def __init__(self, market: str, cols: dict[str, int]) -> None:
        self.market, self.cols = market, cols
        self.pick = itemgetter(cols["funding_timestamp"], cols["funding_rate"], cols["symbol"])

    def __call__(self, row: list[str]) -> tuple[int, FundingRate]:
        stamp, rate_text, symbol = self.pick(row)
        try:
            t = time_ms(stamp)
            rate = Decimal(rate_text)
            # NaN fails the comparison (InvalidOperation), infinities the bound.
            ok = -_RATE_MAX <= rate <= _RATE_MAX and (
                not rate.is_signed() if rate.is_zero() else abs(rate) >= _RATE_MIN
            )
        except (ValueError, ArithmeticError):
            ok = False
        if not ok:
            raise RowError(_funding_problem(stamp, rate_text))
        if symbol != self.market:
            _check_symbol(symbol, self.market)
        return t, FundingRate(t, rate)

    def fields(
        self, fields: list[str], rows: int
    ) -> tuple[list[int], list[FundingRate], bool] | None:
        """The same checks as a row's, each over a column at once."""
        cols, width = self.cols, len(fields) // rows
        stamps = _column(fields, cols["funding_timestamp"], width)
        regular = None
        if rows > 1:  # the step of the first two: most often every row's
            found = _times(stamps[:2])
            if found is not None:
                regular = _regular_times(stamps, found[1] - found[0])
        times = regular or _times(stamps) or _epoch_times(stamps)
        if times is None:
            return None
        if _column(fields, cols["symbol"], width).count(self.market) != rows:
            return None
        try:
            rates = list(map(Decimal, _column(fields, cols["funding_rate"], width)))
            sizes = list(map(abs, rates))
            ok = max(sizes) <= _RATE_MAX
            # A zero (falsy) must not be signed, any other rate must reach _RATE_MIN.
            if ok and min(sizes) < _RATE_MIN:
                ok = min(filter(None, sizes), default=_RATE_MIN) >= _RATE_MIN and not any(
                    map(Decimal.is_signed, filterfalse(None, rates))
                )
        except (ValueError, ArithmeticError):
            return None
        if not ok:
            return None
        return times, list(map(FundingRate, times, rates)), regular is not None


def funding_parser(market: str) -> MakeParser[FundingRate]:
    def make(cols: dict[str, int]) -> FundingParser:
        return FundingParser(market, cols)

    return make


def _funding_problem(stamp: str, rate_text: str) -> str:
    try:
        time_ms(stamp)
    except ValueError as exc:
        return str(exc)
    rate = _number("funding_rate", rate_text)
    if isinstance(rate, str):
        return rate
    text = shown(rate_text, quote=False)
    # A huge exponent overflows abs() in the context: beyond the bound all the same.
    if rate.adjusted() > 0 or abs(rate) > _RATE_MAX:
        return (
            f"funding_rate {text} is beyond +-1 (100 %) per settlement: not a funding rate "
            "(Bybit caps it at a few percent)"
        )
    if rate.is_zero():
        return f"funding_rate {text} is a negative zero: write 0"
    return (
        f"funding_rate {text} is nonzero but below {_RATE_MIN} in size: not a funding rate "
        "(Bybit quotes 8 decimals)"
    )


_rate = attrgetter("rate")


class FundingNotes:
    """What is odd but possible in a funding file: one warning per kind, listing lines.
    Watches the file's rows as they are read (``FileRows(watch=...)``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.beyond: list[int] = []
        self.off_hour: list[int] = []

    def __call__(self, time: int, item: FundingRate, line: int) -> None:
        if abs(item.rate) > _RATE_PLAUSIBLE:
            self.beyond.append(line)
        if time % HOUR_MS:
            self.off_hour.append(line)

    def many(self, times: list[int], items: list[FundingRate], lines: Sequence[int]) -> None:
        sizes = map(abs, map(_rate, items))
        self.beyond += compress(lines, map(lt, repeat(_RATE_PLAUSIBLE), sizes))
        self.off_hour += compress(lines, map(mod, times, repeat(HOUR_MS)))

    def notes(self) -> list[str]:
        found: list[str] = []
        name = self.path.name
        if self.beyond:
            found.append(
                f"{name}: {rows(self.beyond, 'funding rate')} beyond +-{_RATE_PLAUSIBLE} "
                f"({_RATE_PLAUSIBLE:.0%}) per settlement ({lines(self.beyond)}); Bybit caps "
                "funding at a few percent: check the file"
            )
        if self.off_hour:
            found.append(
                f"{name}: {rows(self.off_hour, 'funding time')} not on the hour "
                f"({lines(self.off_hour)}); Bybit settles funding on the hour"
            )
        return found
