"""What a recorded row means: a candle or a funding settlement, each checked as it
is read (the bounds of every value, the symbol, the data type, the interval), one row
at a time (the careful way) or a piece's rows column by column (the fast way); the
funding series' notes (rates unusually large, gaps)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from itertools import compress, count, filterfalse, islice, repeat
from operator import attrgetter, itemgetter, le, lt, mod, ne
from pathlib import Path

from orchestrator.market.records import (
    HOUR_MS,
    Candle,
    FundingRate,
    Interval,
    lines,
    market_id,
    rows,
    shown,
)
from orchestrator.market.rows import MakeParser, RowError
from orchestrator.market.stamps import epoch_times, iso_times, regular_times, time_ms

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


def _check_symbol(symbol: str, market: str) -> None:
    if market_id(symbol) != market:
        raise RowError(f"symbol {symbol!r} is another market than {market}")


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
        regular = regular_times(stamps, step)  # then on the step: a multiple of it
        times = regular or iso_times(stamps) or epoch_times(stamps)
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
            found = iso_times(stamps[:2])
            if found is not None:
                regular = regular_times(stamps, found[1] - found[0])
        times = regular or iso_times(stamps) or epoch_times(stamps)
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
