"""Market data the venue serves: instruments, and prices and funding either set by
hand, replayed from the recorded data, or generated from the time alone.

- ``load_instrument_entries``: the raw instruments-info entries of every
  ``bybit_instruments_info*.json`` in a data folder.
- ``RecordedMarket``: the recorded candles and funding rates (``load_pair``) of every
  pair of the folder on a market clock the venue moves forward; prices are the close
  of the last bar closed by then, funding settles at each recorded funding time (each
  perp at its own interval) at the perp's price; ``day_stats``: the last 24 hours of a
  market, as a ticker shows them.
- ``SyntheticHistory``: hourly klines and funding rates computed from the time
  (``kline_entry``, ``funding_rate``), so a test knows what it must receive.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from orchestrator.market.instruments import check_sections
from orchestrator.market.recorded import (
    Candle,
    DataError,
    DataMissing,
    FundingRate,
    PairData,
    load_pair,
)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
DEFAULT_HISTORY_START = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def load_instrument_entries(data_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """{"spot": {id: entry}, "linear": {id: entry}} from every instruments file in ``data_dir``."""
    files = sorted(data_dir.glob("bybit_instruments_info*.json"))
    if not files:
        raise DataError(f"no instrument file (bybit_instruments_info*.json) in {data_dir}")
    merged: dict[str, dict[str, dict[str, Any]]] = {"spot": {}, "linear": {}}
    for path in files:
        try:
            document = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read instruments: {exc}") from None
        except RecursionError:
            raise DataError(f"{path}: cannot read instruments: nested too deep") from None
        check_sections(path, document)  # the same shape the run's reader refuses
        for category in merged:
            for market, entry in document.get(category, {}).items():
                if category == "linear" and entry.get("contractType") != "LinearPerpetual":
                    continue
                merged[category][market] = entry
    return merged


# -- generated history -------------------------------------------------------------


def _seed(symbol: str) -> int:
    return sum(map(ord, symbol))


def kline_entry(category: str, symbol: str, start_ms: int) -> list[str]:
    """The v5 kline entry of the hour opening at ``start_ms``: [start, o, h, l, c, vol, turnover].

    Text a float cannot carry (trailing zeros, 17 significant digits) proves a client
    writes what the venue said.
    """
    hour = start_ms // HOUR_MS
    base = Decimal(_seed(symbol) * 80) + (Decimal("1.5") if category == "linear" else 0)

    def price(step: int) -> Decimal:
        return base + Decimal((step * 7919) % 2000 - 1000).scaleb(-1)

    cent = Decimal("0.01")
    open_, close = price(hour).quantize(cent), price(hour + 1).quantize(cent)
    high = (max(open_, close) + Decimal(hour % 13).scaleb(-1)).quantize(cent)
    low = (min(open_, close) - Decimal(hour % 7).scaleb(-1)).quantize(cent)
    volume = Decimal(hour % 5000 + 1).scaleb(-3)
    turnover = (volume * close + Decimal(hour % 97).scaleb(-8)).quantize(Decimal("1E-8"))
    return [str(start_ms), *(format(v, "f") for v in (open_, high, low, close, volume, turnover))]


def funding_rate(symbol: str, timestamp_ms: int) -> str:
    """The funding rate settled at ``timestamp_ms``, as Bybit writes it (-0.0003 ... 0.001)."""
    step = timestamp_ms // HOUR_MS + _seed(symbol)
    return format(Decimal((step * 7919) % 130000 - 30000).scaleb(-8).normalize(), "f")


def newest_first(times: Iterable[int], start: int, end: int, limit: int) -> list[int]:
    """Bybit's answer to a window holding more than ``limit`` rows: only the newest."""
    return sorted((t for t in times if start <= t <= end), reverse=True)[:limit]


@dataclass
class SyntheticHistory:
    """Hourly bars from ``start`` for ``hours`` hours; a perp settles every
    ``funding_hours`` when set, else at its own interval (``intervals``: hours by id,
    from its instrument's ``fundingInterval``; 8 when it has none)."""

    start: int = DEFAULT_HISTORY_START
    hours: int = 0
    funding_hours: int | None = None
    intervals: dict[str, int] = field(default_factory=dict)

    def klines(self, category: str, symbol: str, start: int, end: int, limit: int) -> list[Any]:
        bars = range(self.start, self.start + self.hours * HOUR_MS, HOUR_MS)
        return [kline_entry(category, symbol, t) for t in newest_first(bars, start, end, limit)]

    def funding(self, symbol: str, start: int, end: int, limit: int) -> list[dict[str, str]]:
        every = (self.funding_hours or self.intervals.get(symbol, 8)) * HOUR_MS
        times = range(self.start, self.start + self.hours * HOUR_MS, every)
        return [
            {
                "symbol": symbol,
                "fundingRate": funding_rate(symbol, t),
                "fundingRateTimestamp": str(t),
            }
            for t in newest_first(times, start, end, limit)
        ]


# -- recorded history --------------------------------------------------------------


def _kline(candle: Candle) -> list[str]:
    turnover = candle.volume * candle.close  # the recorded turnover is not kept by load_pair
    values = (candle.open, candle.high, candle.low, candle.close, candle.volume, turnover)
    return [str(candle.open_time_ms), *(format(v, "f") for v in values)]


@dataclass(frozen=True)
class DayStats:
    """A market's last 24 hours of closed hourly bars, as a v5 ticker shows them."""

    prev_price: Decimal  # the close 24 hours ago (the first open when younger)
    high: Decimal
    low: Decimal
    volume: Decimal  # in the base coin
    turnover: Decimal  # in the quote coin: the bars' volume * close, as their klines say


@dataclass
class _Series:
    data: PairData
    spot_open: list[int]
    perp_open: list[int]
    funding_times: list[int]


def require_hourly(data: PairData, where: str) -> None:
    """Refuse a pair whose candles are not hourly: every step of this market is an hour
    (its klines, its clock, a bar's close), so other candles would be read an hour late."""
    for name, candles in (("spot", data.spot), ("perp", data.perp)):
        if candles and candles[0].interval_ms != HOUR_MS:
            minutes = candles[0].interval_ms // 60_000
            size = f"{minutes}-minute" if minutes % 60 else f"{minutes // 60}-hour"
            raise DataError(
                f"{where}: the venue replays hourly candles; its {name} candles are {size} ones"
            )


def _whole(candles: list[Candle]) -> list[Candle]:
    return candles if type(candles) is list else list(candles)


class RecordedMarket:
    """The recorded pairs of ``data_dir`` on a market clock (epoch ms) moved by ``advance_to``."""

    def __init__(self, data_dir: Path, spot_ids: Iterable[tuple[str, str]]) -> None:
        """``spot_ids``: (market id, spot symbol) pairs to load: ("BTCUSDT", "BTC/USDT");
        those without spot and perp candles and funding in ``data_dir`` are left out."""
        self.series: dict[str, _Series] = {}
        for market_id, spot in spot_ids:
            perp = f"{spot}:{spot.split('/')[1]}"
            try:
                data = load_pair(data_dir, spot, perp)
            except DataMissing:
                continue
            require_hourly(data, f"{data_dir}: {market_id}")
            # Held whole, whatever load_pair streams to spare memory (the process's
            # KEEP_ROWS, shared by every pair): the venue looks bars up at random, and a
            # streamed series would read its files again at each look-up.
            data = msgspec.structs.replace(data, spot=_whole(data.spot), perp=_whole(data.perp))
            self.series[market_id] = _Series(
                data,
                [c.open_time_ms for c in data.spot],
                [c.open_time_ms for c in data.perp],
                [f.time_ms for f in data.funding],
            )
        if not self.series:
            raise DataError(f"no recorded pair (candles and funding) in {data_dir}")
        # Before anything recorded: the venue moves it to any start, the data's first
        # hour included (start_ms, the first closed bar, is an hour later).
        self.clock_ms = 0

    @property
    def start_ms(self) -> int:
        """The first moment every pair has a closed bar of both markets."""
        return max(max(s.spot_open[0], s.perp_open[0]) + HOUR_MS for s in self.series.values())

    @property
    def end_ms(self) -> int:
        return min(min(s.spot_open[-1], s.perp_open[-1]) + HOUR_MS for s in self.series.values())

    def end_at(self, end_ms: int) -> None:
        """Replay the data stamped before ``end_ms`` only (a rehearsal's window): the
        last prices are those known at ``end_ms``, the settlement stamped then is not
        made."""
        for s in self.series.values():
            data = s.data
            k_spot, k_perp = bisect_left(s.spot_open, end_ms), bisect_left(s.perp_open, end_ms)
            k_funding = bisect_left(s.funding_times, end_ms)
            s.data = msgspec.structs.replace(
                data,
                spot=list(data.spot[:k_spot]),
                perp=list(data.perp[:k_perp]),
                funding=list(data.funding[:k_funding]),
            )
            del s.spot_open[k_spot:], s.perp_open[k_perp:], s.funding_times[k_funding:]

    @staticmethod
    def _close_at(candles: list[Candle], opens: list[int], t: int) -> Decimal | None:
        """The close of the last bar closed by ``t`` (its open + 1 h <= t)."""
        i = bisect_right(opens, t - HOUR_MS)
        return candles[i - 1].close if i else None

    def prices_at(self, t: int) -> dict[tuple[str, str], Decimal]:
        out: dict[tuple[str, str], Decimal] = {}
        for market_id, s in self.series.items():
            spot = self._close_at(s.data.spot, s.spot_open, t)
            perp = self._close_at(s.data.perp, s.perp_open, t)
            if spot is not None:
                out["spot", market_id] = spot
            if perp is not None:
                out["linear", market_id] = perp
        return out

    def day_stats(self, category: str, market_id: str, t: int) -> DayStats | None:
        """The spot (``category`` "spot") or perp market's bars closed in the 24 hours
        before ``t``; None before its first bar closed."""
        s = self.series.get(market_id)
        if s is None:
            return None
        candles, opens = (
            (s.data.spot, s.spot_open) if category == "spot" else (s.data.perp, s.perp_open)
        )
        lo, hi = bisect_left(opens, t - DAY_MS), bisect_right(opens, t - HOUR_MS)
        if hi == 0:
            return None
        if lo >= hi:  # no bar in the last day (a gap): nothing traded
            last = candles[hi - 1].close
            return DayStats(last, last, last, Decimal(0), Decimal(0))
        bars = candles[lo:hi]
        return DayStats(
            prev_price=candles[lo - 1].close if lo else bars[0].open,
            high=max(c.high for c in bars),
            low=min(c.low for c in bars),
            volume=sum((c.volume for c in bars), Decimal(0)),
            turnover=sum((c.volume * c.close for c in bars), Decimal(0)),
        )

    def first_open(self, market_id: str) -> int | None:
        """When the pair's first perp bar opened: its listing, as far as the data knows."""
        s = self.series.get(market_id)
        return s.perp_open[0] if s is not None and s.perp_open else None

    def fundings_between(self, after: int, until: int) -> list[tuple[int, str, FundingRate]]:
        """Settlements with ``after < time <= until``, in time order: (time, id, rate)."""
        due: list[tuple[int, str, FundingRate]] = []
        for market_id, s in self.series.items():
            lo, hi = bisect_right(s.funding_times, after), bisect_right(s.funding_times, until)
            due.extend((f.time_ms, market_id, f) for f in s.data.funding[lo:hi])
        return sorted(due, key=lambda item: (item[0], item[1]))

    def next_funding(self, market_id: str, t: int) -> FundingRate | None:
        s = self.series.get(market_id)
        if s is None:
            return None
        i = bisect_right(s.funding_times, t)
        return s.data.funding[i] if i < len(s.funding_times) else None

    def klines(self, category: str, market_id: str, start: int, end: int, limit: int) -> list[Any]:
        s = self.series.get(market_id)
        if s is None:
            return []
        candles, opens = (
            (s.data.spot, s.spot_open) if category == "spot" else (s.data.perp, s.perp_open)
        )
        end = min(end, self.clock_ms - HOUR_MS)  # closed bars only: no look-ahead
        lo, hi = bisect_left(opens, start), bisect_right(opens, end)
        rows = [_kline(c) for c in candles[lo:hi]]
        return rows[::-1][:limit]

    def funding(self, market_id: str, start: int, end: int, limit: int) -> list[dict[str, str]]:
        s = self.series.get(market_id)
        if s is None:
            return []
        end = min(end, self.clock_ms)
        lo, hi = bisect_left(s.funding_times, start), bisect_right(s.funding_times, end)
        rows = [
            {
                "symbol": market_id,
                "fundingRate": format(f.rate, "f"),
                "fundingRateTimestamp": str(f.time_ms),
            }
            for f in s.data.funding[lo:hi]
        ]
        return rows[::-1][:limit]
