"""What recorded market data is made of: candles, funding rates, a pair's series, the
errors that refuse a file, and the few words every part of the loader speaks in
(times, intervals, lists of lines)."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from orchestrator.exceptions import OrchestratorError

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
# Market data lies in [2009-01-01, 2100-01-01): Bitcoin's first block is from
# January 2009. A time outside is a unit mistake (seconds, microseconds) or junk.
FIRST_MS = 1_230_768_000_000
END_MS = 4_102_444_800_000
FIRST_YEAR, END_YEAR = 2009, 2100
LISTED_LINES = 20  # a warning lists at most this many line numbers
SHOWN_CHARACTERS = 40  # a message quotes at most this much of a cell
# A candle file names its interval: ``{venue}_{id}_spot_1h_...``, ``..._perp_1m_...``.
_INTERVAL = re.compile(r"([1-9]\d{0,3})([mhd])")
_UNIT_MS = {"m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}
_UNIT_WORD = {"m": "minute", "h": "hour", "d": "day"}


class DataError(OrchestratorError):
    """Recorded data that cannot be used; the message names the file (and line)."""


class DataMissing(DataError):
    """Data a run needs is not there; the message says what and gives the exact
    ``orchestrator data download`` command that fetches it (``what`` alone, without the
    command, lets a caller name the missing data of several pairs with one command)."""

    def __init__(
        self,
        what: str,
        pairs: Sequence[str],
        data_dir: Path,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> None:
        self.what, self.pairs, self.data_dir = what, list(pairs), data_dir
        self.start_ms, self.end_ms = start_ms, end_ms
        command = download_command(self.pairs, data_dir, start_ms, end_ms)
        super().__init__(f"{what}: fetch the data with `{command}`")

    def __reduce__(self) -> tuple[Any, ...]:
        # Sweep trials raise it in Dask workers: it must cross a pickle whole.
        return (type(self), (self.what, self.pairs, self.data_dir, self.start_ms, self.end_ms))

    @classmethod
    def of_all(cls, errors: Sequence[DataMissing]) -> DataMissing:
        """One error for several pairs' missing data, with one command for all of them."""
        first = errors[0]
        pairs = list(dict.fromkeys(p for e in errors for p in e.pairs))
        what = "; ".join(dict.fromkeys(e.what for e in errors))
        return cls(what, pairs, first.data_dir, first.start_ms, first.end_ms)


def download_command(
    pairs: Sequence[str], data_dir: Path, start_ms: int | None, end_ms: int | None
) -> str:
    """The ``orchestrator data download`` command that writes these pairs' data (spot
    symbols) into ``data_dir`` over the window (the download's default window without)."""
    words = ["orchestrator", "data", "download", "--pairs", ",".join(pairs)]
    words += ["--data-dir", _shown_dir(data_dir)]
    if start_ms is not None:
        words += ["--since", _cli_time(start_ms)]
    if end_ms is not None:
        words += ["--until", _cli_time(end_ms)]
    return shlex.join(words)


def _shown_dir(folder: Path) -> str:
    """The folder as the user would type it here: relative when it is near, else absolute."""
    absolute = folder.absolute()
    relative = os.path.relpath(absolute)
    return relative if not relative.startswith(("../..", "..\\..")) else str(absolute)


def _cli_time(ms: int) -> str:
    return iso(ms)[:10] if ms % DAY_MS == 0 else iso(ms)


class Candle(msgspec.Struct, frozen=True, gc=False):
    # gc=False: a long replay holds millions and they never form cycles.
    open_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    interval_ms: int = HOUR_MS  # from the file's name: _1h_, _1m_, ...

    @property
    def close_time_ms(self) -> int:
        """When the bar closed: the earliest moment its prices are known."""
        return self.open_time_ms + self.interval_ms


class FundingRate(msgspec.Struct, frozen=True, gc=False):
    time_ms: int  # the settlement time
    rate: Decimal  # a fraction per funding interval; positive: longs pay shorts


class PairData(msgspec.Struct, frozen=True):
    """One pair's series, oldest first. Loaded candle series are lists, or, when too
    long to hold, sequences that read their files when iterated and stream their
    replay columns (orchestrator/market/columns.py: typed as lists, used as lists)."""

    spot_symbol: str
    perp_symbol: str
    spot: list[Candle]
    perp: list[Candle]
    funding: list[FundingRate]
    warnings: list[str]  # human-readable, each naming the file and line(s)


class Interval(msgspec.Struct, frozen=True):
    """A candle interval as a file names it (``1h``, ``1m``, ``5m``, ``1d``)."""

    text: str
    ms: int
    noun: str  # "hourly candle", "1-minute candle", "5-minute candle", "daily candle"
    boundary: str  # "the hour", "a minute", "a 5-minute boundary"


def parse_interval(token: str) -> Interval | None:
    """The interval a file name's token gives, or None when the token is no interval.
    An interval must divide a day, so that a candle's open time is a multiple of it."""
    found = _INTERVAL.fullmatch(token)
    if found is None:
        return None
    count, unit = int(found[1]), found[2]
    ms = count * _UNIT_MS[unit]
    if DAY_MS % ms:
        return None
    word = _UNIT_WORD[unit]
    if count == 1:
        noun = {"m": "1-minute candle", "h": "hourly candle", "d": "daily candle"}[unit]
        boundary = {"m": "a minute", "h": "the hour", "d": "a day (00:00 UTC)"}[unit]
    else:
        noun = f"{count}-{word} candle"
        boundary = f"a {count}-{word} boundary"
    return Interval(token, ms, noun, boundary)


def market_id(symbol: str) -> str:
    """The venue's market id of a ccxt unified symbol: BTC/USDT and BTC/USDT:USDT -> BTCUSDT."""
    return symbol.split(":", 1)[0].replace("/", "")


# --- words the messages share ----------------------------------------------------


def iso(ms: int) -> str:
    moment = EPOCH + ms * ONE_MS
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ms % 1000:03d}Z" if ms % 1000 else "Z")


def shown(text: str, *, quote: bool = True) -> str:
    """A cell's text for a message: quoted, and cut short when long."""
    if len(text) > SHOWN_CHARACTERS:
        cut = f"{text[:SHOWN_CHARACTERS]}... ({len(text):,} characters)"
        return repr(cut) if quote else cut
    return repr(text) if quote else text


def rows(items: list[Any], noun: str) -> str:
    """ "1 duplicate row", "3 duplicate rows"."""
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def listed(items: list[Any]) -> str:
    """The first LISTED_LINES items, comma-separated, and how many more."""
    text = ", ".join(map(str, items[:LISTED_LINES]))
    more = f" and {len(items) - LISTED_LINES} more" if len(items) > LISTED_LINES else ""
    return text + more


def lines(numbers: list[int]) -> str:
    """ "line 3", "lines 3, 6, ... and 5 more"."""
    return f"{'line' if len(numbers) == 1 else 'lines'} {listed(numbers)}"


def duration(ms: int, step: int) -> str:
    """A spacing in hours ("4h", "0.5h") for series of hourly or longer steps; in
    minutes ("5m") for finer ones."""
    if step >= HOUR_MS:
        return f"{ms / HOUR_MS:g}h"
    return f"{ms / MINUTE_MS:g}m"
