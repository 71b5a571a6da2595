"""The shipped venue serves the whole market of its data folder: 40 synthetic pairs with
funding every 8, 4, 2 or 1 hours, through real ccxt. Every pair listed with its own
interval, tickers with each pair's last day and next settlement, instruments paged by
Bybit's cursor, funding history and settlements at each perp's own times."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orchestrator.market.synthetic import interval_hours, write_folder
from orchestrator.venue import Venue, make_client
from tests.universe_support import (
    CLOCK_MS,
    DAYS,
    HOUR_MS,
    N_PAIRS,
    Expected,
    expected,
    venue_process,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("universe")
    write_folder(path, N_PAIRS, DAYS)
    return path


@pytest.fixture(scope="module")
def truth(folder: Path) -> dict[str, Expected]:
    return expected(folder)


@pytest.fixture(scope="module")
def url(folder: Path) -> Iterator[str]:
    with venue_process(folder) as found:
        yield found


@pytest.fixture
async def exchange(url: str) -> AsyncIterator[Any]:
    client = make_client(url)
    try:
        await client.load_markets()
        yield client
    finally:
        await client.close()


async def test_every_pair_is_listed_with_its_own_funding_interval(
    exchange: Any, truth: dict[str, Expected]
) -> None:
    perps = {m["id"]: m for m in exchange.markets.values() if m["swap"] and m["linear"]}
    spots = {m["id"] for m in exchange.markets.values() if m["spot"]}
    assert set(perps) == spots == set(truth)
    assert len(truth) == N_PAIRS
    rates = await exchange.fetch_funding_rates()
    for market, facts in truth.items():
        perp = perps[market]
        assert int(perp["info"]["fundingInterval"]) == facts.interval_hours * 60
        rate = rates[perp["symbol"]]
        assert rate["interval"] == f"{facts.interval_hours}h"
        # The predicted rate is the next settlement's, due at its own time.
        assert rate["info"]["fundingRate"] == format(facts.next_rate[1], "f")
        assert int(rate["info"]["nextFundingTime"]) == facts.next_rate[0]
    assert {facts.interval_hours for facts in truth.values()} == {1, 2, 4, 8}


async def test_tickers_say_each_pairs_last_day_and_quote(
    exchange: Any, truth: dict[str, Expected]
) -> None:
    perps = await exchange.fetch_tickers(params={"type": "swap"})
    spots = await exchange.fetch_tickers(params={"type": "spot"})
    assert len(perps) == len(spots) == N_PAIRS
    for market, facts in truth.items():
        base = market.removesuffix("USDT")
        perp = perps[f"{base}/USDT:USDT"]["info"]
        spot = spots[f"{base}/USDT"]["info"]
        assert Decimal(perp["turnover24h"]) == facts.turnover_24h
        assert Decimal(perp["lastPrice"]) == facts.perp_last
        assert Decimal(spot["lastPrice"]) == facts.spot_last
        assert perp["fundingIntervalHour"] == str(facts.interval_hours)
        bid, ask = Decimal(perp["bid1Price"]), Decimal(perp["ask1Price"])
        assert bid < facts.perp_last < ask
        assert ask - facts.perp_last == facts.perp_last - bid == Decimal("0.01")  # a tick


async def test_instruments_page_by_bybits_cursor(exchange: Any, truth: dict[str, Expected]) -> None:
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        params = {"category": "linear", "limit": "7", **({"cursor": cursor} if cursor else {})}
        answer = await exchange.public_get_v5_market_instruments_info(params)
        page = answer["result"]["list"]
        assert len(page) <= 7
        seen += [entry["symbol"] for entry in page]
        pages += 1
        cursor = answer["result"]["nextPageCursor"]
        if not cursor:
            break
    assert pages == -(-N_PAIRS // 7)
    assert seen == sorted(truth)  # each once, in Bybit's order
    # Without a limit, Bybit's default page of 500 holds them all; spot is never paged.
    whole = await exchange.public_get_v5_market_instruments_info({"category": "linear"})
    assert len(whole["result"]["list"]) == N_PAIRS
    spot = await exchange.public_get_v5_market_instruments_info({"category": "spot", "limit": "3"})
    assert len(spot["result"]["list"]) == N_PAIRS
    assert spot["result"]["nextPageCursor"] == ""
    for bad in ("0", "1001"):
        with pytest.raises(Exception, match="limit must be from 1 to 1000"):
            await exchange.public_get_v5_market_instruments_info(
                {"category": "linear", "limit": bad}
            )


async def test_funding_history_is_each_perps_own(exchange: Any, truth: dict[str, Expected]) -> None:
    since = CLOCK_MS - 2 * 24 * HOUR_MS
    for k in range(4):  # 8, 4, 2 and 1 hours
        facts = truth[f"SYN{k}USDT"]
        history = await exchange.fetch_funding_rate_history(
            f"SYN{k}/USDT:USDT", since, 200, {"until": CLOCK_MS}
        )
        got = [(h["timestamp"], Decimal(h["info"]["fundingRate"])) for h in history]
        assert got == facts.settled_since(since)
        assert len(got) == 48 // interval_hours(k) + 1


async def test_each_perp_settles_at_its_own_times(folder: Path, truth: dict[str, Expected]) -> None:
    async with Venue(data_dir=folder, recorded=True, start_ms=CLOCK_MS) as venue:
        client = make_client(venue.url)
        try:
            await client.load_markets()
            for k in range(4):
                await client.create_order(f"SYN{k}/USDT:USDT", "market", "sell", 1)
            venue.advance_to(CLOCK_MS + 8 * HOUR_MS)
            for k in range(4):
                facts = truth[f"SYN{k}USDT"]
                paid = await client.fetch_funding_history(f"SYN{k}/USDT:USDT")
                times = sorted(p["timestamp"] for p in paid)
                due = [t for t, _ in facts.settled_since(CLOCK_MS + 1, CLOCK_MS + 8 * HOUR_MS)]
                assert times == due
                assert len(times) == 8 // interval_hours(k)
        finally:
            await client.close()
