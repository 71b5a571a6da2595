"""Loading recorded market data: the real files as the data README describes them,
and every rule a malformed file breaks, on small hand-written files."""

from __future__ import annotations

import gc
import gzip
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest

from orchestrator.market.recorded import (
    Candle,
    DataError,
    DataMissing,
    FundingRate,
    PairData,
    load_instruments,
    load_pair,
    market_id,
)
from tests.support import BTC_PERP, BTC_SPOT, ETH_PERP, ETH_SPOT, data_file

D = Decimal
HOUR = 3_600_000
KLINE_HEADER = "timestamp,open,high,low,close,volume,source,symbol,data_type,turnover"
FUNDING_HEADER = "funding_timestamp,funding_rate,symbol,source"
KINDS = {"spot": "spot_1h", "perp": "perp_1h", "funding": "funding_rates"}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def at(hour: int) -> str:
    """An ISO time on 2024-01-01 (hours past 23 roll into the next days)."""
    return datetime.fromtimestamp(ms("2024-01-01") / 1000 + hour * 3600, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def kline(
    hour: int | str,
    o: str = "100",
    h: str = "110",
    lo: str = "90",
    c: str = "105",
    v: str = "1.5",
    *,
    symbol: str = "BTCUSDT",
    data_type: str = "spot",
) -> str:
    stamp = at(hour) if isinstance(hour, int) else hour
    return f"{stamp},{o},{h},{lo},{c},{v},bybit,{symbol},{data_type},150"


def funding_row(hour: int | str, rate: str = "0.0001", symbol: str = "BTCUSDT") -> str:
    stamp = at(hour) if isinstance(hour, int) else hour
    return f"{stamp},{rate},{symbol},bybit"


def good_rows(kind: str) -> list[str]:
    if kind == "funding":
        return [FUNDING_HEADER, funding_row(0), funding_row(8)]
    data_type = "spot" if kind == "spot" else "futures"
    return [KLINE_HEADER, *(kline(hour, data_type=data_type) for hour in range(3))]


def write(folder: Path, kind: str, lines: list[str], *, gz: bool = False, tag: str = "a") -> Path:
    path = folder / f"bybit_BTCUSDT_{KINDS[kind]}_{tag}.csv{'.gz' if gz else ''}"
    text = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(text) if gz else text)
    return path


def write_pair(folder: Path, *, gz: bool = False, **files: list[str]) -> dict[str, Path]:
    """All three series of BTC, good unless given; returns each file's path."""
    return {kind: write(folder, kind, files.get(kind, good_rows(kind)), gz=gz) for kind in KINDS}


def load(folder: Path, start_ms: int | None = None, end_ms: int | None = None) -> PairData:
    return load_pair(folder, "BTC/USDT", "BTC/USDT:USDT", start_ms=start_ms, end_ms=end_ms)


# --- the real data ----------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json").parent


@pytest.fixture(scope="module")
def btc(data_dir: Path) -> PairData:
    return load_pair(data_dir, "BTC/USDT", "BTC/USDT:USDT")


@pytest.fixture(scope="module")
def eth(data_dir: Path) -> PairData:
    return load_pair(data_dir, "ETH/USDT", "ETH/USDT:USDT")


def test_btc_has_what_the_readme_promises(btc: PairData) -> None:
    assert (btc.spot_symbol, btc.perp_symbol) == ("BTC/USDT", "BTC/USDT:USDT")
    assert len(btc.spot) == len(btc.perp) == 15312
    assert len(btc.funding) == 1914
    for series in (btc.spot, btc.perp):
        assert series[0].open_time_ms == ms("2024-01-01T00:00")
        assert series[-1].open_time_ms == ms("2025-09-29T23:00")
    assert btc.funding[0] == FundingRate(ms("2024-01-01T00:00"), D("0.00043294"))
    assert str(btc.funding[0].rate) == "0.00043294"
    assert btc.funding[-1].time_ms == ms("2025-09-29T16:00")
    assert btc.funding[-2].rate == D("0.00006586")  # written 6.586e-05 in the file
    first = Candle(
        ms("2024-01-01T00:00"),
        D("42284.0"),
        D("42552.0"),
        D("42260.01"),
        D("42475.28"),
        D("175.962336"),
    )
    assert btc.spot[0] == first
    assert btc.perp[-1].close == D("114251.4")


def test_eth_has_what_the_readme_promises(eth: PairData) -> None:
    assert len(eth.spot) == len(eth.perp) == 15216
    assert len(eth.funding) == 1902
    assert eth.spot[0].open_time_ms == eth.perp[0].open_time_ms == ms("2024-01-01T00:00")
    assert eth.spot[-1].open_time_ms == eth.perp[-1].open_time_ms == ms("2025-09-25T23:00")
    assert eth.funding[0].rate == D("0.00022064")
    assert eth.funding[-1] == FundingRate(ms("2025-09-25T16:00"), D("-0.00000997"))


@pytest.mark.parametrize("pair", ["btc", "eth"])
def test_real_series_are_gapless_aligned_and_decimal(
    pair: str, request: pytest.FixtureRequest
) -> None:
    data: PairData = request.getfixturevalue(pair)
    spot_times = [candle.open_time_ms for candle in data.spot]
    assert spot_times == [candle.open_time_ms for candle in data.perp]
    assert all(b - a == HOUR for a, b in pairwise(spot_times))
    funding_times = [rate.time_ms for rate in data.funding]
    assert all(b - a == 8 * HOUR for a, b in pairwise(funding_times))
    assert set(funding_times) <= set(spot_times)  # every settlement has both bars
    assert all(type(candle.close) is Decimal for candle in data.spot)
    assert all(type(rate.rate) is Decimal for rate in data.funding)


@pytest.mark.parametrize("pair", ["btc", "eth"])
def test_real_duplicates_give_one_warning_per_kline_file(
    pair: str, request: pytest.FixtureRequest
) -> None:
    data: PairData = request.getfixturevalue(pair)
    name = market_id(data.spot_symbol)
    assert len(data.warnings) == 2
    for warning, kind in zip(data.warnings, ("spot", "perp"), strict=True):
        assert warning.startswith(f"bybit_{name}_{kind}_1h_2024-01-01_")
        assert ".csv.gz: dropped 15 duplicate rows (lines 963, 1924, 2885," in warning
        assert warning.endswith(", 14417)")


def test_window_keeps_rows_from_start_up_to_end(data_dir: Path) -> None:
    start, end = ms("2024-03-01"), ms("2024-04-01")
    data = load_pair(data_dir, "BTC/USDT", "BTC/USDT:USDT", start_ms=start, end_ms=end)
    assert len(data.spot) == len(data.perp) == 31 * 24
    assert data.spot[0].open_time_ms == start
    assert data.perp[-1].open_time_ms == end - HOUR
    assert data.perp[-1].close_time_ms == end
    assert len(data.funding) == 31 * 3
    assert (data.funding[0].time_ms, data.funding[-1].time_ms) == (start, end - 8 * HOUR)
    assert all("duplicate" in warning for warning in data.warnings)  # no gap, no coverage


def test_instruments_come_from_the_snapshot(data_dir: Path) -> None:
    symbols = ["BTC/USDT", "BTC/USDT:USDT", "ETH/USDT", "ETH/USDT:USDT"]
    found = load_instruments(data_dir, symbols)
    assert list(found) == symbols
    assert found == {
        "BTC/USDT": BTC_SPOT,
        "BTC/USDT:USDT": BTC_PERP,
        "ETH/USDT": ETH_SPOT,
        "ETH/USDT:USDT": ETH_PERP,
    }
    btc_spot, btc_perp = found["BTC/USDT"], found["BTC/USDT:USDT"]
    assert (btc_spot.qty_step, btc_spot.min_qty) == (D("0.000001"), D("0.000011"))
    assert (btc_spot.min_notional, str(btc_spot.price_tick)) == (D(5), "0.1")
    assert (btc_perp.qty_step, btc_perp.min_qty) == (D("0.001"), D("0.001"))
    assert (btc_perp.min_notional, str(btc_perp.price_tick)) == (D(5), "0.10")
    eth_spot, eth_perp = found["ETH/USDT"], found["ETH/USDT:USDT"]
    assert (eth_spot.qty_step, eth_spot.min_qty, eth_spot.price_tick) == (
        D("0.00001"),
        D("0.00029"),
        D("0.01"),
    )
    assert (eth_perp.qty_step, eth_perp.min_qty, eth_perp.min_notional) == (
        D("0.01"),
        D("0.01"),
        D(5),
    )
    assert all(type(value) is Decimal for value in (eth_perp.price_tick, eth_spot.min_notional))


def test_unknown_symbol_lists_what_the_files_hold(data_dir: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_instruments(data_dir, ["BTC/USDT", "BTC/USDT:USD"])
    assert str(caught.value) == (
        f"unknown symbol 'BTC/USDT:USD': the instrument files in {data_dir} list "
        "BTC/USDT, BTC/USDT:USDT, ETH/USDT, ETH/USDT:USDT"
    )


def test_an_unknown_pair_says_which_command_fetches_it(data_dir: Path) -> None:
    # A linear perp or spot the files do not list may be a pair never downloaded.
    for symbol in ("SOL/USDT", "SOL/USDT:USDT"):
        with pytest.raises(DataError) as caught:
            load_instruments(data_dir, ["BTC/USDT", symbol])
        found = re.search(
            r"ETH/USDT:USDT; if Bybit lists it, `orchestrator data download --pairs SOL/USDT "
            r"--data-dir (\S+)` fetches its data$",
            str(caught.value),
        )
        assert found, str(caught.value)
        assert Path(found[1]).resolve() == data_dir.resolve()  # as typed here, relative or not


# --- small files: what loads ----------------------------------------------------


def test_market_id() -> None:
    assert market_id("BTC/USDT") == "BTCUSDT"
    assert market_id("BTC/USDT:USDT") == "BTCUSDT"
    assert market_id("ETHUSDT") == "ETHUSDT"


def test_candle_is_known_when_it_closes_and_is_not_tracked_by_gc() -> None:
    candle = Candle(ms("2024-01-01T05:00"), D(1), D(2), D(1), D(2), D(0))
    assert candle.close_time_ms == ms("2024-01-01T06:00")
    assert not gc.is_tracked(candle)


@pytest.mark.parametrize("gz", [False, True])
def test_a_good_pair_loads_from_plain_or_gzip(tmp_path: Path, gz: bool) -> None:
    write_pair(tmp_path, gz=gz)
    data = load(tmp_path)
    assert [candle.open_time_ms for candle in data.spot] == [ms(at(hour)) for hour in range(3)]
    assert data.perp[2] == Candle(ms(at(2)), D(100), D(110), D(90), D(105), D("1.5"))
    assert data.funding == [
        FundingRate(ms(at(0)), D("0.0001")),
        FundingRate(ms(at(8)), D("0.0001")),
    ]
    assert data.warnings == []


def test_epoch_milliseconds_offsets_and_scientific_notation(tmp_path: Path) -> None:
    spot = [
        KLINE_HEADER,
        kline(str(ms(at(0)))),
        kline("2024-01-01T01:00:00+00:00"),
        kline("2024-01-01T04:00:00+02:00"),  # 02:00 UTC
    ]
    funding = [FUNDING_HEADER, funding_row(str(ms(at(0))), "6.586e-05"), funding_row(8, "-1E-4")]
    write_pair(tmp_path, spot=spot, funding=funding)
    data = load(tmp_path)
    assert [candle.open_time_ms for candle in data.spot] == [ms(at(hour)) for hour in range(3)]
    assert [rate.rate for rate in data.funding] == [D("0.00006586"), D("-0.0001")]


def test_columns_are_found_by_name_and_extra_columns_are_allowed(tmp_path: Path) -> None:
    spot = [
        "\ufeffsymbol,timestamp,close,low,high,open,volume,source,data_type,turnover,note",
        f"BTCUSDT,{at(0)},105,90,110,100,2,bybit,spot,150,hello",
    ]
    write_pair(tmp_path, spot=spot)
    assert load(tmp_path).spot == [Candle(ms(at(0)), D(100), D(110), D(90), D(105), D(2))]


@pytest.mark.parametrize("gz", [False, True])
def test_exact_duplicates_are_dropped_with_one_warning_per_file(tmp_path: Path, gz: bool) -> None:
    spot = [KLINE_HEADER, kline(0), kline(0), kline(1), kline(2), kline(2)]
    paths = write_pair(tmp_path, gz=gz, spot=spot)
    data = load(tmp_path)
    assert len(data.spot) == 3
    assert data.warnings == [f"{paths['spot'].name}: dropped 2 duplicate rows (lines 3, 6)"]


def test_a_long_duplicate_list_is_cut_short(tmp_path: Path) -> None:
    spot = [KLINE_HEADER, *(row for hour in range(25) for row in (kline(hour), kline(hour)))]
    paths = write_pair(tmp_path, spot=spot)
    listed = ", ".join(str(line) for line in range(3, 43, 2))
    assert load(tmp_path).warnings[0] == (
        f"{paths['spot'].name}: dropped 25 duplicate rows (lines {listed} and 5 more)"
    )


def test_candle_gap_is_a_warning_naming_file_line_and_span(tmp_path: Path) -> None:
    perp = [KLINE_HEADER, *(kline(hour, data_type="futures") for hour in (0, 1, 4, 6))]
    paths = write_pair(tmp_path, perp=perp)
    data = load(tmp_path)
    assert len(data.perp) == 4
    name = paths["perp"].name
    assert data.warnings == [
        f"{name}:4: 2 missing hourly candles (2024-01-01T02:00:00Z to 2024-01-01T03:00:00Z)",
        f"{name}:5: 1 missing hourly candle (2024-01-01T05:00:00Z)",
    ]


def test_funding_interval_is_inferred_and_gaps_or_odd_spacing_warned(tmp_path: Path) -> None:
    funding = [FUNDING_HEADER, *(funding_row(hour) for hour in (0, 8, 16, 24, 48, 52, 56))]
    paths = write_pair(tmp_path, funding=funding)
    name = paths["funding"].name
    assert load(tmp_path).warnings == [
        f"{name}:6: 2 missing funding settlements (2024-01-02T08:00:00Z to 2024-01-02T16:00:00Z)",
        f"{name}:7: 2024-01-03T04:00:00Z comes 4h after the previous row "
        "(2024-01-03T00:00:00Z); the usual spacing is 8h",
        f"{name}:8: 2024-01-03T08:00:00Z comes 4h after the previous row "
        "(2024-01-03T04:00:00Z); the usual spacing is 8h",
    ]


def test_window_filters_and_warns_where_the_data_does_not_cover_it(tmp_path: Path) -> None:
    spot = [KLINE_HEADER, *(kline(hour) for hour in range(2, 6))]
    write_pair(tmp_path, spot=spot)
    data = load(tmp_path, start_ms=ms(at(0)), end_ms=ms(at(3)))
    assert [candle.open_time_ms for candle in data.spot] == [ms(at(2))]
    assert [candle.open_time_ms for candle in data.perp] == [ms(at(0)), ms(at(1)), ms(at(2))]
    assert [rate.time_ms for rate in data.funding] == [ms(at(0))]
    assert data.warnings == [
        "spot candles start at 2024-01-01T02:00:00Z, after the window's start 2024-01-01T00:00:00Z"
    ]
    data = load(tmp_path, start_ms=ms(at(1)) + 1, end_ms=ms(at(30)))
    assert [candle.open_time_ms for candle in data.perp] == [ms(at(2))]
    assert data.warnings == [
        "spot candles end at 2024-01-01T05:00:00Z, before the window's end 2024-01-02T06:00:00Z",
        "perp candles end at 2024-01-01T02:00:00Z, before the window's end 2024-01-02T06:00:00Z",
        "funding rates end at 2024-01-01T08:00:00Z, before the window's end 2024-01-02T06:00:00Z",
    ]


def test_inverted_window_is_refused(tmp_path: Path) -> None:
    write_pair(tmp_path)
    with pytest.raises(DataError, match="empty window: start 2024-01-01T03:00:00Z is not before"):
        load(tmp_path, start_ms=ms(at(3)), end_ms=ms(at(3)))


def test_files_of_one_kind_merge_and_a_repeated_row_is_a_duplicate(tmp_path: Path) -> None:
    write_pair(tmp_path)
    later = write(
        tmp_path, "spot", [KLINE_HEADER, *(kline(h) for h in (2, 3, 4))], gz=True, tag="b"
    )
    data = load(tmp_path)
    assert [candle.open_time_ms for candle in data.spot] == [ms(at(h)) for h in range(5)]
    assert data.warnings == [f"{later.name}: dropped 1 duplicate row (line 2)"]


def test_merged_files_are_checked_for_gaps_between_them(tmp_path: Path) -> None:
    write_pair(tmp_path)
    later = write(tmp_path, "spot", [KLINE_HEADER, kline(4), kline(5)], tag="b")
    data = load(tmp_path)
    assert len(data.spot) == 5
    assert data.warnings == [f"{later.name}:2: 1 missing hourly candle (2024-01-01T03:00:00Z)"]


def test_merged_files_disagreeing_on_a_row_name_both(tmp_path: Path) -> None:
    paths = write_pair(tmp_path)
    later = write(tmp_path, "spot", [KLINE_HEADER, kline(2, c="106"), kline(3)], tag="b")
    with pytest.raises(DataError) as caught:
        load(tmp_path)
    assert str(caught.value) == (
        f"{paths['spot']}:4 and {later}:2: two different rows for 2024-01-01T02:00:00Z"
    )


# --- missing data ---------------------------------------------------------------


def test_missing_series_says_which_command_fetches_it(tmp_path: Path) -> None:
    with pytest.raises(DataMissing) as caught:
        load(tmp_path)
    assert str(caught.value) == (
        f"no spot candles for BTC/USDT in {tmp_path}: fetch the data with "
        f"`orchestrator data download --pairs BTC/USDT --data-dir {tmp_path}`"
    )
    write(tmp_path, "spot", good_rows("spot"))
    with pytest.raises(DataMissing, match=r"^no perp candles for BTC/USDT:USDT in "):
        load(tmp_path)


def test_missing_series_with_a_window_gives_since_and_until(tmp_path: Path) -> None:
    folder = tmp_path / "new folder"
    with pytest.raises(DataMissing) as caught:
        load(folder, start_ms=ms("2024-01-01"), end_ms=ms("2024-02-01T12:00"))
    assert str(caught.value) == (
        f"no spot candles for BTC/USDT in {folder} (no such folder): fetch the data with "
        f"`orchestrator data download --pairs BTC/USDT --data-dir '{folder}' "
        "--since 2024-01-01 --until 2024-02-01T12:00:00Z`"
    )


def test_window_outside_the_files_is_missing_data(tmp_path: Path) -> None:
    write_pair(tmp_path)
    with pytest.raises(DataMissing) as caught:
        load(tmp_path, start_ms=ms("2024-02-01"))
    assert str(caught.value) == (
        f"no spot candles for BTC/USDT in {tmp_path} from 2024-02-01T00:00:00Z (the files hold "
        "2024-01-01T00:00:00Z to 2024-01-01T02:00:00Z): fetch the data with "
        f"`orchestrator data download --pairs BTC/USDT --data-dir {tmp_path} --since 2024-02-01`"
    )


# --- malformed files: every rule names the file and the line -------------------

CASES: list[tuple[str, str, list[str], int, str]] = [
    # (id, kind, file lines, line at fault, what the message says)
    ("wrong header", "spot", ["time,open,high,low,close,volume", kline(0)], 1, "header"),
    ("missing column", "spot", [KLINE_HEADER.replace("volume,", ""), kline(0)], 1, "volume"),
    ("kline header in funding", "funding", [KLINE_HEADER, kline(0)], 1, "funding_timestamp"),
    ("empty file", "spot", [], 1, "the file is empty"),
    ("header only", "spot", [KLINE_HEADER], 1, "no rows after the header"),
    ("too few columns", "spot", [KLINE_HEADER, kline(0), f"{at(1)},1,2"], 3, "3 columns"),
    ("too many columns", "perp", [KLINE_HEADER, kline(0, data_type="futures") + ",x"], 2, "11"),
    ("blank line", "spot", [KLINE_HEADER, kline(0), "", kline(1)], 3, "a blank line"),
    (
        "unparsable number",
        "spot",
        [KLINE_HEADER, kline(0, h="abc")],
        2,
        "high 'abc' is not a number",
    ),
    ("empty number", "spot", [KLINE_HEADER, kline(0, v="")], 2, "volume '' is not a number"),
    ("NaN", "spot", [KLINE_HEADER, kline(0, c="NaN")], 2, "close is 'NaN', not a finite number"),
    ("Infinity", "spot", [KLINE_HEADER, kline(0, h="Infinity")], 2, "high is 'Infinity'"),
    ("zero price", "spot", [KLINE_HEADER, kline(0, o="0", lo="0")], 2, "open 0 is not a positive"),
    ("negative price", "spot", [KLINE_HEADER, kline(0, lo="-1")], 2, "low -1 is not a positive"),
    ("negative volume", "spot", [KLINE_HEADER, kline(0, v="-0.1")], 2, "volume -0.1 is negative"),
    (
        "high below close",
        "spot",
        [KLINE_HEADER, kline(0), kline(1, h="104")],
        3,
        "high 104 is below max(open, close) = 105",
    ),
    (
        "low above open",
        "perp",
        [KLINE_HEADER, kline(0, lo="101", data_type="futures")],
        2,
        "low 101 is above min(open, close) = 100",
    ),
    ("bad date", "spot", [KLINE_HEADER, kline("2024-13-01T00:00:00Z")], 2, "neither ISO-8601"),
    ("not a time", "spot", [KLINE_HEADER, kline(0), kline("yesterday")], 3, "'yesterday'"),
    ("epoch seconds", "funding", [FUNDING_HEADER, funding_row("1704067200")], 2, "plausible"),
    ("far future", "spot", [KLINE_HEADER, kline("9" * 16)], 2, "not epoch milliseconds"),
    ("no time zone", "spot", [KLINE_HEADER, kline("2024-01-01T01:00:00")], 2, "no time zone"),
    ("off the hour", "spot", [KLINE_HEADER, kline("2024-01-01T01:30:00Z")], 2, "not on the hour"),
    (
        "another market",
        "spot",
        [KLINE_HEADER, kline(0), kline(1, symbol="ETHUSDT")],
        3,
        "symbol 'ETHUSDT' is another market than BTCUSDT",
    ),
    (
        "perp rows in the spot file",
        "spot",
        [KLINE_HEADER, kline(0, data_type="futures")],
        2,
        "data_type 'futures' in a file of 'spot' candles",
    ),
    (
        "spot rows in the perp file",
        "perp",
        [KLINE_HEADER, kline(0, data_type="spot")],
        2,
        "data_type 'spot' in a file of 'futures' candles",
    ),
    (
        "goes back",
        "spot",
        [KLINE_HEADER, *(kline(hour) for hour in (0, 1, 5, 2))],
        5,
        "timestamp 2024-01-01T02:00:00Z goes back from 2024-01-01T05:00:00Z at line 4",
    ),
    (
        "same time, other values",
        "spot",
        [KLINE_HEADER, kline(0), kline(1), kline(1, v="2")],
        4,
        "timestamp 2024-01-01T01:00:00Z repeats line 3 with different values",
    ),
    ("funding rate text", "funding", [FUNDING_HEADER, funding_row(0, "x")], 2, "'x' is not a"),
    ("funding NaN", "funding", [FUNDING_HEADER, funding_row(0, "NaN")], 2, "not a finite number"),
    ("funding -inf", "funding", [FUNDING_HEADER, funding_row(0, "-Infinity")], 2, "not a finite"),
    ("funding time", "funding", [FUNDING_HEADER, funding_row("2024-01-01 8h")], 2, "ISO-8601"),
    (
        "funding of another market",
        "funding",
        [FUNDING_HEADER, funding_row(0), funding_row(8, symbol="ETH/USDT:USDT")],
        3,
        "symbol 'ETH/USDT:USDT' is another market than BTCUSDT",
    ),
    (
        "funding goes back",
        "funding",
        [FUNDING_HEADER, *(funding_row(hour) for hour in (0, 16, 8))],
        4,
        "timestamp 2024-01-01T08:00:00Z goes back from 2024-01-01T16:00:00Z at line 3",
    ),
    (
        "funding repeated with another rate",
        "funding",
        [FUNDING_HEADER, funding_row(0), funding_row(0, "0.0002")],
        3,
        "repeats line 2 with different values",
    ),
    # numbers that parse but make no sense
    ("price 1E+999999", "spot", [KLINE_HEADER, kline(0, h="1E+999999")], 2, "high 1E+999999 is"),
    ("price 1E-999999", "spot", [KLINE_HEADER, kline(0, o="1E-999999", lo="1E-999999")], 2, "open"),
    (
        "price beyond 1e12",
        "perp",
        [KLINE_HEADER, kline(0, h="2e12", c="2e12", data_type="futures")],
        2,
        "high 2e12 is outside 1E-12 to 1E+12: not a price",
    ),
    (
        "price beyond Decimal",
        "spot",
        [KLINE_HEADER, kline(0, h="1e9999999999999999999999")],
        2,
        "high '1e9999999999999999999999' is out of range",
    ),
    (
        "price of 5000 digits",
        "spot",
        [KLINE_HEADER, kline(0, h="9" * 5000)],
        2,
        "high 9999999999999999999999999999999999999999... (5,000 characters) is outside",
    ),
    ("price -0", "spot", [KLINE_HEADER, kline(0, o="-0", lo="-0")], 2, "open -0 is not a positive"),
    ("price -Infinity", "spot", [KLINE_HEADER, kline(0, lo="-Infinity")], 2, "low is '-Infinity'"),
    ("price sNaN", "spot", [KLINE_HEADER, kline(0, o="sNaN")], 2, "open is 'sNaN', not a finite"),
    ("volume -0", "spot", [KLINE_HEADER, kline(0, v="-0")], 2, "volume -0 is negative (a negative"),
    (
        "volume 1E+19",
        "spot",
        [KLINE_HEADER, kline(0, v="1E+19")],
        2,
        "volume 1E+19 is beyond 1E+18",
    ),
    ("volume Infinity", "spot", [KLINE_HEADER, kline(0, v="Infinity")], 2, "not a finite number"),
    (
        "funding 5",
        "funding",
        [FUNDING_HEADER, funding_row(0), funding_row(8, "5")],
        3,
        "funding_rate 5 is beyond +-1 (100 %) per settlement",
    ),
    ("funding -1e6", "funding", [FUNDING_HEADER, funding_row(0, "-1e6")], 2, "-1e6 is beyond +-1"),
    ("funding 1E+999999", "funding", [FUNDING_HEADER, funding_row(0, "1E+999999")], 2, "beyond"),
    # Beyond the decimal context's exponent: abs() would overflow.
    (
        "funding 1e999999999",
        "funding",
        [FUNDING_HEADER, funding_row(0, "1e999999999")],
        2,
        "1e999999999 is beyond +-1",
    ),
    (
        "funding 1E-999999",
        "funding",
        [FUNDING_HEADER, funding_row(0, "1E-999999")],
        2,
        "funding_rate 1E-999999 is nonzero but below 1E-12 in size",
    ),
    ("funding -0", "funding", [FUNDING_HEADER, funding_row(0, "-0")], 2, "-0 is a negative zero"),
    ("funding -0.0E-8", "funding", [FUNDING_HEADER, funding_row(0, "-0.0E-8")], 2, "negative zero"),
    (
        "funding Infinity",
        "funding",
        [FUNDING_HEADER, funding_row(0, "Infinity")],
        2,
        "not a finite",
    ),
    (
        "funding beyond Decimal",
        "funding",
        [FUNDING_HEADER, funding_row(0, "-1e-9999999999999999999999")],
        2,
        "funding_rate '-1e-9999999999999999999999' is out of range",
    ),
    (
        "funding of 5000 digits",
        "funding",
        [FUNDING_HEADER, funding_row(0, "-" + "1" * 5000)],
        2,
        "funding_rate -111111111111111111111111111111111111111... (5,001 characters) is beyond",
    ),
    # times outside 2009 to 2099
    ("before 2009", "spot", [KLINE_HEADER, kline("2008-12-31T23:00:00Z")], 2, "outside 2009 to"),
    ("in 1969", "funding", [FUNDING_HEADER, funding_row("1969-12-31T16:00:00Z")], 2, "outside"),
    ("year 1", "spot", [KLINE_HEADER, kline("0001-01-01T00:00:00+01:00")], 2, "outside 2009 to"),
    ("year 9999", "spot", [KLINE_HEADER, kline("9999-12-31T23:00:00-12:00")], 2, "outside 2009"),
    ("in 2100", "funding", [FUNDING_HEADER, funding_row("2100-01-01T00:00:00Z")], 2, "outside"),
    ("epoch 0", "spot", [KLINE_HEADER, kline("0")], 2, "0 is not epoch milliseconds"),
    ("epoch ms of 1973", "spot", [KLINE_HEADER, kline("100000000000")], 2, "(2009 to 2099)"),
    ("epoch microseconds", "spot", [KLINE_HEADER, kline("1704067200000000")], 2, "plausible"),
    ("negative epoch", "funding", [FUNDING_HEADER, funding_row("-3600000")], 2, "neither ISO"),
    (
        "epoch of 5000 digits",
        "funding",
        [FUNDING_HEADER, funding_row("1" * 5000)],
        2,
        "timestamp 1111111111111111111111111111111111111111... (5,000 characters) is not epoch",
    ),
]


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "gzip"])
@pytest.mark.parametrize(
    ("kind", "lines", "line", "says"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_malformed_file_names_file_and_line(
    tmp_path: Path, gz: bool, kind: str, lines: list[str], line: int, says: str
) -> None:
    paths = write_pair(tmp_path, gz=gz, **{kind: lines})
    with pytest.raises(DataError) as caught:
        load(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{paths[kind]}:{line}: ")
    assert says in message


def test_unreadable_gzip_names_the_file(tmp_path: Path) -> None:
    paths = write_pair(tmp_path, gz=True)
    paths["spot"].write_bytes(b"timestamp,open\n")
    with pytest.raises(DataError) as caught:
        load(tmp_path)
    assert str(caught.value).startswith(f"{paths['spot']}:1: cannot read the file: Not a gzip")


def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    rows = [KLINE_HEADER, *(kline(hour) for hour in range(5000))]
    path = write(tmp_path, "spot", rows, gz=True)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r":\d+: cannot read the file: Compressed file ended") as e:
        load(tmp_path)
    assert str(e.value).startswith(f"{path}:")


# --- long files: what a row says does not depend on where it is -----------------

LONG = 6000  # rows: a file of many pieces, read together where they can be


def long_rows(kind: str = "spot") -> list[str]:
    if kind == "funding":
        return [FUNDING_HEADER, *(funding_row(8 * i, f"0.0000{i % 90 + 10}") for i in range(LONG))]
    return [KLINE_HEADER, *(kline(hour, c=f"10{hour % 10}") for hour in range(LONG))]


def write_text(folder: Path, kind: str, text: str, gz: bool) -> Path:
    path = folder / f"bybit_BTCUSDT_{KINDS[kind]}_a.csv{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "gzip"])
@pytest.mark.parametrize(
    "shape",
    ["lf", "crlf", "mixed", "bom", "quoted", "no last newline", "offsets", "epoch"],
)
def test_a_long_file_reads_the_same_whatever_its_shape(
    tmp_path: Path, gz: bool, shape: str
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    write_pair(plain, spot=long_rows(), funding=long_rows("funding"))
    lines = long_rows()
    if shape == "quoted":
        lines[4500] = lines[4500].replace(",bybit,", ',"bybit",')
    if shape == "offsets":
        lines[1:] = [line.replace("Z,", "+00:00,", 1) for line in lines[1:]]
        assert at(2999) == "2024-05-04T23:00:00Z"
        lines[3000] = kline("2024-05-05T00:00:00+01:00", c="109")
    if shape == "epoch":
        lines[1:] = [kline(str(ms(at(hour))), c=f"10{hour % 10}") for hour in range(LONG)]
    ends = {"crlf": "\r\n", "mixed": "\r\n"}.get(shape, "\n")
    text = "".join(line + ends for line in lines)
    if shape == "mixed":
        text = text.replace("\r\n", "\n", 2000)
    if shape == "bom":
        text = "\ufeff" + text
    if shape == "no last newline":
        text = text.rstrip("\n")
    shaped = tmp_path / "shaped"
    shaped.mkdir()
    write_pair(shaped, funding=long_rows("funding"))
    (shaped / f"bybit_BTCUSDT_{KINDS['spot']}_a.csv").unlink()
    write_text(shaped, "spot", text, gz)
    expected, found = load(plain), load(shaped)
    assert found == expected
    assert found.spot == expected.spot


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "gzip"])
@pytest.mark.parametrize("before", ["nothing", "a quoted field", "a lone carriage return"])
@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (kline(5000, o="x"), "open 'x' is not a number"),
        (kline(5000, lo="111"), "low 111 is above min(open, close) = 100"),
        (
            kline(4998),
            "timestamp 2024-07-27T06:00:00Z goes back from 2024-07-27T07:00:00Z at line 5001",
        ),
        (kline(4999, o="99"), "2024-07-27T07:00:00Z repeats line 5001 with different values"),
        ("", "a blank line where the header has 10 columns"),
        (kline(5000) + ",x", "11 columns where the header has 10 columns"),
        (kline(5000, symbol="ETHUSDT"), "symbol 'ETHUSDT' is another market than BTCUSDT"),
        (kline("2024-07-27T08:30:00Z"), "open time 2024-07-27T08:30:00Z is not on the hour"),
        (kline("2024-07-27T08:00:00"), "has no time zone"),
    ],
)
def test_a_fault_deep_in_a_long_file_names_its_line(
    tmp_path: Path, gz: bool, before: str, fault: str, says: str
) -> None:
    lines = long_rows()
    if before == "a quoted field":
        lines[1200] = lines[1200].replace(",bybit,", ',"bybit",')
    lines[5001] = fault  # line 5002 of the file: the row of hour 5000
    text = "".join(line + "\n" for line in lines)
    if before == "a lone carriage return":  # ends a line as a newline does
        text = text.replace(lines[1200] + "\n", lines[1200] + "\r")
    write_pair(tmp_path, gz=gz)
    path = write_text(tmp_path, "spot", text, gz)
    line = 5002
    with pytest.raises(DataError) as caught:
        load(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert says in message


def test_repeats_deep_in_a_long_file_are_dropped_and_named(tmp_path: Path) -> None:
    lines = long_rows()
    for at_line in (5400, 3000, 2999, 1024, 2):  # each repeats the row before it
        lines.insert(at_line, lines[at_line - 1])
    write_pair(tmp_path, spot=lines, funding=long_rows("funding"))
    data = load(tmp_path)
    assert len(data.spot) == LONG
    assert data.warnings == [
        "bybit_BTCUSDT_spot_1h_a.csv: dropped 5 duplicate rows (lines 3, 1026, 3002, 3004, 5405)"
    ]


# --- instrument files -----------------------------------------------------------


def instrument_file(folder: Path, document: object, name: str = "extra") -> Path:
    path = folder / f"bybit_instruments_info_{name}.json"
    path.write_text(json.dumps(document, indent=1))
    return path


SPOT_ENTRY = {
    "baseCoin": "SOL",
    "quoteCoin": "USDT",
    "lotSizeFilter": {"basePrecision": "0.001", "minOrderQty": "0.01", "minOrderAmt": "5"},
    "priceFilter": {"tickSize": "0.01"},
}


def test_instrument_files_are_read_together_and_dated_futures_skipped(tmp_path: Path) -> None:
    dated = {
        "baseCoin": "BTC",
        "quoteCoin": "USDT",
        "settleCoin": "USDT",
        "contractType": "LinearFutures",
        "lotSizeFilter": {"qtyStep": "0.001", "minOrderQty": "0.001", "minNotionalValue": "5"},
        "priceFilter": {"tickSize": "0.5"},
    }
    instrument_file(tmp_path, {"spot": {"BTCUSDT": {**SPOT_ENTRY, "baseCoin": "BTC"}}})
    instrument_file(tmp_path, {"spot": {"SOLUSDT": SPOT_ENTRY}, "linear": {"X": dated}}, "more")
    found = load_instruments(tmp_path, ["SOL/USDT"])
    assert found["SOL/USDT"].qty_step == D("0.001")
    with pytest.raises(
        DataError,
        match=r"'BTC/USDT:USDT': .* list BTC/USDT, SOL/USDT; if Bybit lists it, "
        r"`orchestrator data download --pairs BTC/USDT ",
    ):
        load_instruments(tmp_path, ["BTC/USDT:USDT"])


def test_instrument_files_that_disagree_are_refused(tmp_path: Path) -> None:
    first = instrument_file(tmp_path, {"spot": {"SOLUSDT": SPOT_ENTRY}}, "a")
    other = {**SPOT_ENTRY, "priceFilter": {"tickSize": "0.1"}}
    second = instrument_file(tmp_path, {"spot": {"SOLUSDT": other}}, "b")
    with pytest.raises(DataError) as caught:
        load_instruments(tmp_path, ["SOL/USDT"])
    assert str(caught.value) == (
        f"SOL/USDT is listed differently in {first} (spot.SOLUSDT) and {second} (spot.SOLUSDT)"
    )


def with_lot(**lot: str | bool) -> str:
    lots = {"basePrecision": "0.001", "minOrderQty": "1", "minOrderAmt": "5", **lot}
    return json.dumps({"spot": {"SOLUSDT": {**SPOT_ENTRY, "lotSizeFilter": lots}}})


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"spot": {\n  "SOLUSDT": }', ":2: not valid JSON"),
        (with_lot(basePrecision="abc"), ": spot.SOLUSDT.lotSizeFilter.basePrecision is 'abc', not"),
        (with_lot(minOrderAmt=True), ": spot.SOLUSDT.lotSizeFilter.minOrderAmt is True, not"),
        (with_lot(basePrecision="0"), ": spot.SOLUSDT: qty_step must be a positive number, got 0"),
        (json.dumps({"spot": {"SOLUSDT": {"quoteCoin": "USDT"}}}), ": spot.SOLUSDT.baseCoin is"),
        ('["BTCUSDT"]', ": expected an object with 'spot' and 'linear' sections"),
    ],
    ids=["bad json", "not a number", "a boolean", "not positive", "no base coin", "a list"],
)
def test_bad_instrument_file_names_file_and_place(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "bybit_instruments_info_x.json"
    path.write_text(text)
    with pytest.raises(DataError) as caught:
        load_instruments(tmp_path, ["SOL/USDT"])
    assert str(caught.value).startswith(f"{path}{says}")


def test_json_numbers_are_read_as_decimal_not_float(tmp_path: Path) -> None:
    (tmp_path / "bybit_instruments_info_x.json").write_text(
        with_lot(basePrecision="0.1").replace('"0.1"', "0.1")
    )
    step = load_instruments(tmp_path, ["SOL/USDT"])["SOL/USDT"].qty_step
    assert str(step) == "0.1"


def test_no_instrument_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no instrument file \(bybit_instruments_info\*\.json\)"):
        load_instruments(tmp_path, ["BTC/USDT"])


# --- what is odd but possible: warned, file and lines named ----------------------


def test_funding_rates_beyond_any_venue_cap_are_warned(tmp_path: Path) -> None:
    rates = ["0.0001", "0.06", "-0.5", "0.05", "1"]
    funding = [FUNDING_HEADER, *(funding_row(8 * i, rate) for i, rate in enumerate(rates))]
    paths = write_pair(tmp_path, funding=funding)
    data = load(tmp_path)
    assert [rate.rate for rate in data.funding] == [D(rate) for rate in rates]
    assert data.warnings == [
        f"{paths['funding'].name}: 3 funding rates beyond +-0.05 (5%) per settlement "
        "(lines 3, 4, 6); Bybit caps funding at a few percent: check the file"
    ]


def test_funding_times_off_the_hour_are_warned(tmp_path: Path) -> None:
    stamps = ["2024-01-01T00:00:00Z", "2024-01-01T08:30:00Z", "2024-01-01T16:00:00.001Z"]
    funding = [FUNDING_HEADER, *(funding_row(stamp) for stamp in stamps)]
    paths = write_pair(tmp_path, funding=funding)
    warnings = load(tmp_path).warnings
    assert (
        f"{paths['funding'].name}: 2 funding times not on the hour (lines 3, 4); "
        "Bybit settles funding on the hour"
    ) in warnings


def test_a_second_data_file_repeating_the_rows_is_warned(tmp_path: Path) -> None:
    write_pair(tmp_path)
    copy = write(tmp_path, "funding", good_rows("funding"), gz=True, tag="copy")
    data = load(tmp_path)
    assert len(data.funding) == 2
    assert data.warnings == [f"{copy.name}: dropped 2 duplicate rows (lines 2, 3)"]


def perp_entry(base: str = "SOL", step: str = "0.1") -> dict[str, object]:
    return {
        "baseCoin": base,
        "quoteCoin": "USDT",
        "settleCoin": "USDT",
        "contractType": "LinearPerpetual",
        "lotSizeFilter": {"qtyStep": step, "minOrderQty": step, "minNotionalValue": "5"},
        "priceFilter": {"tickSize": "0.01"},
    }


def test_the_same_entries_in_two_files_are_used_once_with_a_warning(tmp_path: Path) -> None:
    document = {"spot": {"SOLUSDT": SPOT_ENTRY}, "linear": {"SOLUSDT": perp_entry()}}
    instrument_file(tmp_path, document, "a")
    second = instrument_file(tmp_path, document, "b")
    warnings: list[str] = []
    found = load_instruments(tmp_path, ["SOL/USDT", "SOL/USDT:USDT"], warnings=warnings)
    assert found["SOL/USDT:USDT"].qty_step == D("0.1")
    assert warnings == [
        f"{second.name}: 2 instrument entries (SOL/USDT (spot.SOLUSDT), SOL/USDT:USDT "
        "(linear.SOLUSDT)) repeat bybit_instruments_info_a.json exactly; each is used once"
    ]


def test_an_entry_listed_twice_in_one_file_is_used_once_with_a_warning(tmp_path: Path) -> None:
    path = instrument_file(
        tmp_path, {"linear": {"SOLUSDT": perp_entry(), "SOL-PERP": perp_entry()}}
    )
    warnings: list[str] = []
    load_instruments(tmp_path, ["SOL/USDT:USDT"], warnings=warnings)
    assert warnings == [
        f"{path.name}: 1 instrument entry (SOL/USDT:USDT (linear.SOL-PERP)) repeats entries "
        "earlier in the file exactly; each is used once"
    ]


def test_many_repeated_entries_make_one_short_warning(tmp_path: Path) -> None:
    document = {"linear": {f"C{i}USDT": perp_entry(f"C{i}") for i in range(30)}}
    instrument_file(tmp_path, document, "a")
    instrument_file(tmp_path, document, "b")
    warnings: list[str] = []
    load_instruments(tmp_path, ["C1/USDT:USDT"], warnings=warnings)
    (warning,) = warnings
    assert warning.startswith("bybit_instruments_info_b.json: 30 instrument entries (C0/USDT")
    assert " and 10 more) repeat bybit_instruments_info_a.json exactly" in warning


def test_a_key_twice_in_one_object_the_same_is_a_warning(tmp_path: Path) -> None:
    entry = json.dumps(SPOT_ENTRY)
    path = tmp_path / "bybit_instruments_info_x.json"
    path.write_text(f'{{"spot": {{"SOLUSDT": {entry}, "SOLUSDT": {entry}}}}}')
    warnings: list[str] = []
    load_instruments(tmp_path, ["SOL/USDT"], warnings=warnings)
    assert warnings == [
        f"{path.name}: 1 key ('SOLUSDT') appears twice in one object, the same both times; "
        "each is used once"
    ]


def test_warnings_are_optional(tmp_path: Path) -> None:
    document = {"spot": {"SOLUSDT": SPOT_ENTRY}}
    instrument_file(tmp_path, document, "a")
    instrument_file(tmp_path, document, "b")
    assert list(load_instruments(tmp_path, ["SOL/USDT"])) == ["SOL/USDT"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"spot": {"SOLUSDT": %s, "SOLUSDT": %s}}', "SOLUSDT"),
        ('{"spot": {"SOLUSDT": %s}, "spot": {"SOLUSDT": %s}}', "spot"),
    ],
    ids=["entry", "section"],
)
def test_a_key_twice_in_one_object_differently_is_refused(
    tmp_path: Path, text: str, key: str
) -> None:
    other = {**SPOT_ENTRY, "priceFilter": {"tickSize": "0.1"}}
    path = tmp_path / "bybit_instruments_info_x.json"
    path.write_text(text % (json.dumps(SPOT_ENTRY), json.dumps(other)))
    with pytest.raises(DataError) as caught:
        load_instruments(tmp_path, ["SOL/USDT"])
    assert str(caught.value) == (
        f"{path}: the key '{key}' appears twice in one object, with different values"
    )


def test_one_file_listing_a_symbol_twice_differently_is_refused(tmp_path: Path) -> None:
    path = instrument_file(
        tmp_path, {"linear": {"SOLUSDT": perp_entry(), "SOL-PERP": perp_entry(step="1")}}
    )
    with pytest.raises(DataError) as caught:
        load_instruments(tmp_path, ["SOL/USDT:USDT"])
    assert str(caught.value) == (
        f"SOL/USDT:USDT is listed differently in {path} (linear.SOLUSDT) "
        f"and {path} (linear.SOL-PERP)"
    )


def spot_file_text(**lot: str) -> str:
    """A spot SOLUSDT entry with the lot size values written as raw JSON text."""
    lots = {"basePrecision": '"0.001"', "minOrderQty": '"0.01"', "minOrderAmt": '"5"', **lot}
    fields = ", ".join(f'"{key}": {value}' for key, value in lots.items())
    return (
        '{"spot": {"SOLUSDT": {"baseCoin": "SOL", "quoteCoin": "USDT", '
        f'"lotSizeFilter": {{{fields}}}, "priceFilter": {{"tickSize": "0.01"}}}}}}}}'
    )


NESTED = "[" * 10_000 + "]" * 10_000

BAD_INSTRUMENT_FILES = [
    # (id, file text, what the message says after "<path>")
    ("10000 nested lists", f'{{"spot": {{}}, "x": {NESTED}}}', ": nested more than 32 deep"),
    ("40 nested lists", '{"spot": {}, "x": ' + "[" * 40 + "]" * 40 + "}", ": nested more than 32"),
    (
        "10000 nested objects",
        '{"spot": {}, "x": ' + '{"a": ' * 10_000 + "1" + "}" * 10_000 + "}",
        ": nested more than 32 deep",
    ),
    ("nested inside an entry", spot_file_text(extra=NESTED), ": nested more than 32 deep"),
    (
        "5000-digit integer read",
        spot_file_text(minOrderAmt="9" * 5000),
        ": the number 9999999999999999999999999999999999999999... (5,000 characters) is out of",
    ),
    (
        "5000-digit integer not read",
        spot_file_text(unused="1" * 5000),
        ": the number 1111111111111111111111111111111111111111... (5,000 characters) is out of",
    ),
    ("NaN literal", spot_file_text(minOrderQty="NaN"), ": NaN is not a number JSON allows"),
    ("Infinity literal", spot_file_text(unused="Infinity"), ": Infinity is not a number JSON"),
    ("-Infinity literal", spot_file_text(unused="-Infinity"), ": -Infinity is not a number"),
    (
        "exponent beyond Decimal",
        spot_file_text(minOrderAmt="1e9999999999999999999999"),
        ": the number 1e9999999999999999999999 is out of range",
    ),
    (
        "huge step",
        spot_file_text(basePrecision="1e999999"),
        ": spot.SOLUSDT.lotSizeFilter.basePrecision is 1E+999999, outside 1E-40 to 1E+15",
    ),
    (
        "tiny step",
        spot_file_text(basePrecision='"1e-999999"'),
        ": spot.SOLUSDT.lotSizeFilter.basePrecision is 1E-999999, outside 1E-40 to 1E+15",
    ),
    (
        "huge minimum as text",
        spot_file_text(minOrderQty='"' + "9" * 5000 + '"'),
        ": spot.SOLUSDT.lotSizeFilter.minOrderQty is 9999999999999999999999999999999999999999.",
    ),
    (
        "NaN as text",
        spot_file_text(minOrderQty='"NaN"'),
        ": spot.SOLUSDT: min_qty must be a positive number, got NaN",
    ),
]


@pytest.mark.parametrize(
    ("text", "says"),
    [case[1:] for case in BAD_INSTRUMENT_FILES],
    ids=[case[0] for case in BAD_INSTRUMENT_FILES],
)
def test_an_instrument_file_built_to_hurt_is_refused_naming_it(
    tmp_path: Path, text: str, says: str
) -> None:
    path = tmp_path / "bybit_instruments_info_x.json"
    path.write_text(text)
    with pytest.raises(DataError) as caught:
        load_instruments(tmp_path, ["SOL/USDT"])
    message = str(caught.value)
    assert message.startswith(f"{path}{says}"), message
    assert "\n" not in message and len(message) < 300


def test_tiny_steps_with_absurd_precision_are_allowed(tmp_path: Path) -> None:
    (tmp_path / "bybit_instruments_info_x.json").write_text(
        spot_file_text(basePrecision='"1e-30"', minOrderQty="0.000000000000000000000000000001")
    )
    found = load_instruments(tmp_path, ["SOL/USDT"])["SOL/USDT"]
    assert found.qty_step == found.min_qty == D("1e-30")
