"""Reading one recorded CSV file row by row: every row checked as it is read, exact
repeats dropped, nothing kept but what the caller keeps.

A row that cannot be right stops the read with a DataError naming the file and line.
Every value is bounded, so nothing absurd reaches the arithmetic of a run: times
from 2009 (no crypto market is older) to 2099, prices from 1e-12 to 1e12, volumes up
to 1e18, funding rates within +-1 (100 %) per settlement.
"""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, TypeVar

from orchestrator.market.records import (
    END_MS,
    END_YEAR,
    EPOCH,
    FIRST_MS,
    FIRST_YEAR,
    HOUR_MS,
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

T = TypeVar("T", Candle, FundingRate)
RowParser = Callable[[list[str]], tuple[int, T]]
MakeParser = Callable[[dict[str, int]], RowParser[T]]


class RowError(Exception):
    """What is wrong with one row; the reader adds the file and line."""


class FileRows(Generic[T]):
    """One file's rows in order, each checked: iterating yields (time ms, item, line).

    An exact repeat of the row before is dropped, its line kept in ``duplicates``;
    ``notes`` says what is odd but possible once the file has been read."""

    def __init__(
        self,
        path: Path,
        columns: tuple[str, ...],
        make_parser: MakeParser[T],
        watch: Callable[[int, Any, int], None] | None = None,
    ) -> None:
        self.path = path
        self.columns = columns
        self.make_parser: MakeParser[T] = make_parser
        self.watch: Callable[[int, Any, int], None] | None = watch  # sees every row kept
        self.duplicates: list[int] = []
        self.notes: list[str] = []

    def __iter__(self) -> Iterator[tuple[int, T, int]]:
        path = self.path
        reader = None
        try:
            with open_text(path) as handle:
                reader = csv.reader(handle)
                yield from self._rows(reader)
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
            if reader is None:
                raise DataError(f"{path}: cannot read the file: {exc}") from exc
            # csv counts the line it failed to parse; a failed read has not counted its line yet.
            line = reader.line_num + (0 if isinstance(exc, csv.Error) else 1)
            raise DataError(f"{path}:{line}: cannot read the file: {exc}") from exc

    def _rows(self, reader: Reader) -> Iterator[tuple[int, T, int]]:
        path, columns = self.path, self.columns
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}:1: the file is empty; expected the header {','.join(columns)}")
        names = [name.strip() for name in header]
        missing = [name for name in columns if names.count(name) != 1]
        if missing:
            raise DataError(
                f"{path}:1: the header {','.join(names)!r} does not have each of "
                f"{', '.join(missing)} once; expected {','.join(columns)}"
            )
        width = len(names)
        parse = self.make_parser({name: names.index(name) for name in columns})
        watch = self.watch
        prev_time = prev_line = 0
        prev_item: T | None = None
        for row in reader:
            line = reader.line_num  # the row's last line: a quoted field may span several
            if len(row) != width:
                what = "a blank line" if not row else f"{len(row)} columns"
                raise DataError(f"{path}:{line}: {what} where the header has {width} columns")
            try:
                time_ms, item = parse(row)
            except RowError as exc:
                raise DataError(f"{path}:{line}: {exc}") from None
            if prev_item is not None and time_ms <= prev_time:
                if time_ms < prev_time:
                    raise DataError(
                        f"{path}:{line}: timestamp {iso(time_ms)} goes back from "
                        f"{iso(prev_time)} at line {prev_line}"
                    )
                if item != prev_item:
                    raise DataError(
                        f"{path}:{line}: timestamp {iso(time_ms)} repeats line {prev_line} "
                        "with different values"
                    )
                self.duplicates.append(line)
                continue
            if watch is not None:
                watch(time_ms, item, line)
            yield time_ms, item, line
            prev_time, prev_item, prev_line = time_ms, item, line
        if prev_item is None:
            raise DataError(f"{path}:1: no rows after the header")


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


def candle_parser(market: str, data_type: str, interval: Interval) -> MakeParser[Candle]:
    def make(cols: dict[str, int]) -> RowParser[Candle]:
        pick = itemgetter(*(cols[name] for name in ("timestamp", *PRICE_FIELDS, "symbol")))
        pick_type = itemgetter(cols["data_type"])
        to_ms, dec, candle = time_ms, Decimal, Candle
        low, high, most = _PRICE_MIN, _PRICE_MAX, _VOLUME_MAX
        step = interval.ms

        def parse(row: list[str]) -> tuple[int, Candle]:
            stamp, o_text, h_text, l_text, c_text, v_text, symbol = pick(row)
            try:
                t = to_ms(stamp)
                o, h, lo, c, v = dec(o_text), dec(h_text), dec(l_text), dec(c_text), dec(v_text)
                # NaN fails the comparisons (InvalidOperation), infinities the bounds;
                # a volume must not be signed (negative, or -0).
                ok = (
                    low <= lo <= o <= h <= high and lo <= c <= h and v <= most and not v.is_signed()
                )
            except (ValueError, ArithmeticError):
                ok = False
            if not ok:
                raise RowError(_candle_problem(stamp, (o_text, h_text, l_text, c_text, v_text)))
            if t % step:
                raise RowError(f"open time {stamp} is not on {interval.boundary}")
            if symbol != market:
                _check_symbol(symbol, market)
            if pick_type(row) != data_type:
                raise RowError(f"data_type {pick_type(row)!r} in a file of {data_type!r} candles")
            return t, candle(t, o, h, lo, c, v, step)

        return parse

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


def funding_parser(market: str) -> MakeParser[FundingRate]:
    def make(cols: dict[str, int]) -> RowParser[FundingRate]:
        pick = itemgetter(cols["funding_timestamp"], cols["funding_rate"], cols["symbol"])
        to_ms, dec, funding = time_ms, Decimal, FundingRate
        most, least = _RATE_MAX, _RATE_MIN

        def parse(row: list[str]) -> tuple[int, FundingRate]:
            stamp, rate_text, symbol = pick(row)
            try:
                t = to_ms(stamp)
                rate = dec(rate_text)
                # NaN fails the comparison (InvalidOperation), infinities the bound.
                ok = -most <= rate <= most and (
                    not rate.is_signed() if rate.is_zero() else least <= abs(rate)
                )
            except (ValueError, ArithmeticError):
                ok = False
            if not ok:
                raise RowError(_funding_problem(stamp, rate_text))
            if symbol != market:
                _check_symbol(symbol, market)
            return t, funding(t, rate)

        return parse

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
    if abs(rate) > _RATE_MAX:
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
