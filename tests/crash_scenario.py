"""A journaled replay that takes every transition of the position machine, for the
crash tests: run it, kill it anywhere (ORCHESTRATOR_CRASH_AT), resume it.

    python -m tests.crash_scenario run RUN_DIR      # a new run, journaled in RUN_DIR
    python -m tests.crash_scenario resume RUN_DIR   # carry on from RUN_DIR's journal

Deterministic: the same data and the same faults, so a resumed run must end exactly
as an uninterrupted one. It prints the run's ledger (one line per entry), its
positions' final states and its ending equity, for the test to compare.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import anyio

from orchestrator.config import Config, Pair, RiskSettings
from orchestrator.exceptions import OrderRejected
from orchestrator.execution.paper import PaperExecutor
from orchestrator.journal import Journal
from orchestrator.journal.recorder import JournalRecorder, ResumingRecorder
from orchestrator.market.recorded import Candle, FundingRate, PairData
from orchestrator.market.ticker import TickerService
from orchestrator.models import OrderRequest, OrderResult
from orchestrator.replay.engine import REPLAY_NONCE, Replay
from orchestrator.settings import TradingSettings
from orchestrator.strategy.funding import FundingStrategy
from tests.support import BTC_PERP, BTC_SPOT, QUICK

D = Decimal
HOUR = 3_600_000
T0 = 1_704_067_200_000
SETTLEMENTS = 40
STRATEGY = QUICK
CONFIG = Config(
    pairs=[Pair("BTC/USDT", "BTC/USDT:USDT")],
    strategy=STRATEGY,
    trading=TradingSettings(max_position_size_usd=D(20000), order_timeout_seconds=1),
    # The scenario fails on purpose, again and again: the breaker must not end it early.
    risk=RiskSettings(max_failed_opens=100, max_failed_closes=100, failed_open_budget=D("0.1")),
)
# In when funding is high, out when it turns negative: a position every two settlements.
RATES = ["0.001" if i % 2 == 0 else "-0.001" for i in range(SETTLEMENTS)]
# What goes wrong, by client order id without the nonce: every branch of the machine.
FAULTS = {
    "BTCUSDT-0002-po1": "reject",  # leg_failed -> rolling_back -> rollback_done
    "BTCUSDT-0003-po1": "partial",  # legs_filled -> delta_breached -> rollback_done
    "BTCUSDT-0004-po1": "reject",  # leg_failed, and the rollback of the spot ...
    "BTCUSDT-0004-sr1": "reject",  # ... refused: rollback_failed -> needs_attention -> close
    "BTCUSDT-0005-sc1": "reject",  # close_failed -> needs_attention -> close -> closed
    "BTCUSDT-0006-po1": "hang",  # timed_out -> rolling_back -> rollback_done
    "BTCUSDT-0007-pc1": "hang",  # closing -> timed_out -> needs_attention -> close
}


class FaultyPaper(PaperExecutor):
    async def place_order(self, request: OrderRequest) -> OrderResult:
        fault = FAULTS.get(request.client_order_id.split("-", 1)[1])
        if fault == "reject":
            # Not one of the refusals the breaker pauses on (the venue would repeat those):
            # the scenario goes on through every branch.
            raise OrderRejected('bybit {"retCode":110017,"retMsg":"refused by the scenario"}')
        if fault == "hang":  # never answered, never placed
            await anyio.sleep_forever()
        if fault == "partial":
            return await super().place_order(
                OrderRequest(
                    request.symbol,
                    request.side,
                    (request.quantity * D("0.9")).quantize(D("0.001")),
                    request.category,
                    request.client_order_id,
                    reduce_only=request.reduce_only,
                )
            )
        return await super().place_order(request)


def data() -> PairData:
    hours = 8 * (SETTLEMENTS + 1)
    candles = [Candle(T0 + i * HOUR, *(D(50000),) * 4, D(1)) for i in range(hours)]
    # At the end the price leaves every instrument minimum behind: the last entry is
    # refused before any order (reject).
    tail = hours - 24
    huge = [Candle(c.open_time_ms, *(D("1e11"),) * 4, D(1)) for c in candles[tail:]]
    candles = candles[:tail] + huge
    funding = [FundingRate(T0 + (i + 1) * 8 * HOUR, D(r)) for i, r in enumerate(RATES)]
    funding[-2] = FundingRate(funding[-2].time_ms, D("0.001"))
    return PairData("BTC/USDT", "BTC/USDT:USDT", candles, candles, funding, [])


async def play(recorder: JournalRecorder) -> None:
    replay = Replay(
        CONFIG,
        [data()],
        {BTC_SPOT.symbol: BTC_SPOT, BTC_PERP.symbol: BTC_PERP},
        [FundingStrategy(STRATEGY, CONFIG.fees, CONFIG.paper.slippage)],
        make_executor=lambda ticker: _executor(ticker),
        recorder=recorder,
    )
    result = await replay.run()
    for entry in result.ledger.entries:
        print("ledger", entry.time_ms, entry.position_id, entry.kind, entry.symbol, entry.amount)
    for position in result.positions:
        print("position", position.id, position.state)
    print("equity", result.ending_equity)


def _executor(ticker: TickerService) -> PaperExecutor:
    return FaultyPaper(ticker, CONFIG.fees, [BTC_SPOT, BTC_PERP], slippage=CONFIG.paper.slippage)


def main(verb: str, run_dir: Path) -> None:
    if verb == "run":
        journal = Journal.create(
            run_dir, run_id=run_dir.name, mode="paper", run_nonce=REPLAY_NONCE, config_text=""
        )
        recorder = JournalRecorder(journal)
    else:
        journal = Journal.open(run_dir)
        recorder = ResumingRecorder(journal)
    with journal:
        anyio.run(play, recorder)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
