"""A generated data folder of many pairs, in the recorded format: hourly spot and perp
candles, funding at each perp's own interval (1, 2, 4 or 8 h) in regimes, an
instruments file saying each interval. For tests and benchmarks of the universe
(screen, ``pairs: auto``, the venue serving many pairs): never mistaken for market
data, every base coin is ``SYN<k>``.

Deterministic for a seed; integers throughout (prices in ticks, rates in 1e-8), so
every value is exact text.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

KLINE_HEADER = "timestamp,open,high,low,close,volume,source,symbol,data_type,turnover\n"
FUNDING_HEADER = "funding_timestamp,funding_rate,symbol,source\n"
START = datetime(2024, 1, 1, tzinfo=UTC)
INTERVALS = (8, 4, 2, 1)  # hours; pair k has INTERVALS[k % 4]
# Funding regimes: (lowest, highest) rate per 8 h in 1e-8, and the regimes that may follow.
REGIMES: dict[str, tuple[int, int, tuple[str, ...]]] = {
    "rich": (20_000, 60_000, ("rich", "normal")),
    "normal": (2_000, 15_000, ("normal", "rich", "thin", "negative")),
    "thin": (-1_000, 3_000, ("thin", "normal", "negative")),
    "negative": (-20_000, 500, ("thin", "normal")),
}
# Each pair's character: where it starts and how long a regime lasts (settlements).
CHARACTERS = ("rich", "normal", "thin", "negative", "normal")


def symbol(k: int) -> str:
    """Pair k's market id: SYN<k>USDT."""
    return f"SYN{k}USDT"


def _price(ticks: int) -> str:
    return f"{ticks // 100}.{ticks % 100:02d}"


def _rate(units: int) -> str:
    sign = "-" if units < 0 else ""
    return f"{sign}0.{abs(units):08d}"


def interval_hours(k: int) -> int:
    return INTERVALS[k % len(INTERVALS)]


def instruments(n_pairs: int) -> dict[str, dict[str, Any]]:
    """The instruments file's document: a spot and a linear entry per pair."""
    spot: dict[str, Any] = {}
    linear: dict[str, Any] = {}
    for k in range(n_pairs):
        base, market = f"SYN{k}", symbol(k)
        spot[market] = {
            "symbol": market,
            "baseCoin": base,
            "quoteCoin": "USDT",
            "status": "Trading",
            "lotSizeFilter": {"basePrecision": "0.01", "minOrderQty": "0.01", "minOrderAmt": "5"},
            "priceFilter": {"tickSize": "0.01"},
        }
        linear[market] = {
            "symbol": market,
            "baseCoin": base,
            "quoteCoin": "USDT",
            "settleCoin": "USDT",
            "status": "Trading",
            "contractType": "LinearPerpetual",
            "fundingInterval": interval_hours(k) * 60,
            "lotSizeFilter": {"qtyStep": "0.01", "minOrderQty": "0.01", "minNotionalValue": "5"},
            "priceFilter": {"tickSize": "0.01"},
        }
    return {"spot": spot, "linear": linear}


def _candles(rng: random.Random, k: int, hours: int) -> Iterator[tuple[str, str]]:
    """Per hour, pair k's spot and perp rows: a mean-reverting walk around its level in
    ticks of 0.01; the perp within 5 bps of the spot; turnover varies by pair."""
    level = 10_000 + 3_700 * k
    step, wick, floor = max(level // 200, 1), max(level // 400, 1), max(level // 4, 10)
    volume = 50 + (k * 37) % 400  # coins an hour, a pair's own
    s_close = p_close = level
    for h in range(hours):
        stamp = (START + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")
        s_open, p_open = s_close, p_close
        s_close = max(floor, s_open + rng.randint(-step, step) + (level - s_open) // 50)
        p_close = s_close + s_close * rng.randint(-5, 5) // 10_000
        rows = []
        for kind, o, c in (("spot", s_open, s_close), ("futures", p_open, p_close)):
            high = max(o, c) + rng.randint(0, wick)
            low = max(1, min(o, c) - rng.randint(0, wick))
            vol = volume + rng.randint(0, volume)
            turnover = vol * c  # ticks: hundredths of a USDT
            rows.append(
                f"{stamp},{_price(o)},{_price(high)},{_price(low)},{_price(c)},{vol},bybit,"
                f"{symbol(k)},{kind},{_price(turnover)}\n"
            )
        yield rows[0], rows[1]


def _funding(rng: random.Random, k: int, hours: int) -> Iterator[str]:
    """Settlements every interval_hours(k), in regimes of 5 to 40 days; a rate per
    interval is an 8 h rate scaled to the interval."""
    every = interval_hours(k)
    regime = CHARACTERS[k % len(CHARACTERS)]
    left = 0
    for h in range(0, hours, every):
        if left == 0:
            left = rng.randint(5 * 24 // every, 40 * 24 // every)
            if h:
                regime = rng.choice(REGIMES[regime][2])
        left -= 1
        low, high = REGIMES[regime][:2]
        stamp = (START + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")
        yield f"{stamp},{_rate(rng.randint(low, high) * every // 8)},{symbol(k)},bybit\n"


def write_folder(folder: Path, n_pairs: int, days: int, *, seed: int = 1, gz: bool = False) -> None:
    """Pairs SYN0USDT .. SYN<n-1>USDT over ``days`` days from 2024-01-01 into ``folder``
    (made if missing): the loader's file names, one instruments file."""
    folder.mkdir(parents=True, exist_ok=True)
    window = f"{START:%Y-%m-%d}_{START + timedelta(days=days):%Y-%m-%d}"
    (folder / "bybit_instruments_info_synthetic.json").write_text(
        json.dumps(instruments(n_pairs), indent=1)
    )
    suffix = ".csv.gz" if gz else ".csv"

    def out(name: str) -> Any:
        path = folder / f"{name}{suffix}"
        return gzip.open(path, "wt", compresslevel=1) if gz else path.open("w")

    hours = days * 24
    for k in range(n_pairs):
        rng = random.Random(seed * 1_000_003 + k)
        market = symbol(k)
        with (
            out(f"bybit_{market}_spot_1h_{window}") as spot,
            out(f"bybit_{market}_perp_1h_{window}") as perp,
        ):
            spot.write(KLINE_HEADER)
            perp.write(KLINE_HEADER)
            for spot_row, perp_row in _candles(rng, k, hours):
                spot.write(spot_row)
                perp.write(perp_row)
        with out(f"bybit_{market}_funding_rates_{window}") as funding:
            funding.write(FUNDING_HEADER)
            funding.writelines(_funding(rng, k, hours))


def main(argv: list[str] | None = None) -> int:
    """``python -m orchestrator.market.synthetic FOLDER [--pairs N] [--days D] [--seed S]``"""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.market.synthetic",
        description="Write a generated data folder of many pairs (SYN0USDT, ...), funding "
        "every 8, 4, 2 or 1 h, to try the screen and pairs: auto offline.",
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--pairs", type=int, default=50, choices=range(1, 1001), metavar="N")
    parser.add_argument("--days", type=int, default=60, choices=range(1, 3651), metavar="D")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    write_folder(args.folder, args.pairs, args.days, seed=args.seed)
    print(f"wrote {args.pairs} pairs x {args.days} days to {args.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
