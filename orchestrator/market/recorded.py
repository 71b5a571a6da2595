"""Recorded market data: the files a paper run replays, loaded and checked.

Per market id (``BTCUSDT``) the data folder holds, gzipped (``.csv.gz``) or plain
(``.csv``), possibly several files of one kind that are merged:

- ``{venue}_{id}_spot_{interval}_*``, ``{venue}_{id}_perp_{interval}_*``: candles, columns
  ``timestamp,open,high,low,close,volume,source,symbol,data_type,turnover``;
  ``timestamp`` is the bar's open time, a multiple of the interval. The interval is
  the file name's: ``1h`` (the recorded data, what ``orchestrator data download``
  writes), ``1m``, ``5m``, ``4h``, ``1d``...: any count of minutes, hours or days that
  divides a day. A candle is known once it has closed, one interval after it opened.
  The files of one series share one interval.
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

The parts: records.py (candles, funding rates, errors), rows.py (one file, row by
row), parsers.py (what a row means, each checked), stamps.py (its times), series.py
(a series from its files), columns.py (what a replay reads of a
series, held or streamed), instruments.py (the instrument files).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import msgspec

from orchestrator.market.columns import as_list
from orchestrator.market.instruments import load_instruments
from orchestrator.market.records import (
    HOUR_MS,
    Candle,
    DataError,
    DataMissing,
    FundingRate,
    PairData,
    iso,
    market_id,
)
from orchestrator.market.series import KEEP_ROWS, Loader
from orchestrator.models import Instrument

__all__ = [
    "KEEP_ROWS",
    "Candle",
    "DataError",
    "DataMissing",
    "FundingRate",
    "PairData",
    "interval_of",
    "load_instruments",
    "load_pair",
    "market_id",
]


def load_pair(
    data_dir: Path,
    spot_symbol: str,
    perp_symbol: str,
    *,
    venue: str = "bybit",
    start_ms: int | None = None,
    end_ms: int | None = None,
    keep_rows: int = KEEP_ROWS,
) -> PairData:
    """Spot and perp candles and funding rates of one pair, oldest first.

    With a window, only rows whose timestamp (candle open time, funding time)
    is >= start_ms and < end_ms are kept; every row of every file is checked
    all the same. Each series is strictly increasing, without duplicates.

    A candle series is held in memory as a list when it fits in what is left of
    ``KEEP_ROWS`` (rows held by every loaded series together) and has at most
    ``keep_rows`` rows; otherwise it is not held: it is a sequence that streams its
    files when iterated, and its replay columns stream from a spill file
    (orchestrator/market/columns.py). Either way it holds the same candles.
    """
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise DataError(f"empty window: start {iso(start_ms)} is not before end {iso(end_ms)}")
    loader = Loader(data_dir, venue, spot_symbol, start_ms, end_ms, keep_rows)
    spot = loader.candles(spot_symbol, "spot")
    perp = loader.candles(perp_symbol, "perp")
    funding = loader.funding(perp_symbol)
    return PairData(
        spot_symbol, perp_symbol, as_list(spot), as_list(perp), funding, loader.warnings
    )


def interval_of(
    perp: Instrument, funding: Sequence[FundingRate], warnings: list[str] | None = None
) -> Instrument:
    """``perp`` with the funding interval its recorded settlements keep (the spacing
    most of them are apart, in whole hours), where it differs from the instruments
    file's: Bybit changes a perp's interval, and the file holds the one of the day it
    was written. Said in ``warnings``."""
    gaps = Counter(b.time_ms - a.time_ms for a, b in pairwise(funding))
    if not gaps:
        return perp
    gap = gaps.most_common(1)[0][0]
    if gap <= 0 or gap % HOUR_MS or 24 * HOUR_MS % gap:
        return perp  # no interval a venue settles on
    hours = gap // HOUR_MS
    if hours == perp.funding_interval_hours:
        return perp
    if warnings is not None:
        warnings.append(
            f"{perp.symbol}: its recorded funding settles every {hours} h, not every "
            f"{perp.funding_interval_hours} h as the instruments file says (Bybit changes a "
            f"perp's interval; the file holds the one of the day it was written): rates "
            f"are annualised over {hours} h"
        )
    return msgspec.structs.replace(perp, funding_interval_hours=hours)
