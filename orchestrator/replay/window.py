"""The one rule for a window of market time, paper or live.

A window from ``start`` to ``end`` holds the rows stamped in ``[start, end)``, as
``data.start``/``data.end`` load them: the candles opening in it (each known at its
close, so prices from ``start`` + 1 h to ``end``) and the settlements at
``start <= t < end``. The rates settled before ``start`` warm the strategy up, as a
live run reads them from the venue when it starts; the settlement at ``start`` comes
before any price, so it too only informs the strategy. The run ends at ``end``: its
last decisions and its closes are on the prices known then, before the settlement
stamped ``end`` (the next window's). Equity is sampled at ``start`` (the starting
balance), after each hour's decisions, and at ``end`` once what was held is closed.

``data.start``/``data.end`` in a replay, ``orchestrator rehearse --start/--hours``
and the rehearsal's paper baseline all cut their data here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec

from orchestrator.config import Config, parse_time
from orchestrator.market.records import Candle, FundingRate, PairData
from orchestrator.market.series import Loader


class Window(msgspec.Struct, frozen=True):
    """Where a replay starts (``start_ms``) and, per pair, the rates settled by then
    (the last ones, oldest first) that warm its strategy up."""

    start_ms: int
    warm_up: list[list[FundingRate]]


def _candles(candles: list[Candle], start_ms: int, end_ms: int | None) -> list[Candle]:
    """The candles opening in the window; the series itself when all of it does (a
    streamed series stays streamed)."""
    if not candles:
        return candles
    first, last = candles[0].open_time_ms, candles[-1].open_time_ms
    if first >= start_ms and (end_ms is None or last < end_ms):
        return candles
    return [
        c
        for c in candles
        if c.open_time_ms >= start_ms and (end_ms is None or c.open_time_ms < end_ms)
    ]


def cut(
    datasets: Sequence[PairData],
    start_ms: int,
    end_ms: int | None,
    depth: int,
    settled: Sequence[Sequence[FundingRate]] | None = None,
) -> tuple[list[PairData], Window]:
    """The datasets in the window, and the ``depth`` rates settled before its start.
    ``settled``: each pair's whole funding series, when ``datasets`` hold only part of
    it (a replay loads only its window)."""
    out: list[PairData] = []
    warm: list[list[FundingRate]] = []
    for i, data in enumerate(datasets):
        funding = list(settled[i]) if settled is not None else list(data.funding)
        inside = [
            f for f in funding if f.time_ms >= start_ms and (end_ms is None or f.time_ms < end_ms)
        ]
        before = [f for f in funding if f.time_ms < start_ms]
        warm.append(before[-depth:] if depth > 0 else [])
        out.append(
            msgspec.structs.replace(
                data,
                spot=_candles(data.spot, start_ms, end_ms),
                perp=_candles(data.perp, start_ms, end_ms),
                funding=inside,
            )
        )
    return out, Window(start_ms, warm)


def settled_rates(data_dir: Path, venue: str, data: PairData) -> list[FundingRate]:
    """Every recorded settlement of the pair, whatever window its data was loaded for
    (its warnings were said when the window was loaded)."""
    return list(Loader(data_dir, venue, data.spot_symbol, None, None).funding(data.perp_symbol))


def warm_up_depth(config: Config, auto: bool = False) -> int:
    """The settlements before a window's start a replay warms up on: what the strategy
    reads; under ``pairs: auto``, what the ranking reads too (the universe's history
    and minimum history, in hourly settlements: the shortest interval)."""
    depth = max(config.strategy.funding_window, config.strategy.negative_streak)
    if auto:
        u = config.universe
        depth = max(depth, max(u.history_days, u.min_history_days) * 24)
    return depth


def config_window(
    config: Config, data_dir: Path, datasets: Sequence[PairData], auto: bool = False
) -> tuple[list[PairData], Window | None]:
    """A replay's data: with ``data.start`` or ``data.end`` (``datasets`` loaded for
    them), the window's as a rehearsal of the same hours takes it; the whole data,
    as loaded, otherwise."""
    start, end = (
        None if text is None else int(parse_time(text).timestamp() * 1000)
        for text in (config.data.start, config.data.end)
    )
    if start is None and end is None:
        return list(datasets), None
    if start is None:  # from the data's first hour
        start = min(c[0].open_time_ms for d in datasets for c in (d.spot, d.perp) if c)
    settled = [settled_rates(data_dir, config.venue, d) for d in datasets]
    return cut(datasets, start, end, warm_up_depth(config, auto), settled)
