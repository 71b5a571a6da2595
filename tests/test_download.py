"""The download engine through real ccxt (async bybit) against the fake Bybit v5 server."""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from orchestrator.exceptions import OrchestratorError
from orchestrator.market.download import (
    FUNDING_HEADER,
    KLINE_HEADER,
    DownloadError,
    InvalidDateError,
    TextProgress,
    download,
    make_public_exchange,
    parse_date,
)
from tests.fake_bybit import (
    HOUR_MS,
    INSTRUMENTS,
    FakeBybit,
    funding_rate,
    kline_entry,
)

pytestmark = pytest.mark.anyio

BTC = ("BTC/USDT", "BTC/USDT:USDT")
ETH = ("ETH/USDT", "ETH/USDT:USDT")
SINCE = parse_date("2024-01-01")
UNTIL = parse_date("2024-04-01")  # 2184 hours: 3 kline pages and 2 funding pages per series
NAMES = (
    "bybit_BTCUSDT_funding_rates_2024-01-01_2024-04-01.csv.gz",
    "bybit_BTCUSDT_spot_1h_2024-01-01_2024-04-01.csv.gz",
    "bybit_BTCUSDT_perp_1h_2024-01-01_2024-04-01.csv.gz",
)
FUNDING, SPOT, PERP = NAMES


def quiet(series: str, done_ms: int, total_ms: int) -> None:
    pass


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def klines(category: str, symbol: str, since: int, until: int) -> list[str]:
    """The CSV lines the venue's bars must become, its text untouched."""
    data_type = "spot" if category == "spot" else "futures"
    lines = []
    for start in range(since, until, HOUR_MS):
        _, o, h, low, c, volume, turnover = kline_entry(category, symbol, start)
        fields = (iso(start), o, h, low, c, volume, "bybit", symbol, data_type, turnover)
        lines.append(",".join(fields))
    return lines


def fundings(symbol: str, since: int, until: int, every_hours: int = 8) -> list[str]:
    times = range(since, until, every_hours * HOUR_MS)
    return [f"{iso(t)},{funding_rate(symbol, t)},{symbol},bybit" for t in times]


def read_gz(path: Path) -> list[str]:
    with gzip.open(path, "rt") as f:
        return f.read().splitlines()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def pages(fake: FakeBybit, category: str) -> list[dict[str, str]]:
    return [
        query
        for path, query in fake.market_queries
        if path == "/v5/market/kline" and query["category"] == category
    ]


@pytest.fixture
async def fake() -> AsyncIterator[FakeBybit]:
    async with FakeBybit(history_hours=100 * 24) as server:
        yield server


async def test_writes_every_series_in_the_recorded_format_with_the_venues_text(
    fake: FakeBybit, exchange: Any, tmp_path: Path
) -> None:
    calls: list[tuple[str, int, int]] = []
    paths = await download(
        exchange, [BTC, ETH], SINCE, UNTIL, tmp_path, progress=lambda *a: calls.append(a)
    )

    eth = tuple(name.replace("BTC", "ETH") for name in NAMES)
    assert [p.name for p in paths[1:]] == [*NAMES, *eth]
    assert listing(tmp_path) == sorted([paths[0].name, *NAMES, *eth])
    for symbol, (funding, spot, perp) in (("BTCUSDT", NAMES), ("ETHUSDT", eth)):
        assert read_gz(tmp_path / funding) == [FUNDING_HEADER, *fundings(symbol, SINCE, UNTIL)]
        assert read_gz(tmp_path / spot) == [
            KLINE_HEADER,
            *klines("spot", symbol, SINCE, UNTIL),
        ]
        assert read_gz(tmp_path / perp) == [
            KLINE_HEADER,
            *klines("linear", symbol, SINCE, UNTIL),
        ]
    # Numbers a float would have changed arrive as the venue wrote them.
    first = read_gz(tmp_path / SPOT)[1]
    assert first == (
        "2024-01-01T00:00:00Z,42908.80,42909.70,42900.20,42900.70,3.353,"
        "bybit,BTCUSDT,spot,143846.04710089"
    )
    # Multi-page: 999 bars then 999 then the rest, from each category's own endpoint.
    assert [int(q["start"]) for q in pages(fake, "spot")[:3]] == [
        SINCE,
        SINCE + 999 * HOUR_MS,
        SINCE + 1998 * HOUR_MS,
    ]
    assert len(pages(fake, "linear")) == len(pages(fake, "spot")) == 6  # 3 per symbol
    funding_pages = [q for path, q in fake.market_queries if path.endswith("funding/history")]
    assert len(funding_pages) == 4
    # Progress per series: from 0 to the whole window, never backwards.
    total = UNTIL - SINCE
    btc_spot = [done for series, done, _ in calls if series == "BTCUSDT spot 1h"]
    assert btc_spot[0] == 0 and btc_spot[-1] == total and btc_spot == sorted(btc_spot)
    assert {t for _, _, t in calls} == {total}

    # Complete files are skipped: no market data is asked for again.
    fake.market_queries.clear()
    before = {p: p.read_bytes() for p in paths}
    again = await download(exchange, [BTC, ETH], SINCE, UNTIL, tmp_path, progress=quiet)
    assert again == paths[1:]  # the instruments are listed already: no new file
    assert fake.market_queries == []
    assert {p: p.read_bytes() for p in paths} == before


async def test_gzip_is_deterministic(exchange: Any, tmp_path: Path) -> None:
    until = SINCE + 48 * HOUR_MS
    one, two = tmp_path / "one", tmp_path / "two"
    await download(exchange, [BTC], SINCE, until, one, progress=quiet)
    await download(exchange, [BTC], SINCE, until, two, progress=quiet)

    names = ("funding_rates", "spot_1h", "perp_1h")
    for kind in names:
        name = f"bybit_BTCUSDT_{kind}_2024-01-01_2024-01-03.csv.gz"
        data = (one / name).read_bytes()
        assert data == (two / name).read_bytes()
        assert data[3] == 0  # no flags: no file name stored
        assert data[4:8] == b"\0\0\0\0"  # mtime 0
    assert not list(one.glob("*.partial")) and not list(one.glob("*.tmp"))


async def test_the_instruments_file_holds_the_raw_entries(exchange: Any, tmp_path: Path) -> None:
    paths = await download(exchange, [BTC, ETH], SINCE, SINCE + HOUR_MS, tmp_path, progress=quiet)

    assert re.fullmatch(r"bybit_instruments_info_BTC_ETH_\d{4}-\d{2}-\d{2}\.json", paths[0].name)
    recorded = json.loads(INSTRUMENTS.read_text())
    assert json.loads(paths[0].read_text()) == {
        "spot": {"BTCUSDT": recorded["spot"]["BTCUSDT"], "ETHUSDT": recorded["spot"]["ETHUSDT"]},
        "linear": {
            "BTCUSDT": recorded["linear"]["BTCUSDT"],
            "ETHUSDT": recorded["linear"]["ETHUSDT"],
        },
    }


async def test_markets_an_instruments_file_lists_already_are_left_alone(
    exchange: Any, tmp_path: Path
) -> None:
    # The replay refuses two different entries for one market across instrument files.
    recorded = json.loads(INSTRUMENTS.read_text())
    older = {
        "spot": {"BTCUSDT": {**recorded["spot"]["BTCUSDT"], "status": "an older snapshot"}},
        "linear": {"BTCUSDT": recorded["linear"]["BTCUSDT"]},
    }
    (tmp_path / "bybit_instruments_info_BTC_old.json").write_text(json.dumps(older))

    paths = await download(exchange, [BTC, ETH], SINCE, SINCE + HOUR_MS, tmp_path, progress=quiet)

    assert re.fullmatch(r"bybit_instruments_info_ETH_\d{4}-\d{2}-\d{2}\.json", paths[0].name)
    assert json.loads(paths[0].read_text()) == {
        "spot": {"ETHUSDT": recorded["spot"]["ETHUSDT"]},
        "linear": {"ETHUSDT": recorded["linear"]["ETHUSDT"]},
    }
    assert json.loads((tmp_path / "bybit_instruments_info_BTC_old.json").read_text()) == older


async def test_resume_after_the_venue_fails_ends_identical_to_one_run(
    fake: FakeBybit, exchange: Any, tmp_path: Path
) -> None:
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    await download(exchange, [BTC], SINCE, UNTIL, whole, progress=quiet)
    fake.market_reads_left = 4  # funding's two pages, two of the spot's three, then gone

    with pytest.raises(DownloadError, match=r"BTCUSDT spot 1h: .*System error"):
        await download(exchange, [BTC], SINCE, UNTIL, resumed, progress=quiet)

    assert (resumed / FUNDING).exists() and not (resumed / SPOT).exists()
    partial = resumed / f"{SPOT}.partial"
    assert partial.read_text().splitlines() == [
        KLINE_HEADER,
        *klines("spot", "BTCUSDT", SINCE, SINCE + 1998 * HOUR_MS),
    ]

    fake.market_reads_left = None
    fake.market_queries.clear()
    await download(exchange, [BTC], SINCE, UNTIL, resumed, progress=quiet)

    for name in NAMES:
        assert (resumed / name).read_bytes() == (whole / name).read_bytes()
    assert not list(resumed.glob("*.partial"))
    # Funding was complete; the spot series went on from the bar after its last row.
    assert not any(path.endswith("funding/history") for path, _ in fake.market_queries)
    assert [int(q["start"]) for q in pages(fake, "spot")] == [SINCE + 1998 * HOUR_MS]


@pytest.mark.parametrize("how", ["keyboard", "cancel"])
async def test_an_interrupt_leaves_whole_lines_and_the_rerun_completes(
    exchange: Any, tmp_path: Path, how: str
) -> None:
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    await download(exchange, [BTC], SINCE, UNTIL, whole, progress=quiet)
    scope = anyio.CancelScope()

    def interrupt(series: str, done_ms: int, total_ms: int) -> None:
        if series == "BTCUSDT perp 1h" and 0 < done_ms < total_ms:
            if how == "keyboard":
                raise KeyboardInterrupt
            scope.cancel()

    if how == "keyboard":
        with pytest.raises(KeyboardInterrupt):
            await download(exchange, [BTC], SINCE, UNTIL, resumed, progress=interrupt)
    else:
        with scope:
            await download(exchange, [BTC], SINCE, UNTIL, resumed, progress=interrupt)
        assert scope.cancelled_caught

    partial = resumed / f"{PERP}.partial"
    text = partial.read_text()
    assert text.endswith("\n")
    assert text.splitlines() == [
        KLINE_HEADER,
        *klines("linear", "BTCUSDT", SINCE, SINCE + 999 * HOUR_MS),
    ]
    # A crash in the middle of a write would leave a cut line: the rerun drops it.
    with partial.open("a") as f:
        f.write("2024-02-11T15:00:00Z,42")

    await download(exchange, [BTC], SINCE, UNTIL, resumed, progress=quiet)

    for name in NAMES:
        assert (resumed / name).read_bytes() == (whole / name).read_bytes()


async def test_a_transient_503_is_retried(fake: FakeBybit, exchange: Any, tmp_path: Path) -> None:
    fake.failing_market_reads = 1
    until = SINCE + 24 * HOUR_MS

    await download(exchange, [BTC], SINCE, until, tmp_path, progress=quiet)

    funding_name = "bybit_BTCUSDT_funding_rates_2024-01-01_2024-01-02.csv.gz"
    assert read_gz(tmp_path / funding_name) == [FUNDING_HEADER, *fundings("BTCUSDT", SINCE, until)]
    assert len(fake.market_queries) == 4  # the failed funding read, then one page per series


async def test_an_error_retcode_becomes_a_download_error_naming_the_series(
    fake: FakeBybit, exchange: Any, tmp_path: Path
) -> None:
    fake.market_error = (10001, "params error: symbol invalid")

    with pytest.raises(DownloadError, match="BTCUSDT funding") as caught:
        await download(exchange, [BTC], SINCE, UNTIL, tmp_path, progress=quiet)

    assert isinstance(caught.value, OrchestratorError)
    assert "params error: symbol invalid" in str(caught.value)
    assert len(fake.market_queries) == 1  # not retried


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        (("DOGE/USDT", "BTC/USDT:USDT"), "DOGE/USDT: Bybit lists no such market"),
        (("BTC/USDT:USDT", "BTC/USDT:USDT"), "BTC/USDT:USDT: not a spot market"),
        (("BTC/USDT", "BTC/USDT"), "BTC/USDT: not a linear perpetual"),
    ],
)
async def test_a_pair_that_is_not_spot_and_perp_is_refused(
    fake: FakeBybit, exchange: Any, tmp_path: Path, pair: tuple[str, str], message: str
) -> None:
    with pytest.raises(DownloadError, match=re.escape(message)):
        await download(exchange, [pair], SINCE, UNTIL, tmp_path, progress=quiet)
    assert fake.market_queries == []


async def test_funding_denser_than_the_instrument_says_loses_no_row(
    fake: FakeBybit, exchange: Any, tmp_path: Path
) -> None:
    fake.funding_hours = 2  # the instrument says 480 minutes; full pages must not drop rows
    until = SINCE + 30 * 24 * HOUR_MS

    await download(exchange, [BTC], SINCE, until, tmp_path, progress=quiet)

    name = "bybit_BTCUSDT_funding_rates_2024-01-01_2024-01-31.csv.gz"
    assert read_gz(tmp_path / name) == [FUNDING_HEADER, *fundings("BTCUSDT", SINCE, until, 2)]


async def test_history_shorter_than_the_window_ends_without_looping(
    fake: FakeBybit, exchange: Any, tmp_path: Path
) -> None:
    fake.history_hours = 50
    since, until = parse_date("2023-12-30"), parse_date("2024-01-10")

    await download(exchange, [BTC], since, until, tmp_path, progress=quiet)

    window = "2023-12-30_2024-01-10"
    history_end = SINCE + 50 * HOUR_MS
    funding = read_gz(tmp_path / f"bybit_BTCUSDT_funding_rates_{window}.csv.gz")
    assert funding == [FUNDING_HEADER, *fundings("BTCUSDT", SINCE, history_end)]
    spot = read_gz(tmp_path / f"bybit_BTCUSDT_spot_1h_{window}.csv.gz")
    assert spot == [KLINE_HEADER, *klines("spot", "BTCUSDT", SINCE, history_end)]
    assert len(fake.market_queries) == 3


async def test_a_window_without_history_is_an_error_and_writes_nothing(
    exchange: Any, tmp_path: Path
) -> None:
    since, until = parse_date("2023-06-01"), parse_date("2023-07-01")

    with pytest.raises(DownloadError, match="BTCUSDT funding: Bybit has no rows from 2023-06-01"):
        await download(exchange, [BTC], since, until, tmp_path, progress=quiet)

    assert [p for p in listing(tmp_path) if "instruments" not in p] == []


async def test_a_window_inside_the_day_stops_at_until(exchange: Any, tmp_path: Path) -> None:
    since, until = parse_date("2024-01-01T08:30:00Z"), parse_date("2024-01-02T08:00:00Z")

    await download(exchange, [BTC], since, until, tmp_path, progress=quiet)

    # Named by the days it touches, the end exclusive; rows are in [since, until).
    perp = read_gz(tmp_path / "bybit_BTCUSDT_perp_1h_2024-01-01_2024-01-03.csv.gz")
    assert perp == [KLINE_HEADER, *klines("linear", "BTCUSDT", since + HOUR_MS // 2, until)]
    funding = read_gz(tmp_path / "bybit_BTCUSDT_funding_rates_2024-01-01_2024-01-03.csv.gz")
    assert funding == [FUNDING_HEADER, *fundings("BTCUSDT", SINCE + 16 * HOUR_MS, until)]


async def test_an_empty_or_unfinished_window_is_refused(exchange: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidDateError, match="is empty"):
        await download(exchange, [BTC], UNTIL, UNTIL, tmp_path, progress=quiet)
    with pytest.raises(InvalidDateError, match="in the future"):
        await download(exchange, [BTC], SINCE, parse_date("2999-01-01"), tmp_path)


def test_parse_date_reads_days_and_utc_datetimes() -> None:
    assert parse_date("2024-01-01") == 1_704_067_200_000
    assert parse_date("2024-01-01T08:00:00Z") == 1_704_067_200_000 + 8 * HOUR_MS
    assert parse_date("2024-01-01T10:00:00+02:00") == 1_704_067_200_000 + 8 * HOUR_MS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "is not a date"),
        ("2024-13-01", "is not a date"),
        ("20240101", "is not a date"),
        ("2024-01-01T08:00:00", "no time zone"),
    ],
)
def test_parse_date_refuses_anything_else(text: str, message: str) -> None:
    with pytest.raises(InvalidDateError, match=message):
        parse_date(text)


def test_text_progress_draws_one_line_per_series() -> None:
    out = io.StringIO()
    bar = TextProgress(out, width=10)
    bar("BTCUSDT funding", 0, 100)
    bar("BTCUSDT funding", 50, 100)
    bar("BTCUSDT funding", 100, 100)
    bar("BTCUSDT spot 1h", 30, 100)
    bar("BTCUSDT perp 1h", 0, 100)  # the spot line stopped early: it keeps its own line

    lines = out.getvalue().split("\n")
    assert len(lines) == 3
    assert lines[0].split("\r")[1:] == [
        f"{'BTCUSDT funding':<20} [..........]   0%",
        f"{'BTCUSDT funding':<20} [#####.....]  50%",
        f"{'BTCUSDT funding':<20} [##########] 100%",
    ]
    assert lines[1] == f"\r{'BTCUSDT spot 1h':<20} [###.......]  30%"
    assert lines[2].startswith("\rBTCUSDT perp 1h")


async def test_the_public_client_has_no_keys_and_throttles() -> None:
    client = make_public_exchange()
    try:
        assert not client.apiKey and not client.secret
        assert client.enableRateLimit
        assert client.options["fetchMarkets"]["types"] == ["spot", "linear"]
    finally:
        await client.close()
