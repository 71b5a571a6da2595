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
the file and line; what is only suspicious (an exact repeat, a gap) is dropped
or kept and reported in ``PairData.warnings``.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import json
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
_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last time datetime can show
_ZERO = Decimal(0)
_LISTED_LINES = 20  # a warning lists at most this many line numbers


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
    data_dir: Path, symbols: Iterable[str], *, venue: str = "bybit"
) -> dict[str, Instrument]:
    """The trading limits of each symbol, from every ``{venue}_instruments_info*.json``.

    "BTC/USDT" is the spot entry, "BTC/USDT:USDT" the linear perpetual settled in
    USDT; dated futures are not listed.
    """
    files = sorted(data_dir.glob(f"{venue}_instruments_info*.json"))
    if not files:
        raise DataError(f"no instrument file ({venue}_instruments_info*.json) in {data_dir}")
    index: dict[str, tuple[Path, str, dict[str, Any]]] = {}
    for path in files:
        for symbol, where, entry in _listed_instruments(path):
            known = index.setdefault(symbol, (path, where, entry))
            if known[2] != entry:
                raise DataError(
                    f"{symbol} is listed differently in {known[0]} ({known[1]}) "
                    f"and {path} ({where})"
                )
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
        value = int(text)
        # Below 1e11 ms is before March 1973: such a number is epoch seconds, not ms.
        if not 100_000_000_000 <= value <= _LAST_MS:
            raise ValueError(f"timestamp {text} is not epoch milliseconds of a plausible date")
        return value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"timestamp {text!r} is neither ISO-8601 (2024-01-01T08:00:00Z) nor epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone: write UTC as {text}Z")
    return (moment - _EPOCH) // _ONE_MS


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
        to_ms, dec, zero, candle = _time_ms, Decimal, _ZERO, Candle

        def parse(row: list[str]) -> tuple[int, Candle]:
            stamp, o_text, h_text, l_text, c_text, v_text, symbol = pick(row)
            try:
                time_ms = to_ms(stamp)
                o, h, lo, c, v = dec(o_text), dec(h_text), dec(l_text), dec(c_text), dec(v_text)
                # NaN fails the comparisons (InvalidOperation); infinities fail is_finite.
                ok = (
                    zero < lo <= o <= h
                    and lo <= c <= h
                    and zero <= v
                    and h.is_finite()
                    and v.is_finite()
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
        try:
            value = Decimal(text)
        except InvalidOperation:
            return f"{name} {text!r} is not a number"
        if not value.is_finite():
            return f"{name} is {text!r}, not a finite number"
        if value <= 0 and name != "volume":
            return f"{name} {text} is not a positive price"
        values.append(value)
    o, h, _, c, v = values
    if v < 0:
        return f"volume {texts[4]} is negative"
    if h < max(o, c):
        return f"high {texts[1]} is below max(open, close) = {max(o, c)}"
    # The one check left: low must not exceed min(open, close).
    return f"low {texts[2]} is above min(open, close) = {min(o, c)}"


def _funding_parser(market: str) -> Callable[[dict[str, int]], _RowParser[FundingRate]]:
    def make(cols: dict[str, int]) -> _RowParser[FundingRate]:
        pick = itemgetter(cols["funding_timestamp"], cols["funding_rate"], cols["symbol"])
        to_ms, dec, funding = _time_ms, Decimal, FundingRate

        def parse(row: list[str]) -> tuple[int, FundingRate]:
            stamp, rate_text, symbol = pick(row)
            try:
                time_ms = to_ms(stamp)
                rate = dec(rate_text)
                ok = rate.is_finite()
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
    try:
        Decimal(rate_text)
    except InvalidOperation:
        return f"funding_rate {rate_text!r} is not a number"
    return f"funding_rate is {rate_text!r}, not a finite number"


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
        )

    def _series(
        self,
        symbol: str,
        part: str,
        noun: str,
        unit: str,
        read: Callable[[Path], _FileSeries[_T]],
        step: int | None,
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
    listed = ", ".join(map(str, lines[:_LISTED_LINES]))
    more = f" and {len(lines) - _LISTED_LINES} more" if len(lines) > _LISTED_LINES else ""
    rows = "row" if len(lines) == 1 else "rows"
    line_word = "line" if len(lines) == 1 else "lines"
    return f"{path.name}: dropped {len(lines)} duplicate {rows} ({line_word} {listed}{more})"


def _hours(ms: int) -> str:
    return f"{ms / _HOUR_MS:g}h"


def _cli_time(ms: int) -> str:
    return _iso(ms)[:10] if ms % _DAY_MS == 0 else _iso(ms)


# --- instruments ------------------------------------------------------------------


def _listed_instruments(path: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(unified symbol, place in the file, raw entry) of each spot pair and linear perpetual."""
    try:
        document = json.loads(path.read_bytes().decode("utf-8-sig"), parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the file: {exc}") from exc
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
    problem = DataError(f"{path}: {where}.{key} is {value!r}, not a number")
    # JSON floats arrive as Decimal already (parse_float), never through float.
    if isinstance(value, bool) or not isinstance(value, str | Decimal | int):
        raise problem
    try:
        return Decimal(value)
    except InvalidOperation:
        raise problem from None
