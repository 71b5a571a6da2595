"""A synthetic market of many pairs (orchestrator.market.synthetic) served by the shipped
venue in its own process, and the plain recomputation of what it must serve, read
straight from the folder's files (csv and json, no orchestrator code)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
N_PAIRS = 40
DAYS = 60
CLOCK = "2024-02-15"  # the market time the venue is started at
CLOCK_MS = 1_707_955_200_000


def ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass(frozen=True)
class Expected:
    """One pair as its files say, at CLOCK_MS."""

    market: str
    interval_hours: int
    rates: list[tuple[int, Decimal]]  # every settlement, oldest first
    turnover_24h: Decimal  # the perp's last 24 closed hourly bars
    spot_last: Decimal
    perp_last: Decimal
    next_rate: tuple[int, Decimal]  # the first settlement after the clock

    def settled_since(self, since_ms: int, now_ms: int = CLOCK_MS) -> list[tuple[int, Decimal]]:
        return [(t, r) for t, r in self.rates if since_ms <= t <= now_ms]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def expected(folder: Path, now_ms: int = CLOCK_MS) -> dict[str, Expected]:
    """Every pair of the folder at ``now_ms``, recomputed from its files."""
    document = json.loads(next(folder.glob("bybit_instruments_info*.json")).read_text())
    out = {}
    for market, entry in document["linear"].items():
        (spot_file,) = folder.glob(f"bybit_{market}_spot_1h_*.csv")
        (perp_file,) = folder.glob(f"bybit_{market}_perp_1h_*.csv")
        (funding_file,) = folder.glob(f"bybit_{market}_funding_rates_*.csv")
        closed = [  # bars closed by now: opened an hour before or earlier
            [r for r in _rows(path) if ms(r["timestamp"]) + HOUR_MS <= now_ms]
            for path in (spot_file, perp_file)
        ]
        day = [r for r in closed[1] if ms(r["timestamp"]) >= now_ms - DAY_MS]
        rates = [
            (ms(r["funding_timestamp"]), Decimal(r["funding_rate"])) for r in _rows(funding_file)
        ]
        out[market] = Expected(
            market=market,
            interval_hours=int(entry["fundingInterval"]) // 60,
            rates=rates,
            turnover_24h=sum((Decimal(r["turnover"]) for r in day), Decimal(0)),
            spot_last=Decimal(closed[0][-1]["close"]),
            perp_last=Decimal(closed[1][-1]["close"]),
            next_rate=next((t, r) for t, r in rates if t > now_ms),
        )
    return out


@contextmanager
def venue_process(data_dir: Path, *args: str) -> Iterator[str]:
    """``orchestrator venue --recorded`` on ``data_dir`` in its own process, its market
    clock at CLOCK (still); its URL. Stopped (and waited for) after."""
    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRATOR_DATA"}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "venue", "--recorded", "--data-dir",
         str(data_dir), "--start", CLOCK, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def iso_day(ms_: int) -> str:
    return datetime.fromtimestamp(ms_ / 1000, UTC).strftime("%Y-%m-%d")
