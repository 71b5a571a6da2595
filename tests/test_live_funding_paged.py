"""What the venue paid, and traded, while a live run was away, however long: Bybit's
/v5/execution/list answers one window of at most 7 days, in pages of at most 100 linked
by a cursor (the loopback venue answers as Bybit does: tests/test_venue.py). The run
reads every window and page, through real ccxt: the market reader and the executor
against the venue in process, and a run stopped holding, the venue's clock moved on 40
days (120 settlements of the 8-hour perp), then ``orchestrator run --resume``, each in
its own process; and a dry run's paper short, paid from the public funding history."""

from __future__ import annotations

import csv
import json
import signal
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from orchestrator.bybit.client import make_exchange
from orchestrator.config import Pair
from orchestrator.execution.live import LiveExecutor
from orchestrator.journal import Journal
from orchestrator.live.market import LiveMarket, MarketClock
from orchestrator.models import Category, Side
from orchestrator.settings import VenueTiming
from orchestrator.strategy.funding import FundingStrategy
from orchestrator.trading.run import PairRun
from orchestrator.venue import Venue, funding_rate
from orchestrator.venue.client import DEFAULT_API_KEY, DEFAULT_SECRET
from tests.fake_bybit import INSTRUMENTS
from tests.support import BTC_PERP, BTC_SPOT, QUICK, make_ticker
from tests.test_crash_resume_live import (
    SCENARIOS,
    VenueProcess,
    Watched,
    orchestrator,
    stop_holding,
)
from tests.test_journal_run import CONFIG

HOUR_MS, DAY_MS = 3_600_000, 86_400_000


@pytest.fixture
async def exchange(bybit_venue: Venue) -> AsyncIterator[Any]:
    """ccxt as a live run builds it, for the venue in process, markets loaded."""
    client = make_exchange(
        DEFAULT_API_KEY, DEFAULT_SECRET, VenueTiming(request_timeout_ms=2000), url=bybit_venue.url
    )
    try:
        await client.load_markets()
        yield client
    finally:
        await client.close()


def btc() -> PairRun:
    strategy = FundingStrategy(QUICK, CONFIG.fees, CONFIG.paper.slippage)
    return PairRun(Pair("BTC/USDT", "BTC/USDT:USDT"), BTC_SPOT, BTC_PERP, strategy)


@pytest.mark.anyio
async def test_ten_days_of_hourly_funding_are_each_read_once(
    bybit_venue: Venue, exchange: Any
) -> None:
    """A perp settling every hour, the run away for 10 days: 240 executions, more than a
    page holds and over more than one window of 7 days. Each is read, once."""
    await exchange.create_order("BTC/USDT:USDT", "market", "sell", 0.01)
    now = bybit_venue.server_ms()
    since = now - 10 * DAY_MS
    for t in range(since, now, HOUR_MS):
        bybit_venue.settle_funding("BTCUSDT", funding_rate("BTCUSDT", t), time_ms=t)
    paid_by_venue = sorted(
        (e.exec_id, e.time_ms, -e.fee)
        for e in bybit_venue.book.executions
        if e.exec_type == "Funding"
    )
    assert len(paid_by_venue) == 240
    run = btc()
    market = LiveMarket(exchange, [run], make_ticker(), MarketClock())
    market.clock.set(int(await exchange.fetch_time()))

    paid = await market.funding_paid(run, since)

    assert sorted((p.id, p.time_ms, p.received) for p in paid) == paid_by_venue
    assert [p.time_ms for p in paid] == sorted(p.time_ms for p in paid)  # oldest first
    assert await market.funding_paid(run, since) == []  # nothing twice


@pytest.mark.anyio
async def test_trades_made_outside_the_run_after_a_week_held_are_all_found(
    bybit_venue: Venue, exchange: Any
) -> None:
    """A position held for 10 days, the owner trading its perp by hand all along (120
    trades, more than a page) and buying part of it back today: every one of those
    trades is found; the run's own order is not among them."""
    order = await exchange.create_order("BTC/USDT:USDT", "market", "sell", 0.2)
    now = bybit_venue.server_ms()
    began = now - 10 * DAY_MS
    for k in range(120):  # in pairs that cancel out: the short stays as it was
        side = "Buy" if k % 2 else "Sell"
        when = began + (k + 1) * 2 * HOUR_MS
        bybit_venue.book.outside_trade("linear", "BTCUSDT", side, Decimal("0.001"), when)
    bybit_venue.book.outside_trade("linear", "BTCUSDT", "Buy", Decimal("0.05"), now)
    by_hand = {e.exec_id for e in bybit_venue.book.executions if e.order_id != order["id"]}
    assert len(by_hand) == 121
    executor = LiveExecutor(exchange, fill_poll_interval=0.01, fill_poll_attempts=3)

    found = await executor.outside_trades((BTC_SPOT, BTC_PERP), began, {order["id"]})

    assert {t.order_id for t in found} == by_hand  # an outside trade's id is its execId
    bought = [t for t in found if t.filled_qty == Decimal("0.05")]
    assert [(t.side, t.category) for t in bought] == [(Side.BUY, Category.LINEAR)]


@pytest.mark.anyio
async def test_a_dry_run_away_for_80_days_is_paid_every_settlement(
    keep_decimal_context: None,
) -> None:
    """A dry run's paper short is paid from the venue's public funding history, which
    Bybit answers at most 200 (newest first) at a time: 80 days of the 8-hour perp
    (240 settlements) are each paid, once."""
    start = 1_704_412_800_000  # 2024-01-05T00:00Z, a settlement
    async with Venue(
        data_dir=INSTRUMENTS.parent, recorded=True, start_ms=start + 80 * DAY_MS
    ) as venue:
        exchange = make_exchange(
            DEFAULT_API_KEY, DEFAULT_SECRET, VenueTiming(request_timeout_ms=2000), url=venue.url
        )
        try:
            await exchange.load_markets()
            run = btc()
            market = LiveMarket(exchange, [run], make_ticker(), MarketClock())
            market.clock.set(int(await exchange.fetch_time()))
            paid = await market.paper_funding(run, start + 1, Decimal("0.1"))
        finally:
            await exchange.close()
    assert [p.time_ms for p in paid] == list(
        range(start + 8 * HOUR_MS, start + 80 * DAY_MS + 1, 8 * HOUR_MS)
    )
    assert all(p.received == Decimal("0.1") * p.price * p.rate for p in paid)


def funding_rows(run_dir: Path) -> int:
    """The funding rows the run's journal holds now."""
    with Journal.read(run_dir) as view:
        return sum(len(view.ledger_entries(label, "funding")) for label in view.ledger_counts())


def test_a_run_resumed_after_40_days_records_every_settlement_paid_meanwhile_once(
    tmp_path: Path,
) -> None:
    """Stopped holding BTC, the venue's clock moved on 40 days (120 settlements), then
    resumed: the ledger's funding rows are the venue's funding executions, each once,
    and the ledger balances."""
    venue = VenueProcess(tmp_path, *SCENARIOS["plain"])
    try:
        run_dir = stop_holding(tmp_path, venue)
        moved = venue.admin("clock", {"advance_ms": 40 * DAY_MS})
        settled = [e for e in moved["settled"] if e["execType"] == "Funding"]
        assert len(settled) == 120
        resumed = Watched(orchestrator("run", "--resume", str(run_dir), cwd=tmp_path))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and resumed.process.poll() is None:
            if resumed.trading and funding_rows(run_dir) >= len(settled):
                break
            time.sleep(0.2)
        resumed.process.send_signal(signal.SIGTERM)
        code, err = resumed.finish(timeout=60)
        executions = venue.admin("state")["executions"]
    finally:
        venue.stop()
    assert code == 128 + signal.SIGTERM, err
    paid = sorted(
        (int(e["execTime"]), -Decimal(e["execFee"]))
        for e in executions
        if e["execType"] == "Funding"
    )
    assert len(paid) == 120, err
    with (run_dir / "ledger.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "funding"]
    assert sorted((int(r["time_ms"]), Decimal(r["amount"])) for r in rows) == paid, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ledger_balances"] is True, err
