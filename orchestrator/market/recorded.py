"""Recorded market data: the files a paper run replays, loaded and checked.

Per market id (``BTCUSDT``) the data folder holds, gzipped (``.csv.gz``) or plain
(``.csv``), possibly several files of one kind that are merged:

- ``{venue}_{id}_spot_1h_*``, ``{venue}_{id}_perp_1h_*``: hourly candles, columns
  ``timestamp,open,high,low,close,volume,source,symbol,data_type,turnover``;
  ``timestamp`` is the bar's open time.
- ``{venue}_{id}_funding_rates_*``: ``funding_timestamp,funding_rate,symbol,source``;
  the rate is a plain fraction per funding interval.
- ``{venue}_instruments_info*.json``: ``{"spot": {id: entry}, "linear": {id: entry}}``
  with raw Bybit v5 instruments-info entries.

Numbers are parsed as Decimal from the file's text. Times are UTC epoch
milliseconds, read from ISO-8601 with an explicit offset or from integer epoch
milliseconds. A row that cannot be right stops the load with a DataError naming
the file and line; what is only suspicious (an exact repeat, a gap, a funding
rate beyond any venue's cap, a settlement off the hour) is dropped or kept and
reported in ``PairData.warnings``.

Every value is bounded, so nothing absurd reaches the arithmetic of a run: times
from 2009 (no crypto market is older) to 2099, prices from 1e-12 to 1e12,
volumes up to 1e18, funding rates within +-1 (100 %) per settlement.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import json
import re
import shlex
import zlib
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import repeat
from operator import itemgetter, sub
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from orchestrator.exceptions import OrchestratorError
from orchestrator.models import Category, Instrument

if TYPE_CHECKING:
    from _csv import Reader

_HOUR_MS = 3_600_000
_KLINE_COLUMNS = (
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
_FUNDING_COLUMNS = ("funding_timestamp", "funding_rate", "symbol", "source")
_PRICE_FIELDS = ("open", "high", "low", "close", "volume")
_DATA_TYPES = {"spot": "spot", "perp": "futures"}  # file kind -> its rows' data_type
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_DAY_MS = 86_400_000
# Market data lies in [2009-01-01, 2100-01-01): Bitcoin's first block is from
# January 2009. A time outside is a unit mistake (seconds, microseconds) or junk.
_FIRST_MS = 1_230_768_000_000
_END_MS = 4_102_444_800_000
_FIRST_YEAR, _END_YEAR = 2009, 2100
_MAX_STAMP_DIGITS = 16  # int() refuses over 4,300 digits; 13 is the width of ms until 2286
_ZERO = Decimal(0)
_PRICE_MIN, _PRICE_MAX = Decimal("1e-12"), Decimal("1e12")
_VOLUME_MAX = Decimal("1e18")
# Funding: a fraction per settlement. Bybit caps it at a few percent (per symbol);
# 100 % would wipe out the position. Below 1e-12 is no venue's quote (Bybit: 8 decimals).
_RATE_MAX = Decimal(1)
_RATE_PLAUSIBLE = Decimal("0.05")
_RATE_MIN = Decimal("1e-12")
# Instrument limits (steps, minimums, ticks): tiny steps are real (1e-30 is allowed),
# beyond these bounds they would make the sizing arithmetic explode.
_LIMIT_MIN, _LIMIT_MAX = Decimal("1e-40"), Decimal("1e15")
_JSON_DEPTH = 32  # an instruments file is nested 4 or 5 deep
_JSON_NUMBER_LENGTH = 100  # characters of a number in an instruments file
_LISTED_LINES = 20  # a warning lists at most this many line numbers
_SHOWN_CHARACTERS = 40  # a message quotes at most this much of a cell
_NUMBER = re.compile(r"\s*[-+]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][-+]?\d+)?\s*")


class DataError(OrchestratorError):
    """Recorded data that cannot be used; the message names the file (and line)."""


class DataMissing(DataError):
    """No file holds a series; the message gives the command that fetches it."""


class Candle(msgspec.Struct, frozen=True, gc=False):
    # gc=False: a long replay holds millions and they never form cycles.
    open_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    @property
    def close_time_ms(self) -> int:
        """When the bar closed: the earliest moment its prices are known."""
        return self.open_time_ms + _HOUR_MS


class FundingRate(msgspec.Struct, frozen=True, gc=False):
    time_ms: int  # the settlement time
    rate: Decimal  # a fraction per funding interval; positive: longs pay shorts


class PairData(msgspec.Struct, frozen=True):
    spot_symbol: str
    perp_symbol: str
    spot: list[Candle]
    perp: list[Candle]
    funding: list[FundingRate]
    warnings: list[str]  # human-readable, each naming the file and line(s)


def market_id(symbol: str) -> str:
    """The venue's market id of a ccxt unified symbol: BTC/USDT and BTC/USDT:USDT -> BTCUSDT."""
    return symbol.split(":", 1)[0].replace("/", "")


def load_pair(
    data_dir: Path,
    spot_symbol: str,
    perp_symbol: str,
    *,
    venue: str = "bybit",
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> PairData:
    """Spot and perp candles and funding rates of one pair, oldest first.

    With a window, only rows whose timestamp (candle open time, funding time)
    is >= start_ms and < end_ms are kept; every row of every file is checked
    all the same. Each series is strictly increasing, without duplicates.
    """
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise DataError(f"empty window: start {_iso(start_ms)} is not before end {_iso(end_ms)}")
    loader = _Loader(data_dir, venue, spot_symbol, start_ms, end_ms)
    spot = loader.candles(spot_symbol, "spot")
    perp = loader.candles(perp_symbol, "perp")
    funding = loader.funding(perp_symbol)
    return PairData(spot_symbol, perp_symbol, spot, perp, funding, loader.warnings)


def load_instruments(
    data_dir: Path,
    symbols: Iterable[str],
    *,
    venue: str = "bybit",
    warnings: list[str] | None = None,
) -> dict[str, Instrument]:
    """The trading limits of each symbol, from every ``{venue}_instruments_info*.json``.

    "BTC/USDT" is the spot entry, "BTC/USDT:USDT" the linear perpetual settled in
    USDT; dated futures are not listed.

    An entry listed again, the same (in another file, or twice in one), is used
    once and reported in ``warnings`` (when given: the list is appended to), one
    line per file; listed again differently, it is a DataError naming both places.
    """
    files = sorted(data_dir.glob(f"{venue}_instruments_info*.json"))
    if not files:
        raise DataError(f"no instrument file ({venue}_instruments_info*.json) in {data_dir}")
    index: dict[str, tuple[Path, str, dict[str, Any]]] = {}
    notes: list[str] = []
    repeats: dict[tuple[Path, Path], list[str]] = {}  # (file, file listing them first): symbols
    for path in files:
        for symbol, where, entry in _listed_instruments(path, notes):
            known = index.setdefault(symbol, (path, where, entry))
            if known[2] != entry:
                raise DataError(
                    f"{symbol} is listed differently in {known[0]} ({known[1]}) "
                    f"and {path} ({where})"
                )
            if known[2] is not entry:  # listed before, the same
                repeats.setdefault((path, known[0]), []).append(f"{symbol} ({where})")
    for (path, first), repeated in repeats.items():
        notes.append(_repeats_warning(path, first, repeated))
    if warnings is not None:
        warnings.extend(notes)
    found: dict[str, Instrument] = {}
    for symbol in symbols:
        if symbol not in index:
            listed = ", ".join(sorted(index)) or "nothing"
            raise DataError(
                f"unknown symbol {symbol!r}: the instrument files in {data_dir} list {listed}"
            )
        found[symbol] = _instrument(symbol, *index[symbol])
    return found


# --- reading rows ---------------------------------------------------------------

_T = TypeVar("_T", Candle, FundingRate)
_RowParser = Callable[[list[str]], tuple[int, _T]]


class _RowError(Exception):
    """What is wrong with one row; the reader adds the file and line."""


class _FileSeries(Generic[_T]):
    """One file's rows in order, exact repeats dropped (their lines kept in duplicates)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.times: list[int] = []
        self.items: list[_T] = []
        self.lines: list[int] = []
        self.duplicates: list[int] = []


def _open_text(path: Path) -> IO[str]:
    # utf-8-sig: a file saved by a spreadsheet starts with a byte-order mark.
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _read(
    path: Path, columns: tuple[str, ...], make_parser: Callable[[dict[str, int]], _RowParser[_T]]
) -> _FileSeries[_T]:
    series: _FileSeries[_T] = _FileSeries(path)
    reader = None
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle)
            _read_rows(series, reader, columns, make_parser)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        if reader is None:
            raise DataError(f"{path}: cannot read the file: {exc}") from exc
        # csv counts the line it failed to parse; a failed read has not counted its line yet.
        line = reader.line_num + (0 if isinstance(exc, csv.Error) else 1)
        raise DataError(f"{path}:{line}: cannot read the file: {exc}") from exc
    return series


def _read_rows(
    series: _FileSeries[_T],
    reader: Reader,
    columns: tuple[str, ...],
    make_parser: Callable[[dict[str, int]], _RowParser[_T]],
) -> None:
    path = series.path
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
    parse = make_parser({name: names.index(name) for name in columns})
    add_time, add_item, add_line = series.times.append, series.items.append, series.lines.append
    prev_time = prev_line = 0
    prev_item: _T | None = None
    for row in reader:
        line = reader.line_num  # the row's last line: a quoted field may span several
        if len(row) != width:
            what = "a blank line" if not row else f"{len(row)} columns"
            raise DataError(f"{path}:{line}: {what} where the header has {width} columns")
        try:
            time_ms, item = parse(row)
        except _RowError as exc:
            raise DataError(f"{path}:{line}: {exc}") from None
        if prev_item is not None and time_ms <= prev_time:
            if time_ms < prev_time:
                raise DataError(
                    f"{path}:{line}: timestamp {_iso(time_ms)} goes back from "
                    f"{_iso(prev_time)} at line {prev_line}"
                )
            if item != prev_item:
                raise DataError(
                    f"{path}:{line}: timestamp {_iso(time_ms)} repeats line {prev_line} "
                    "with different values"
                )
            series.duplicates.append(line)
            continue
        add_time(time_ms)
        add_item(item)
        add_line(line)
        prev_time, prev_item, prev_line = time_ms, item, line
    if prev_item is None:
        raise DataError(f"{path}:1: no rows after the header")


def _time_ms(text: str) -> int:
    if text.isascii() and text.isdigit():
        # Epoch seconds (10 digits) fall before 2009 as milliseconds, microseconds after 2099.
        if len(text) > _MAX_STAMP_DIGITS or not _FIRST_MS <= int(text) < _END_MS:
            raise ValueError(
                f"timestamp {_shown(text, quote=False)} is not epoch milliseconds of a "
                f"plausible date ({_FIRST_YEAR} to {_END_YEAR - 1})"
            )
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"timestamp {_shown(text)} is neither ISO-8601 (2024-01-01T08:00:00Z) nor "
            "epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone: write UTC as {text}Z")
    # The year first: year 1 at +01:00 cannot even be turned into UTC.
    if not _FIRST_YEAR - 1 <= moment.year <= _END_YEAR or not (
        _FIRST_MS <= (ms := (moment - _EPOCH) // _ONE_MS) < _END_MS
    ):
        raise ValueError(
            f"timestamp {text!r} is outside {_FIRST_YEAR} to {_END_YEAR - 1}: "
            "not a time of market data"
        )
    return ms


def _shown(text: str, *, quote: bool = True) -> str:
    """A cell's text for a message: quoted, and cut short when long."""
    if len(text) > _SHOWN_CHARACTERS:
        cut = f"{text[:_SHOWN_CHARACTERS]}... ({len(text):,} characters)"
        return repr(cut) if quote else cut
    return repr(text) if quote else text


def _iso(ms: int) -> str:
    moment = _EPOCH + ms * _ONE_MS
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ms % 1000:03d}Z" if ms % 1000 else "Z")


def _check_symbol(symbol: str, market: str) -> None:
    if market_id(symbol) != market:
        raise _RowError(f"symbol {symbol!r} is another market than {market}")


def _candle_parser(market: str, data_type: str) -> Callable[[dict[str, int]], _RowParser[Candle]]:
    def make(cols: dict[str, int]) -> _RowParser[Candle]:
        pick = itemgetter(*(cols[name] for name in ("timestamp", *_PRICE_FIELDS, "symbol")))
        pick_type = itemgetter(cols["data_type"])
        to_ms, dec, candle = _time_ms, Decimal, Candle
        low, high, most = _PRICE_MIN, _PRICE_MAX, _VOLUME_MAX

        def parse(row: list[str]) -> tuple[int, Candle]:
            stamp, o_text, h_text, l_text, c_text, v_text, symbol = pick(row)
            try:
                time_ms = to_ms(stamp)
                o, h, lo, c, v = dec(o_text), dec(h_text), dec(l_text), dec(c_text), dec(v_text)
                # NaN fails the comparisons (InvalidOperation), infinities the bounds;
                # a volume must not be signed (negative, or -0).
                ok = (
                    low <= lo <= o <= h <= high and lo <= c <= h and v <= most and not v.is_signed()
                )
            except (ValueError, ArithmeticError):
                ok = False
            if not ok:
                raise _RowError(_candle_problem(stamp, (o_text, h_text, l_text, c_text, v_text)))
            if time_ms % _HOUR_MS:
                raise _RowError(f"open time {stamp} is not on the hour")
            if symbol != market:
                _check_symbol(symbol, market)
            if pick_type(row) != data_type:
                raise _RowError(f"data_type {pick_type(row)!r} in a file of {data_type!r} candles")
            return time_ms, candle(time_ms, o, h, lo, c, v)

        return parse

    return make


def _candle_problem(stamp: str, texts: tuple[str, ...]) -> str:
    """Why a candle row failed the combined check: the first rule it breaks."""
    try:
        _time_ms(stamp)
    except ValueError as exc:
        return str(exc)
    values: list[Decimal] = []
    for name, text in zip(_PRICE_FIELDS, texts, strict=True):
        value = _number(name, text)
        if isinstance(value, str):
            return value
        if name == "volume":
            if value.is_signed():
                return f"volume {_shown(text, quote=False)} is negative" + (
                    " (a negative zero)" if value.is_zero() else ""
                )
            if value > _VOLUME_MAX:
                return f"volume {_shown(text, quote=False)} is beyond {_VOLUME_MAX}: not a volume"
        elif value <= 0:
            return f"{name} {_shown(text, quote=False)} is not a positive price"
        elif not _PRICE_MIN <= value <= _PRICE_MAX:
            return (
                f"{name} {_shown(text, quote=False)} is outside {_PRICE_MIN} to {_PRICE_MAX}: "
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
            return f"{name} {_shown(text)} is out of range"
        return f"{name} {_shown(text)} is not a number"
    if not value.is_finite():
        return f"{name} is {_shown(text)}, not a finite number"
    return value


def _funding_parser(market: str) -> Callable[[dict[str, int]], _RowParser[FundingRate]]:
    def make(cols: dict[str, int]) -> _RowParser[FundingRate]:
        pick = itemgetter(cols["funding_timestamp"], cols["funding_rate"], cols["symbol"])
        to_ms, dec, funding = _time_ms, Decimal, FundingRate
        most, least = _RATE_MAX, _RATE_MIN

        def parse(row: list[str]) -> tuple[int, FundingRate]:
            stamp, rate_text, symbol = pick(row)
            try:
                time_ms = to_ms(stamp)
                rate = dec(rate_text)
                # NaN fails the comparison (InvalidOperation), infinities the bound.
                ok = -most <= rate <= most and (
                    not rate.is_signed() if rate.is_zero() else least <= abs(rate)
                )
            except (ValueError, ArithmeticError):
                ok = False
            if not ok:
                raise _RowError(_funding_problem(stamp, rate_text))
            if symbol != market:
                _check_symbol(symbol, market)
            return time_ms, funding(time_ms, rate)

        return parse

    return make


def _funding_problem(stamp: str, rate_text: str) -> str:
    try:
        _time_ms(stamp)
    except ValueError as exc:
        return str(exc)
    rate = _number("funding_rate", rate_text)
    if isinstance(rate, str):
        return rate
    shown = _shown(rate_text, quote=False)
    if abs(rate) > _RATE_MAX:
        return (
            f"funding_rate {shown} is beyond +-1 (100 %) per settlement: not a funding rate "
            "(Bybit caps it at a few percent)"
        )
    if rate.is_zero():
        return f"funding_rate {shown} is a negative zero: write 0"
    return (
        f"funding_rate {shown} is nonzero but below {_RATE_MIN} in size: not a funding rate "
        "(Bybit quotes 8 decimals)"
    )


def _funding_notes(series: _FileSeries[FundingRate]) -> list[str]:
    """What is odd but possible in a funding file: one warning per kind, listing lines."""
    notes: list[str] = []
    beyond = [
        line
        for line, item in zip(series.lines, series.items, strict=True)
        if abs(item.rate) > _RATE_PLAUSIBLE
    ]
    if beyond:
        notes.append(
            f"{series.path.name}: {_rows(beyond, 'funding rate')} beyond +-{_RATE_PLAUSIBLE} "
            f"({_RATE_PLAUSIBLE:.0%}) per settlement ({_lines(beyond)}); Bybit caps funding "
            "at a few percent: check the file"
        )
    off_hour = [
        line for line, time_ms in zip(series.lines, series.times, strict=True) if time_ms % _HOUR_MS
    ]
    if off_hour:
        notes.append(
            f"{series.path.name}: {_rows(off_hour, 'funding time')} not on the hour "
            f"({_lines(off_hour)}); Bybit settles funding on the hour"
        )
    return notes


# --- one series from all its files ----------------------------------------------


class _Loader:
    def __init__(
        self,
        data_dir: Path,
        venue: str,
        pair: str,
        start_ms: int | None,
        end_ms: int | None,
    ) -> None:
        self.data_dir = data_dir
        self.venue = venue
        self.pair = pair  # the spot symbol names the pair to the download command
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.warnings: list[str] = []

    def candles(self, symbol: str, kind: str) -> list[Candle]:
        market = market_id(symbol)
        return self._series(
            symbol,
            f"{kind}_1h",
            f"{kind} candles",
            "hourly candle",
            lambda path: _read(path, _KLINE_COLUMNS, _candle_parser(market, _DATA_TYPES[kind])),
            _HOUR_MS,
        )

    def funding(self, symbol: str) -> list[FundingRate]:
        market = market_id(symbol)
        return self._series(
            symbol,
            "funding_rates",
            "funding rates",
            "funding settlement",
            lambda path: _read(path, _FUNDING_COLUMNS, _funding_parser(market)),
            None,
            _funding_notes,
        )

    def _series(
        self,
        symbol: str,
        part: str,
        noun: str,
        unit: str,
        read: Callable[[Path], _FileSeries[_T]],
        step: int | None,
        notes: Callable[[_FileSeries[_T]], list[str]] | None = None,
    ) -> list[_T]:
        pattern = f"{self.venue}_{market_id(symbol)}_{part}_*"
        paths = sorted(
            path
            for path in self.data_dir.glob(pattern)
            if path.name.endswith((".csv", ".csv.gz")) and path.is_file()
        )
        if not paths:
            folder = "" if self.data_dir.is_dir() else " (no such folder)"
            raise DataMissing(
                f"no {noun} for {symbol} in {self.data_dir}{folder}: run `{self._command()}`"
            )
        files = [read(path) for path in paths]
        times, items, lines, origins = _merge(files)
        for file in files:
            if file.duplicates:
                self.warnings.append(_duplicates_warning(file.path, sorted(file.duplicates)))
            if notes is not None:
                self.warnings.extend(notes(file))
        first = 0 if self.start_ms is None else bisect_left(times, self.start_ms)
        stop = len(times) if self.end_ms is None else bisect_left(times, self.end_ms)
        if first >= stop:
            raise DataMissing(
                f"no {noun} for {symbol} in {self.data_dir}{self._window()} (the files hold "
                f"{_iso(times[0])} to {_iso(times[-1])}): run `{self._command()}`"
            )
        if step is None:
            # Funding every 8 h on Bybit for these pairs, but not for every market.
            spacings = Counter(map(sub, times[1:], times[:-1]))
            step = spacings.most_common(1)[0][0] if spacings else 0

        def where(i: int) -> str:
            return f"{paths[origins[i] if origins else 0].name}:{lines[i]}"

        if step:
            self._check_spacing(times, first, stop, step, unit, where)
            self._check_coverage(noun, times[first], times[stop - 1], step)
        return items if (first, stop) == (0, len(items)) else items[first:stop]

    def _check_spacing(
        self,
        times: list[int],
        first: int,
        stop: int,
        step: int,
        unit: str,
        where: Callable[[int], str],
    ) -> None:
        for i in range(first + 1, stop):
            gap = times[i] - times[i - 1]
            if gap == step:
                continue
            if gap % step == 0:
                missing = gap // step - 1
                span = _iso(times[i - 1] + step)
                if missing > 1:
                    span += f" to {_iso(times[i] - step)}"
                self.warnings.append(
                    f"{where(i)}: {missing} missing {unit}{'s' * (missing > 1)} ({span})"
                )
            else:
                self.warnings.append(
                    f"{where(i)}: {_iso(times[i])} comes {_hours(gap)} after the previous row "
                    f"({_iso(times[i - 1])}); the usual spacing is {_hours(step)}"
                )

    def _check_coverage(self, noun: str, first_ms: int, last_ms: int, step: int) -> None:
        if self.start_ms is not None and first_ms - self.start_ms >= step:
            self.warnings.append(
                f"{noun} start at {_iso(first_ms)}, after the window's start {_iso(self.start_ms)}"
            )
        if self.end_ms is not None and self.end_ms - last_ms > step:
            self.warnings.append(
                f"{noun} end at {_iso(last_ms)}, before the window's end {_iso(self.end_ms)}"
            )

    def _window(self) -> str:
        since = "" if self.start_ms is None else f" from {_iso(self.start_ms)}"
        until = "" if self.end_ms is None else f" until {_iso(self.end_ms)}"
        return since + until

    def _command(self) -> str:
        words = ["orchestrator", "data", "download", "--pairs", self.pair]
        words += ["--data-dir", str(self.data_dir)]
        if self.start_ms is not None:
            words += ["--since", _cli_time(self.start_ms)]
        if self.end_ms is not None:
            words += ["--until", _cli_time(self.end_ms)]
        return shlex.join(words)


def _merge(files: list[_FileSeries[_T]]) -> tuple[list[int], list[_T], list[int], list[int]]:
    """Times, items, lines and file indexes (empty for a single file) of all files, in order.

    A row found again in a later file counts as that file's duplicate.
    """
    if len(files) == 1:
        return files[0].times, files[0].items, files[0].lines, []
    times: list[int] = []
    items: list[_T] = []
    lines: list[int] = []
    origins: list[int] = []
    streams = [
        zip(file.times, repeat(index, len(file.times)), range(len(file.times)), strict=True)
        for index, file in enumerate(files)
    ]
    for time_ms, index, row in heapq.merge(*streams):
        file = files[index]
        if times and times[-1] == time_ms:
            if items[-1] != file.items[row]:
                kept = files[origins[-1]]
                raise DataError(
                    f"{kept.path}:{lines[-1]} and {file.path}:{file.lines[row]}: "
                    f"two different rows for {_iso(time_ms)}"
                )
            file.duplicates.append(file.lines[row])
            continue
        times.append(time_ms)
        items.append(file.items[row])
        lines.append(file.lines[row])
        origins.append(index)
    return times, items, lines, origins


def _duplicates_warning(path: Path, lines: list[int]) -> str:
    return f"{path.name}: dropped {_rows(lines, 'duplicate row')} ({_lines(lines)})"


def _rows(items: list[Any], noun: str) -> str:
    """ "1 duplicate row", "3 duplicate rows"."""
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _listed(items: list[Any]) -> str:
    """The first _LISTED_LINES items, comma-separated, and how many more."""
    listed = ", ".join(map(str, items[:_LISTED_LINES]))
    more = f" and {len(items) - _LISTED_LINES} more" if len(items) > _LISTED_LINES else ""
    return listed + more


def _lines(lines: list[int]) -> str:
    """ "line 3", "lines 3, 6, ... and 5 more"."""
    return f"{'line' if len(lines) == 1 else 'lines'} {_listed(lines)}"


def _hours(ms: int) -> str:
    return f"{ms / _HOUR_MS:g}h"


def _cli_time(ms: int) -> str:
    return _iso(ms)[:10] if ms % _DAY_MS == 0 else _iso(ms)


# --- instruments ------------------------------------------------------------------


def _repeats_warning(path: Path, first: Path, repeated: list[str]) -> str:
    where = "entries earlier in the file" if path == first else first.name
    one = len(repeated) == 1
    entries = f"{len(repeated)} instrument {'entry' if one else 'entries'}"
    return (
        f"{path.name}: {entries} ({_listed(repeated)}) {'repeats' if one else 'repeat'} "
        f"{where} exactly; each is used once"
    )


class _JsonProblem(Exception):
    """A JSON document that parses but that no instrument file holds."""


def _read_json(path: Path, notes: list[str]) -> Any:
    """The document, numbers as Decimal; refused: NaN and Infinity, numbers out of
    Decimal's range, an object with a key twice (differently), nesting beyond
    _JSON_DEPTH. A key twice with the same value is noted."""
    repeated: list[str] = []

    def number(text: str) -> Decimal:
        try:
            if len(text) <= _JSON_NUMBER_LENGTH:
                return Decimal(text)
        except InvalidOperation:
            pass
        raise _JsonProblem(
            f"the number {_shown(text, quote=False)} is out of range: no instrument "
            f"field needs over {_JSON_NUMBER_LENGTH} characters or an exponent that large"
        )

    def constant(name: str) -> Any:
        raise _JsonProblem(f"{name} is not a number JSON allows")

    def mapping(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in pairs:
            if key in found:
                if found[key] != value:
                    raise _JsonProblem(
                        f"the key {_shown(key)} appears twice in one object, with different values"
                    )
                repeated.append(key)
            found[key] = value
        return found

    try:
        text = path.read_bytes().decode("utf-8-sig")
        # parse_int too: int() refuses numbers of over 4,300 digits (a ValueError).
        document = json.loads(
            text,
            parse_float=number,
            parse_int=number,
            parse_constant=constant,
            object_pairs_hook=mapping,
        )
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the file: {exc}") from None
    except _JsonProblem as exc:
        raise DataError(f"{path}: {exc}") from None
    except RecursionError:
        raise DataError(_too_deep(path)) from None
    _check_depth(path, document)
    if repeated:
        notes.append(
            f"{path.name}: {_rows(repeated, 'key')} ({_listed([_shown(k) for k in repeated])}) "
            f"{'appears' if len(repeated) == 1 else 'appear'} twice in one object, the same "
            "both times; each is used once"
        )
    return document


def _too_deep(path: Path) -> str:
    return f"{path}: nested more than {_JSON_DEPTH} deep; an instruments file needs 4 or 5 levels"


def _check_depth(path: Path, document: Any) -> None:
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > _JSON_DEPTH:
            raise DataError(_too_deep(path))
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _listed_instruments(path: Path, notes: list[str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(unified symbol, place in the file, raw entry) of each spot pair and linear perpetual."""
    document = _read_json(path, notes)
    if not isinstance(document, dict):
        raise DataError(f"{path}: expected an object with 'spot' and 'linear' sections")
    for category in (Category.SPOT, Category.LINEAR):
        section = document.get(category.value, {})
        if not isinstance(section, dict):
            raise DataError(f"{path}: {category.value} is not an object")
        for market, entry in section.items():
            where = f"{category.value}.{market}"
            if not isinstance(entry, dict):
                raise DataError(f"{path}: {where} is not an object")
            base, quote = (
                _text(path, where, entry, "baseCoin"),
                _text(path, where, entry, "quoteCoin"),
            )
            if category is Category.SPOT:
                yield f"{base}/{quote}", where, entry
            elif entry.get("contractType", "LinearPerpetual") == "LinearPerpetual":
                settle = entry.get("settleCoin") or quote
                yield f"{base}/{quote}:{settle}", where, entry


def _instrument(symbol: str, path: Path, where: str, entry: dict[str, Any]) -> Instrument:
    spot = ":" not in symbol
    lot = _section(path, where, entry, "lotSizeFilter")
    price = _section(path, where, entry, "priceFilter")
    lot_where, price_where = f"{where}.lotSizeFilter", f"{where}.priceFilter"
    try:
        return Instrument(
            symbol=symbol,
            category=Category.SPOT if spot else Category.LINEAR,
            base=_text(path, where, entry, "baseCoin"),
            quote=_text(path, where, entry, "quoteCoin"),
            qty_step=_decimal(path, lot_where, lot, "basePrecision" if spot else "qtyStep"),
            min_qty=_decimal(path, lot_where, lot, "minOrderQty"),
            min_notional=_decimal(
                path, lot_where, lot, "minOrderAmt" if spot else "minNotionalValue"
            ),
            price_tick=_decimal(path, price_where, price, "tickSize"),
        )
    except ValueError as exc:
        raise DataError(f"{path}: {where}: {exc}") from exc


def _text(path: Path, where: str, entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise DataError(f"{path}: {where}.{key} is missing or not a name")
    return value


def _section(path: Path, where: str, entry: dict[str, Any], key: str) -> dict[str, Any]:
    value = entry.get(key)
    if not isinstance(value, dict):
        raise DataError(f"{path}: {where}.{key} is missing or not an object")
    return value


def _decimal(path: Path, where: str, section: dict[str, Any], key: str) -> Decimal:
    value = section.get(key)
    shown = _shown(value) if isinstance(value, str) else repr(value)
    problem = DataError(f"{path}: {where}.{key} is {shown}, not a number")
    # JSON numbers arrive as Decimal already (parse_float, parse_int), never through float.
    if isinstance(value, bool) or not isinstance(value, str | Decimal | int):
        raise problem
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise problem from None
    # Zero, negative and NaN are the Instrument's to refuse, with its own words.
    if number.is_finite() and number > 0 and not _LIMIT_MIN <= number <= _LIMIT_MAX:
        raise DataError(
            f"{path}: {where}.{key} is {_shown(str(number), quote=False)}, outside "
            f"{_LIMIT_MIN} to {_LIMIT_MAX}: not a trading limit"
        )
    return number
