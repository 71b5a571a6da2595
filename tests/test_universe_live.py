"""The facts of every pair from the venue now (orchestrator.universe.live), through real
ccxt against the shipped venue replaying 40 synthetic pairs: each matches a plain
recomputation from the folder's files, and a pair that fails is named without losing
the others."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orchestrator.market.download import make_public_exchange
from orchestrator.market.synthetic import START, write_folder
from orchestrator.universe.live import PairFailure, facts_now
from orchestrator.venue import Venue, parse_faults
from tests.universe_support import CLOCK_MS, DAY_MS, DAYS, N_PAIRS, Expected, expected

pytestmark = pytest.mark.anyio
HISTORY_DAYS = 10  # the hourly perps' 241 settlements take two pages


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("universe")
    write_folder(path, N_PAIRS, DAYS)
    return path


@pytest.fixture(scope="module")
def truth(folder: Path) -> dict[str, Expected]:
    return expected(folder)


@pytest.fixture
async def exchange_for(folder: Path) -> AsyncIterator[Any]:
    """A public client (no keys, ccxt's rate limit on) against a venue on the folder
    with the faults given; both closed after."""
    opened: list[tuple[Venue, Any]] = []

    async def open_one(faults: list[dict[str, Any]] | None = None) -> Any:
        spec = parse_faults(json.dumps({"rules": faults})) if faults else None
        venue = Venue(data_dir=folder, recorded=True, start_ms=CLOCK_MS, faults=spec)
        await venue.start()
        exchange = make_public_exchange(venue.url, 5_000)
        opened.append((venue, exchange))
        return exchange

    yield open_one
    for venue, exchange in opened:
        await exchange.close()
        await venue.stop()


async def test_the_facts_of_every_pair_match_the_files(
    exchange_for: Any, truth: dict[str, Expected]
) -> None:
    exchange = await exchange_for()
    seen: list[tuple[int, int, str]] = []
    failures: list[PairFailure] = []
    facts, _ = await facts_now(
        exchange, HISTORY_DAYS, progress=lambda *a: seen.append(a), failures=failures
    )
    assert failures == []
    assert [f.market for f in facts] == sorted(truth)
    assert [done for done, _, _ in seen] == list(range(1, N_PAIRS + 1))  # one tick per pair
    start_ms = int(START.timestamp() * 1000)
    for got in facts:
        want = truth[got.market]
        base = got.market.removesuffix("USDT")
        assert (got.spot, got.perp) == (f"{base}/USDT", f"{base}/USDT:USDT")
        assert got.interval_hours == want.interval_hours
        # Every settlement of the span, paged past Bybit's 200 for the hourly perps.
        # (since, now]: a settlement exactly at the span's start is outside it
        assert got.rates == want.settled_since(CLOCK_MS - HISTORY_DAYS * DAY_MS + 1)
        assert len(got.rates) == HISTORY_DAYS * 24 // want.interval_hours  # (since, now]
        assert got.turnover_24h == want.turnover_24h
        assert (got.next_funding_ms, got.predicted_rate) == want.next_rate
        assert got.basis == want.perp_last / want.spot_last - 1
        assert got.spread == Decimal("0.02") / want.perp_last  # a tick either side
        assert got.first_settled_ms == start_ms  # the listing, older than the span
        for value in (got.turnover_24h, got.predicted_rate, got.spread, got.basis):
            assert isinstance(value, Decimal)


async def test_a_failing_pair_is_named_and_the_others_kept(
    exchange_for: Any, truth: dict[str, Expected]
) -> None:
    exchange = await exchange_for(
        [
            # A network error is retried: it costs no pair.
            {"kind": "http", "endpoint": "market/funding/history", "status": 503, "after": 3},
            # A refusal is not: one pair's history fails, named with the venue's words.
            {
                "kind": "reject",
                "endpoint": "market/funding/history",
                "after": 20,
                "ret_code": 10001,
                "ret_msg": "params error: the history is not there",
            },
        ]
    )
    failures: list[PairFailure] = []
    facts, _ = await facts_now(exchange, 1, concurrency=3, failures=failures)
    assert len(failures) == 1
    (failed,) = failures
    assert failed.market in truth
    assert "the history is not there" in str(failed)
    assert str(failed).startswith(f"{failed.market}: ")
    assert sorted([f.market for f in facts] + [failed.market]) == sorted(truth)


async def test_without_history_only_the_tickers_are_read(
    exchange_for: Any, truth: dict[str, Expected]
) -> None:
    """``history_days`` 0 (what ``data download --top`` needs): no settlement is fetched,
    the listing age comes from the instruments' launchTime."""
    exchange = await exchange_for()
    facts, _ = await facts_now(exchange, 0)
    assert [f.market for f in facts] == sorted(truth)
    assert all(f.rates == [] for f in facts)
    assert {f.first_settled_ms for f in facts} == {int(START.timestamp() * 1000)}
    assert [f.turnover_24h for f in facts] == [truth[f.market].turnover_24h for f in facts]
