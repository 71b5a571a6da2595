"""Fees from the venue's own record (issue 19, item 3): an order answer without Bybit's
``cumFeeDetail`` says nothing of the fee, which ccxt then reads as none. The executor
reads the order's executions instead, so a spot buy's fee taken in the coin bought is
known, the position holds what the fill left, and the close never sells the trader's own
coins. Real ccxt against the shipped venue."""

from __future__ import annotations

import csv
import json
import signal
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from orchestrator import LiveExecutor, PositionManager, TickerService, TradingSettings
from orchestrator.bybit.client import make_exchange
from orchestrator.settings import VenueTiming
from orchestrator.venue import DEFAULT_API_KEY, DEFAULT_SECRET, FaultRule, Venue
from tests.fake_bybit import INSTRUMENTS
from tests.support import BTC_PERP, BTC_SPOT, FakeClock
from tests.test_crash_resume_live import (
    VenueProcess,
    Watched,
    journal_state,
    orchestrator,
    write_config,
)

pytestmark = pytest.mark.anyio
D = Decimal
PRICE = D(60000)
OWN_BTC = D("0.5")  # coins the trader held before the run
TIMING = VenueTiming(request_timeout_ms=1000, recv_window_ms=2000, clock_skew_ms=500)


@pytest.fixture
async def venue(keep_decimal_context: None) -> AsyncIterator[Venue]:
    async with Venue(
        data_dir=INSTRUMENTS.parent,
        prices={"BTCUSDT": PRICE},
        balances={"USDT": D(100_000), "BTC": OWN_BTC},
    ) as venue:
        yield venue


@pytest.mark.parametrize("lag_reads", [0, 2])
async def test_a_round_trip_without_fee_detail_keeps_the_traders_own_coins(
    venue: Venue, lag_reads: int
) -> None:
    """Every order read lacks cumFeeDetail; with ``lag_reads`` the execution list first
    answers empty (it lags the order on Bybit), and the fill is looked up again."""
    venue.faults.add(FaultRule(kind="no_fee_detail", times=None))
    if lag_reads:
        venue.faults.add(FaultRule(kind="empty", endpoint="execution/list", times=lag_reads))
    exchange = make_exchange(DEFAULT_API_KEY, DEFAULT_SECRET, TIMING, url=venue.url)
    try:
        ticker = TickerService(clock=FakeClock())
        ticker.update(BTC_SPOT.symbol, PRICE)
        ticker.update(BTC_PERP.symbol, PRICE)
        executor = LiveExecutor(exchange, timing=TIMING, fill_poll_interval=0.02)
        manager = PositionManager(
            executor, ticker, TradingSettings(max_position_size_usd=D(1200)), run_nonce="feesx1"
        )
        position = await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="f1")
        assert position.state == "validated", position.reason
        bought = venue.book.wallet["BTC"] - OWN_BTC
        spot_fee = venue.book.executions[0].fee
        assert spot_fee > 0
        # The position knows the fee the venue took in BTC, and holds what is left.
        assert position.spot_qty == bought
        assert sum(r.fee for r in position.orders if r.fee_currency == "BTC") == spot_fee
        # The perp's fee in USDT is known too, not zero.
        perp_fees = [r.fee for r in position.orders if r.category.value == "linear"]
        assert perp_fees and all(fee > 0 for fee in perp_fees)

        position = await manager.close_position("f1")
        assert position.state == "closed", position.reason
    finally:
        await exchange.close()
    assert venue.book.wallet["BTC"] == OWN_BTC  # the trader's own coins, untouched
    assert venue.audit.oversold() == {}
    assert venue.audit.sent_twice() == []


def test_through_the_cli_a_run_without_fee_detail_keeps_the_traders_own_coins(
    tmp_path: Path,
) -> None:
    """The same through ``orchestrator run`` (mode live) against ``orchestrator venue`` in
    its own process, every order read without cumFeeDetail: the run opens and closes,
    its ledger has every fee the venue took and balances on the venue's numbers, and the
    trader's own BTC are still there."""
    rules = {"rules": [{"kind": "no_fee_detail", "times": None}]}
    (tmp_path / "rules.json").write_text(json.dumps(rules))
    venue = VenueProcess(
        tmp_path,
        [],
        "100000",
        "--balance",
        f"BTC={OWN_BTC}",
        "--faults",
        str(tmp_path / "rules.json"),
    )
    try:
        write_config(tmp_path, venue.url, on_stop="close")
        run = Watched(orchestrator("run", "config.yaml", cwd=tmp_path))
        deadline = time.monotonic() + 60
        while run.process.poll() is None and time.monotonic() < deadline:
            folders = sorted((tmp_path / "runs").glob("*"))
            if (journal_state(folders[-1])[0] if folders else []) == ["validated"]:
                break
            time.sleep(0.05)
        run.process.send_signal(signal.SIGTERM)
        code, err = run.finish(timeout=60)
        state = venue.admin("state")
    finally:
        venue.stop()
    assert code == 143, err
    assert "Traceback" not in err
    btc = next(
        D(c["walletBalance"])
        for a in state["wallet"]["list"]
        for c in a["coin"]
        if c["coin"] == "BTC"
    )
    assert btc == OWN_BTC, btc  # on_stop: close sold what the run bought, and only that
    assert state["checks"]["oversold"] == {}
    (run_dir,) = (tmp_path / "runs").glob("*")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["positions"] == {"closed": 1}, err
    assert summary["ledger_balances"] is True, err
    with (run_dir / "ledger.csv").open() as f:
        fees = [D(r["amount"]) for r in csv.DictReader(f) if r["kind"] == "fee"]
    venue_fees = [D(e["execFee"]) for e in state["executions"] if e["execType"] == "Trade"]
    assert len(fees) == len(venue_fees) == 4 and all(fee < 0 for fee in fees), (fees, venue_fees)
