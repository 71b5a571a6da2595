"""Download Bybit's public history into the recorded-data format, resumable page by page.

Per pair it writes, under ``data_dir``:

- ``bybit_<PERP>_funding_rates_<since>_<until>.csv.gz``
  (``funding_timestamp,funding_rate,symbol,source``),
- ``bybit_<SPOT>_spot_1h_<since>_<until>.csv.gz`` and ``bybit_<PERP>_perp_1h_...``
  (``timestamp,open,high,low,close,volume,source,symbol,data_type,turnover``, stamped with
  the bar's open time),

and ``bybit_instruments_info_<BASES>_<capture day>.json`` holding the raw instruments-info
entries as ``{"spot": {id: raw}, "linear": {id: raw}}`` of the markets no instruments file
there lists yet. Dates in names are UTC days, the end exclusive (the day after the last row
when ``until`` is midnight, else the day after ``until``).

Numbers are the venue's own text, never a float's: funding rates come from the raw entry
ccxt keeps in ``info``; klines come from ccxt's implicit ``/v5/market/kline`` method because
``fetch_ohlcv`` turns them into floats and drops Bybit's turnover (the quote notional,
which a product ``close * volume`` would only approximate).

A series is first written to ``<final>.partial`` (plain CSV, one whole page per write) and
continues after its last row when a run is restarted; a finished series is gzipped
deterministically (no name, mtime 0) to the final name. A final file that exists is
complete and left alone.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple, TextIO, TypeVar

import ccxt
import ccxt.async_support as ccxt_async

from orchestrator.bybit.client import REST_BASES
from orchestrator.bybit.retry import retry_network_errors, venue_failure
from orchestrator.exceptions import OrchestratorError

T = TypeVar("T")

Progress = Callable[[str, int, int], None]
"""``progress(series, done_ms, total_ms)``, called as each page lands."""

SOURCE = "bybit"
FUNDING_HEADER = "funding_timestamp,funding_rate,symbol,source"
KLINE_HEADER = "timestamp,open,high,low,close,volume,source,symbol,data_type,turnover"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# Bybit's page maxima.
KLINE_LIMIT = 1000
FUNDING_LIMIT = 200
ATTEMPTS = 6  # per page, for network errors only
TIMEOUT_MS = 10_000  # ccxt's own default: one request waits this long for its answer

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T.+")


class DownloadError(OrchestratorError):
    """A series could not be downloaded; the message names it and what the venue said.

    Its partial file is kept: running the download again continues from there.
    """


class InvalidDateError(OrchestratorError, ValueError):
    """A date that cannot be read, or a window that is empty or not over yet."""


class _Row(NamedTuple):
    ts: int  # epoch ms, the row's key
    line: str  # the CSV line without its newline


@dataclass(frozen=True)
class _Series:
    label: str  # e.g. "BTCUSDT spot 1h", for progress and errors
    path: Path  # the final .csv.gz
    header: str
    step_ms: int  # nominal spacing of the rows
    limit: int  # page size asked for
    fetch: Callable[[int, int], Awaitable[list[_Row]]]  # rows in [start, end), any order


def parse_date(text: str) -> int:
    """Epoch ms of ``2024-01-01`` (midnight UTC) or an ISO datetime with its offset
    (``2024-01-01T08:00:00Z``, ``...+02:00``)."""
    text = text.strip()
    try:
        if _DAY_TEXT.fullmatch(text):
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        elif _DATETIME_TEXT.fullmatch(text):
            moment = datetime.fromisoformat(text)
        else:
            raise ValueError
    except ValueError:
        raise InvalidDateError(
            f"{text!r} is not a date: write 2024-01-01 or 2024-01-01T08:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise InvalidDateError(f"{text!r} has no time zone: add Z for UTC")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def make_public_exchange(url: str | None = None, timeout_ms: int = TIMEOUT_MS) -> Any:
    """A ccxt async Bybit client for public market data only (no keys); close it after use.

    ``url``: any Bybit v5 compatible venue (``orchestrator venue``) instead of Bybit: every
    REST base points there."""
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": timeout_ms,
        "has": {"fetchCurrencies": False},  # coin metadata is not needed here
        # Inverse and option instrument lists are not needed either.
        "options": {"fetchMarkets": {"types": ["spot", "linear"]}},
    }
    if url is not None:
        api = dict.fromkeys(REST_BASES, url)
        config["urls"] = {"api": api, "test": api, "demotrading": api}
    return ccxt_async.bybit(config)


class TextProgress:
    """A text bar per series on a stream (stderr by default), redrawn in place."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._open: str | None = None  # the series whose line is not finished

    def __call__(self, series: str, done_ms: int, total_ms: int) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        if self._open not in (None, series):
            stream.write("\n")  # the previous series stopped early: keep its line
        fraction = 1.0 if total_ms <= 0 else max(0.0, min(done_ms / total_ms, 1.0))
        filled = round(fraction * self._width)
        bar = "#" * filled + "." * (self._width - filled)
        stream.write(f"\r{series:<20} [{bar}] {fraction:4.0%}")
        finished = done_ms >= total_ms
        if finished:
            stream.write("\n")
        self._open = None if finished else series
        stream.flush()


def check_window(since_ms: int, until_ms: int) -> None:
    """Refuse a window that is empty or not over yet (before anything is asked)."""
    if since_ms >= until_ms:
        raise InvalidDateError(f"the window {_iso(since_ms)} .. {_iso(until_ms)} is empty")
    if until_ms > time.time() * 1000:
        raise InvalidDateError(f"{_iso(until_ms)} is in the future: its candles are not final")


def check_data_dir(data_dir: Path) -> None:
    """Refuse, before anything is asked of the venue, a data folder the download could
    not write: a file, a path under a file, a folder that cannot be made or written.
    Nothing is left behind: a probe file is made and removed in the folder, or in the
    nearest folder above it that is there (the download makes the rest)."""
    there = data_dir
    while not there.exists() and there.parent != there:
        there = there.parent
    if there.exists() and not there.is_dir():
        where = "is a file" if there == data_dir else f"is under {there}, a file"
        raise DownloadError(f"the data folder {data_dir} {where}, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".orchestrator-probe-", dir=there)
    except OSError as exc:
        cause = exc.strerror or type(exc).__name__
        inside = "" if there == data_dir else f" ({there} takes no new entry)"
        raise DownloadError(
            f"the data folder {data_dir} cannot be written{inside}: {cause}"
        ) from None
    os.close(handle)
    os.unlink(probe)


async def download(
    exchange: Any,
    pairs: Sequence[tuple[str, str]],
    since_ms: int,
    until_ms: int,
    data_dir: Path,
    *,
    progress: Progress | None = None,
    attempts: int = ATTEMPTS,
) -> list[Path]:
    """Download each (spot, perp) pair's funding and hourly candles over [since, until).

    ``exchange`` is a ``ccxt.async_support.bybit`` the caller creates and closes. Returns
    the instruments file if one was written, then per pair the funding, spot and perp files
    (downloaded now or already complete). A download that fails removes the folders it
    made and left empty; what it wrote stays, to be continued by running it again.
    """
    check_window(since_ms, until_ms)
    check_data_dir(data_dir)
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    report = progress if progress is not None else TextProgress()
    unique = list(dict.fromkeys(pairs))
    made = [folder for folder in (data_dir, *data_dir.parents) if not folder.exists()]
    try:
        await _call("markets", exchange.load_markets, attempts)
        # The window must be over on the venue's clock too, not only on ours: a venue
        # replaying recorded data (orchestrator venue --recorded) stands in its past, and
        # a window past its time would be cut there and filed as whole.
        venue_ms = int(await _call("time", exchange.fetch_time, attempts))
        if until_ms > venue_ms:
            raise InvalidDateError(
                f"{_iso(until_ms)} is after the venue's time, {_iso(venue_ms)}: what it "
                "has after that is not final (download up to its time, or start it later)"
            )
        markets = [
            (_market(exchange, s, "spot"), _market(exchange, p, "linear")) for s, p in unique
        ]
        paths = _write_instruments(data_dir, markets)
        window = f"{_day(since_ms)}_{_day(-(-until_ms // DAY_MS) * DAY_MS)}"
        for spot, perp in markets:
            for series in (
                _funding_series(exchange, perp, data_dir, window, attempts),
                _kline_series(exchange, spot, data_dir, window, attempts),
                _kline_series(exchange, perp, data_dir, window, attempts),
            ):
                paths.append(await _download_series(series, since_ms, until_ms, report))
    except BaseException:
        _remove_if_empty(made)
        raise
    return paths


def _remove_if_empty(folders: list[Path]) -> None:
    """Removes these folders (innermost first) while they are empty: a failed download
    leaves no empty data folder for the next run to mistake for data."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (a partial file to continue from), or never made
            return


# -- the series ------------------------------------------------------------------


def _funding_series(
    exchange: Any, market: Any, data_dir: Path, window: str, attempts: int
) -> _Series:
    market_id, label = market["id"], f"{market['id']} funding"
    minutes = market["info"].get("fundingInterval")
    step_ms = int(minutes) * 60_000 if minutes else 8 * HOUR_MS

    async def fetch(start: int, end: int) -> list[_Row]:
        rates = await _call(
            label,
            lambda: exchange.fetch_funding_rate_history(
                market["symbol"], start, FUNDING_LIMIT, {"until": end - 1}
            ),
            attempts,
        )
        rows = []
        for rate in rates:
            raw = rate.get("info") or {}
            text = _number(raw.get("fundingRate"), label, raw)
            rows.append(
                _Row(rate["timestamp"], f"{_iso(rate['timestamp'])},{text},{market_id},{SOURCE}")
            )
        return rows

    path = data_dir / f"bybit_{market_id}_funding_rates_{window}.csv.gz"
    return _Series(label, path, FUNDING_HEADER, step_ms, FUNDING_LIMIT, fetch)


def _kline_series(
    exchange: Any, market: Any, data_dir: Path, window: str, attempts: int
) -> _Series:
    market_id = market["id"]
    category = "spot" if market["spot"] else "linear"
    kind, data_type = ("spot", "spot") if market["spot"] else ("perp", "futures")
    label = f"{market_id} {kind} 1h"

    async def fetch(start: int, end: int) -> list[_Row]:
        # Bybit also returns the bar that contains ``start``: ask from the next bar opening.
        first = -(-start // HOUR_MS) * HOUR_MS
        if first >= end:
            return []
        request = {
            "category": category,
            "symbol": market_id,
            "interval": "60",
            "start": first,
            "end": end - 1,
            "limit": KLINE_LIMIT,
        }
        response = await _call(
            label, lambda: exchange.public_get_v5_market_kline(request), attempts
        )
        entries = (response.get("result") or {}).get("list")
        if not isinstance(entries, list):
            raise DownloadError(f"{label}: the venue sent no kline list: {response!r}")
        rows = []
        for entry in entries:
            if not isinstance(entry, list) or len(entry) < 7:
                raise DownloadError(f"{label}: unexpected kline entry {entry!r}")
            ts = _integer(entry[0], label, entry)
            o, h, low, c, v, turnover = (_number(x, label, entry) for x in entry[1:7])
            rows.append(
                _Row(
                    ts,
                    f"{_iso(ts)},{o},{h},{low},{c},{v},{SOURCE},{market_id},{data_type},{turnover}",
                )
            )
        return rows

    path = data_dir / f"bybit_{market_id}_{kind}_1h_{window}.csv.gz"
    return _Series(label, path, KLINE_HEADER, HOUR_MS, KLINE_LIMIT, fetch)


async def _download_series(series: _Series, since: int, until: int, progress: Progress) -> Path:
    # File work stays synchronous: it is local and small, and a page written by one
    # synchronous call cannot be split by a cancellation.
    final = series.path
    partial = final.with_name(final.name + ".partial")
    total = until - since
    if final.exists():
        partial.unlink(missing_ok=True)  # left behind if a run stopped right after gzipping
        progress(series.label, total, total)
        return final
    last = _resume_point(partial, series.header)
    cursor = since if last is None else max(since, last + 1)
    # A window holds at most limit - 1 rows at the nominal spacing, so a full page means the
    # rows are denser than that and, as Bybit keeps the newest of a window, some older ones
    # may be missing: the window is then halved and asked again.
    span = series.step_ms * (series.limit - 1)
    with partial.open("ab", buffering=0) as out:
        if out.tell() == 0:
            out.write(f"{series.header}\n".encode())
        progress(series.label, cursor - since, total)
        while cursor < until:
            end = min(cursor + span, until)
            rows = await series.fetch(cursor, end)
            if len(rows) >= series.limit and span > 1:
                span //= 2
                continue
            fresh = _in_order(rows, cursor, end, last, series.label)
            if fresh:
                # One unbuffered write per page: an interrupt lands between whole pages.
                out.write("".join(f"{row.line}\n" for row in fresh).encode())
                last = fresh[-1].ts
            cursor = end  # an empty page (no history there) moves on all the same
            progress(series.label, cursor - since, total)
    if last is None:
        partial.unlink()
        raise DownloadError(
            f"{series.label}: Bybit has no rows from {_iso(since)} to {_iso(until)}: "
            "the window is outside the market's history"
        )
    _gzip(partial, final)
    partial.unlink()
    return final


def _in_order(rows: list[_Row], start: int, end: int, last: int | None, label: str) -> list[_Row]:
    """The page's rows in [start, end) after ``last``, once each, oldest first."""
    kept: dict[int, _Row] = {}
    for row in rows:
        if not start <= row.ts < end or (last is not None and row.ts <= last):
            continue
        seen = kept.setdefault(row.ts, row)
        if seen.line != row.line:
            raise DownloadError(f"{label}: the venue sent two rows for {_iso(row.ts)}")
    return [kept[ts] for ts in sorted(kept)]


# -- files -----------------------------------------------------------------------


def _resume_point(partial: Path, header: str) -> int | None:
    """The last timestamp of a partial file, after dropping a line cut short by a crash."""
    if not partial.exists():
        return None
    data = partial.read_bytes()
    whole = data.rfind(b"\n") + 1
    if whole < len(data):
        with partial.open("r+b") as f:
            f.truncate(whole)
    lines = data[:whole].decode().splitlines()
    if lines and lines[0] != header:
        raise DownloadError(f"{partial} does not start with {header!r}: delete it to start over")
    if len(lines) < 2:
        return None
    stamp = lines[-1].split(",", 1)[0]
    try:
        return parse_date(stamp)
    except InvalidDateError:
        raise DownloadError(f"{partial}: unreadable last timestamp {stamp!r}") from None


def _gzip(source: Path, target: Path) -> None:
    """``gzip -9 -n``: no file name and mtime 0, so equal data gives equal bytes."""
    temporary = target.with_name(target.name + ".tmp")
    with (
        source.open("rb") as src,
        temporary.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as out,
    ):
        shutil.copyfileobj(src, out)
    os.replace(temporary, target)


def _write_instruments(data_dir: Path, markets: list[tuple[Any, Any]]) -> list[Path]:
    """Adds the markets no instruments file in ``data_dir`` lists yet, as of today.

    Markets already listed are left alone: the replay merges every instruments file and
    refuses two different entries for one market.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    existing = {p: _instrument_sections(p) for p in data_dir.glob("bybit_instruments_info*.json")}
    listed = {
        (category, market_id)
        for sections in existing.values()
        for category, section in sections.items()
        for market_id in section
    }
    added: dict[str, dict[str, Any]] = {"spot": {}, "linear": {}}
    bases: dict[str, None] = {}
    for spot, perp in markets:
        for category, market in (("spot", spot), ("linear", perp)):
            if (category, market["id"]) not in listed:
                added[category][market["id"]] = market["info"]
                bases[market["base"]] = None
    if not bases:
        return []
    today = _day(int(time.time() * 1000))  # a snapshot of now, not of the window
    path = data_dir / f"bybit_instruments_info_{'_'.join(bases)}_{today}.json"
    snapshot = existing.get(path, {"spot": {}, "linear": {}})  # earlier today, other markets
    for category, entries in added.items():
        snapshot.setdefault(category, {}).update(entries)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(snapshot, indent=2) + "\n")
    os.replace(temporary, path)
    return [path]


def _instrument_sections(path: Path) -> dict[str, dict[str, Any]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise DownloadError(f"{path}: cannot read this instruments file: {exc}") from exc
    if not isinstance(document, dict):
        raise DownloadError(f"{path}: expected an object with spot and linear sections")
    return {c: s for c in ("spot", "linear") if isinstance(s := document.get(c), dict)}


# -- venue -----------------------------------------------------------------------


async def _call(label: str, call: Callable[[], Awaitable[T]], attempts: int) -> T:
    """One request, retried on network errors only (a wider predicate would swallow
    cancellation); any ccxt error left becomes a DownloadError naming the series and,
    for a network error, its cause (name not resolved, refused, no answer)."""
    try:
        return await retry_network_errors(call, attempts=attempts, base_delay=0.25, max_delay=8.0)
    except ccxt.BaseError as exc:
        raise DownloadError(f"{label}: {venue_failure(exc, attempts)}") from exc


def _market(exchange: Any, symbol: str, category: str) -> Any:
    try:
        market = exchange.market(symbol)
    except ccxt.BadSymbol:
        raise DownloadError(f"{symbol}: Bybit lists no such market") from None
    wanted = market["spot"] if category == "spot" else market["linear"] and market["swap"]
    if not wanted:
        kind = "spot market" if category == "spot" else "linear perpetual"
        raise DownloadError(f"{symbol}: not a {kind}")
    return market


def _number(text: Any, label: str, entry: Any) -> str:
    """The venue's text of a number, kept as sent once checked to be a finite number."""
    try:
        valid = isinstance(text, str) and Decimal(text).is_finite()
    except InvalidOperation:
        valid = False
    if not valid:
        raise DownloadError(f"{label}: {text!r} is not a number in {entry!r}")
    return str(text)


def _integer(text: Any, label: str, entry: Any) -> int:
    if not isinstance(text, str) or not text.isdigit():
        raise DownloadError(f"{label}: {text!r} is not a timestamp in {entry!r}")
    return int(text)


def _iso(ms: int) -> str:
    moment = _EPOCH + timedelta(milliseconds=ms)
    fraction = f".{ms % 1000:03d}" if ms % 1000 else ""  # exact, so a resume finds its place
    return f"{moment:%Y-%m-%dT%H:%M:%S}{fraction}Z"


def _day(ms: int) -> str:
    return f"{_EPOCH + timedelta(milliseconds=ms):%Y-%m-%d}"
