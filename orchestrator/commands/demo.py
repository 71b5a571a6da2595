"""A short paper run on a stub price feed: one position opened, held, closed.

What a newcomer runs first to see the machinery work, offline, in a second.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from typing import Any, TextIO

import anyio

from orchestrator.config import Config, load_config
from orchestrator.execution.paper import PaperExecutor
from orchestrator.market.ticker import TickerService
from orchestrator.models import Category, Instrument, OrderResult, Position
from orchestrator.position.manager import PositionManager

# Bybit's BTCUSDT limits (instruments-info).
SPOT = Instrument(
    symbol="BTC/USDT",
    category=Category.SPOT,
    base="BTC",
    quote="USDT",
    qty_step=Decimal("0.000001"),
    min_qty=Decimal("0.000011"),
    min_notional=Decimal(5),
    price_tick=Decimal("0.1"),
)
PERP = Instrument(
    symbol="BTC/USDT:USDT",
    category=Category.LINEAR,
    base="BTC",
    quote="USDT",
    qty_step=Decimal("0.001"),
    min_qty=Decimal("0.001"),
    min_notional=Decimal(5),
    price_tick=Decimal("0.1"),
)


class TransitionPrinter:
    """A machine listener: prints every transition as it happens."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def after_transition(self, event: Any, source: Any, target: Any, model: Position) -> None:
        print(f"  [{model.id}] {source.id} -> {target.id}  ({event})", file=self._out)


def _order_line(result: OrderResult) -> str:
    return (
        f"  {result.category:6} {result.side:4} {result.filled_qty} {result.symbol} "
        f"@ {result.avg_price:.2f}  fee {result.fee:.4f} {result.fee_currency}  "
        f"[{result.client_order_id} / {result.order_id}]"
    )


async def run_demo(config: Config, out: TextIO) -> None:
    clock_now = [1_717_200_000.0]  # the stub feed's clock, moved by hand below
    ticker = TickerService(clock=lambda: clock_now[0])
    ticker.update(SPOT.symbol, Decimal(67_000))
    ticker.update(PERP.symbol, Decimal("67020.5"))
    executor = PaperExecutor(ticker, config.fees, [SPOT, PERP])
    executor.set_initial_balance("USDT", config.balances["USDT"])
    manager = PositionManager(executor, ticker, config.trading, listeners=[TransitionPrinter(out)])
    start = executor.get_virtual_balance()["USDT"]

    print(f"paper demo: {SPOT.symbol} long + {PERP.symbol} short, stub prices", file=out)
    print(f"open (limit {config.trading.max_position_size_usd} USD per leg):", file=out)
    position = await manager.open_position(SPOT, PERP, start, position_id="demo1")
    for result in position.orders:
        print(_order_line(result), file=out)

    clock_now[0] += 8 * 3600
    ticker.update(SPOT.symbol, Decimal(65_500))
    ticker.update(PERP.symbol, Decimal("65512.0"))
    rate = Decimal("0.0001")  # 0.01 % per 8 h: Bybit's usual rate
    funding = executor.settle_funding(PERP.symbol, rate, Decimal("65512.0"))
    print(
        f"8 h later, BTC is down 2.2 %; funding at {rate:%} paid the short {funding:.4f} USDT",
        file=out,
    )
    print("close:", file=out)
    await manager.close_position(position.id)
    for result in position.orders[2:]:
        print(_order_line(result), file=out)

    end = executor.get_virtual_balance()["USDT"]
    fees = position.entry_fees + position.exit_fees
    print(
        f"result: state {position.state}, quantity {position.quantity} BTC, "
        f"fees {fees:.4f} USDT, balance {start} -> {end:.4f} USDT "
        f"(change {end - start:+.4f}: funding {funding:+.4f}, fees, slippage and the basis)",
        file=out,
    )


def demo(config: Config, out: TextIO) -> None:
    anyio.run(run_demo, config, out)


def main(args: argparse.Namespace) -> int:
    """``orchestrator demo [CONFIG]``."""
    demo(load_config(args.config), sys.stdout)
    return 0
