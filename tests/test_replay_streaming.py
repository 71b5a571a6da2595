"""Candle intervals from the file names, series too long to hold streamed from their
files, and the compact hourly curves: the replay gives the same ledger either way."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator.config import load
from orchestrator.market.columns import StreamedSeries, columns_of
from orchestrator.market.recorded import DataError, load_pair
from orchestrator.output.report import write_ledgers
from orchestrator.replay.engine import Replay
from orchestrator.replay.session import prepare
from orchestrator.strategy.funding import strategies
from orchestrator.trading.curve import Curve
from orchestrator.trading.run import RunResult
from tests.support import data_file

pytestmark = pytest.mark.anyio
D = Decimal
MINUTE = 60_000
CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
KLINE_HEADER = "timestamp,open,high,low,close,volume,source,symbol,data_type,turnover"
FUNDING_HEADER = "funding_timestamp,funding_rate,symbol,source"


def minute_files(folder: Path, minutes: int, *, interval: str = "1m") -> None:
    for kind, data_type in (("spot", "spot"), ("perp", "futures")):
        rows = [KLINE_HEADER]
        for m in range(minutes):
            rows.append(f"{T0 + m * MINUTE},100,101,99,100.5,1,bybit,BTCUSDT,{data_type},1")
        name = f"bybit_BTCUSDT_{kind}_{interval}_x.csv"
        (folder / name).write_text("\n".join(rows) + "\n")
    funding = [FUNDING_HEADER, f"{T0},0.0001,BTCUSDT,bybit"]
    (folder / "bybit_BTCUSDT_funding_rates_x.csv").write_text("\n".join(funding) + "\n")


def test_minute_candles_close_a_minute_after_they_open(tmp_path: Path) -> None:
    minute_files(tmp_path, 5)
    data = load_pair(tmp_path, "BTC/USDT", "BTC/USDT:USDT")
    assert [c.close_time_ms - c.open_time_ms for c in data.spot] == [MINUTE] * 5
    assert data.warnings == []
    columns = columns_of(data.perp, candles=True)
    times, values = columns.reader().take(2**62)
    assert times == [T0 + (m + 1) * MINUTE for m in range(5)]
    assert values == [D("100.5")] * 5


def test_a_minute_gap_and_an_open_time_off_the_interval(tmp_path: Path) -> None:
    minute_files(tmp_path, 3)
    path = tmp_path / "bybit_BTCUSDT_spot_1m_x.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], *lines[3:]]) + "\n")
    data = load_pair(tmp_path, "BTC/USDT", "BTC/USDT:USDT")
    assert data.warnings == [f"{path.name}:3: 1 missing 1-minute candle (2024-01-01T00:01:00Z)"]
    path.write_text(f"{KLINE_HEADER}\n{T0 + 30_000},100,101,99,100.5,1,bybit,BTCUSDT,spot,1\n")
    with pytest.raises(DataError, match=r"_1m_x.csv:2: open time \d+ is not on a minute"):
        load_pair(tmp_path, "BTC/USDT", "BTC/USDT:USDT")


def test_files_of_two_intervals_for_one_series_are_refused(tmp_path: Path) -> None:
    minute_files(tmp_path, 3)
    (tmp_path / "bybit_BTCUSDT_spot_5m_y.csv").write_text(KLINE_HEADER + "\n")
    with pytest.raises(DataError, match=r"spot candles for BTC/USDT .* more than one interval"):
        load_pair(tmp_path, "BTC/USDT", "BTC/USDT:USDT")


def test_a_streamed_series_holds_the_same_candles(tmp_path: Path) -> None:
    minute_files(tmp_path, 50)
    held = load_pair(tmp_path, "BTC/USDT", "BTC/USDT:USDT")
    streamed = load_pair(tmp_path, "BTC/USDT", "BTC/USDT:USDT", keep_rows=10)
    assert isinstance(streamed.spot, StreamedSeries)
    assert streamed.spot == held.spot
    assert len(streamed.spot) == 50
    assert streamed.spot[-1] == held.spot[-1]
    assert streamed.spot[10:13] == held.spot[10:13]
    reader = columns_of(streamed.spot, candles=True).reader()
    assert reader.take(T0 + 20 * MINUTE) == columns_of(held.spot, candles=True).reader().take(
        T0 + 20 * MINUTE
    )


def ledger_text(result: RunResult, path: Path) -> str:
    write_ledgers(path, [("strategy", result.ledger)])
    return path.read_text()


async def test_the_recorded_run_streamed_gives_the_same_ledger(tmp_path: Path) -> None:
    data_dir = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent
    loaded = load(CONFIG)
    prepared = prepare(loaded)
    config = loaded.config
    streamed = [load_pair(data_dir, p.spot, p.perp, keep_rows=100) for p in config.pairs]
    assert all(isinstance(d.spot, StreamedSeries) for d in streamed)
    ledgers = []
    for datasets in (prepared.datasets, streamed):
        result = await Replay(config, datasets, prepared.instruments, strategies(config)).run()
        text = ledger_text(result, tmp_path / f"ledger{len(ledgers)}.csv")
        ledgers.append((text, list(result.equity), result.events))
    assert ledgers[0] == ledgers[1]


def test_a_curve_gives_back_every_value_exactly() -> None:
    values = [D("1.10"), D("-0"), D("1E+5"), D("104611.622100356836495"), D("-3.0000")]
    curve = Curve(compact_after=2)
    for i, value in enumerate(values * 3):
        curve.append(i, value)
    assert len(curve) == 15
    back = [v for _, v in curve]
    assert [str(v) for v in back] == [str(v) for v in values * 3]
    assert curve[-1] == (14, D("-3.0000"))
    assert str(curve[1][1]) == "-0"
    leader = Curve(compact_after=2)
    follower = leader.follow()
    for i in range(5):
        follower.add(D(i) / 4)
        leader.append(i * 10, D(i))
    assert list(follower) == [(i * 10, D(i) / 4) for i in range(5)]
