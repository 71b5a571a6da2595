"""Test parts: real instruments, a clock the test moves, and a PaperExecutor with faults."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import anyio
import anyio.lowlevel
import msgspec

from orchestrator.config import StrategySettings
from orchestrator.exceptions import OrderOutcomeUnknown, OrderRejected
from orchestrator.execution.paper import PaperExecutor
from orchestrator.market.ticker import TickerService
from orchestrator.models import Category, Instrument, OrderRequest, OrderResult, OrderStatus
from orchestrator.settings import FeeSettings

D = Decimal


def data_file(name: str) -> Path:
    """A file of the recorded market data: $ORCHESTRATOR_DATA, else ../shared/data."""
    folder = Path(
        os.environ.get("ORCHESTRATOR_DATA")
        or Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(
            f"recorded data {path} not found: set ORCHESTRATOR_DATA to the data folder"
        )
    return path


# Bybit's limits for BTCUSDT (from the instruments-info snapshot in shared/data).
BTC_SPOT = Instrument(
    symbol="BTC/USDT",
    category=Category.SPOT,
    base="BTC",
    quote="USDT",
    qty_step=D("0.000001"),
    min_qty=D("0.000011"),
    min_notional=D(5),
    price_tick=D("0.1"),
)
BTC_PERP = Instrument(
    symbol="BTC/USDT:USDT",
    category=Category.LINEAR,
    base="BTC",
    quote="USDT",
    qty_step=D("0.001"),
    min_qty=D("0.001"),
    min_notional=D(5),
    price_tick=D("0.1"),
)
ETH_SPOT = Instrument(
    symbol="ETH/USDT",
    category=Category.SPOT,
    base="ETH",
    quote="USDT",
    qty_step=D("0.00001"),
    min_qty=D("0.00029"),
    min_notional=D(5),
    price_tick=D("0.01"),
)
ETH_PERP = Instrument(
    symbol="ETH/USDT:USDT",
    category=Category.LINEAR,
    base="ETH",
    quote="USDT",
    qty_step=D("0.01"),
    min_qty=D("0.01"),
    min_notional=D(5),
    price_tick=D("0.01"),
)
INSTRUMENTS = (BTC_SPOT, BTC_PERP, ETH_SPOT, ETH_PERP)

# A strategy that decides on every settlement: enter on the first one above 10 %/y
# whose funding pays for the round trip within 30 days; leave below 2 %/y.
QUICK = StrategySettings(
    funding_window=1,
    entry_annualised=D("0.10"),
    exit_annualised=D("0.02"),
    negative_streak=3,
    max_basis=D("0.005"),
    min_hold_hours=720,
)


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_ticker(clock: FakeClock | None = None) -> TickerService:
    ticker = TickerService(clock=clock or FakeClock())
    ticker.update("BTC/USDT", D(50000))
    ticker.update("BTC/USDT:USDT", D(50010))
    ticker.update("ETH/USDT", D(3000))
    ticker.update("ETH/USDT:USDT", D("3001.5"))
    return ticker


class FaultyPaperExecutor(PaperExecutor):
    """The real PaperExecutor, with faults injected by client order id suffix.

    ``faults["po1"] = "reject"`` makes the perp open (attempt 1) fail. Faults:
    reject, unknown (lost before it reached the venue), hang (never answered,
    never filled), fill_then_hang (filled, but the answer never comes),
    lands_late (never answered; fills just after the first lookup missed it),
    lookup_fails (fetch_order_by_client_id raises), or a Decimal ratio for a
    partial fill.
    """

    # Like a real venue, a request may still be accepted this long after it left.
    late_arrival_seconds = 0.3

    def __init__(self, ticker: TickerService, *, balance: Decimal = D(100_000)) -> None:
        super().__init__(ticker, FeeSettings(), INSTRUMENTS)
        self.set_initial_balance("USDT", balance)
        self.faults: dict[str, str | Decimal] = {}
        self.requests: list[OrderRequest] = []
        self.lookups: list[str] = []
        self._late: dict[str, OrderRequest] = {}

    def _fault(self, client_order_id: str) -> str | Decimal | None:
        return self.faults.get(client_order_id.rsplit("-", 1)[-1])

    async def place_order(self, request: OrderRequest) -> OrderResult:
        self.requests.append(request)
        await anyio.lowlevel.checkpoint()  # a real venue answers later: let the other leg start
        fault = self._fault(request.client_order_id)
        if fault == "reject":
            raise OrderRejected(f"{request.symbol}: rejected by the test venue")
        if fault == "unknown":
            raise OrderOutcomeUnknown("connection reset before the venue saw it")
        if fault == "lands_late":
            self._late[request.client_order_id] = request
        if fault in ("hang", "lands_late"):
            await anyio.sleep_forever()
        if isinstance(fault, Decimal):
            part = msgspec.structs.replace(request, quantity=request.quantity * fault)
            result = await super().place_order(part)
            result = msgspec.structs.replace(
                result, requested_qty=request.quantity, status=OrderStatus.PARTIALLY_FILLED
            )
            self._orders[request.client_order_id] = result
            return result
        result = await super().place_order(request)
        if fault == "fill_then_hang":
            await anyio.sleep_forever()
        return result

    async def fetch_order_by_client_id(
        self, client_order_id: str, symbol: str
    ) -> OrderResult | None:
        self.lookups.append(client_order_id)
        if self._fault(client_order_id) == "lookup_fails":
            raise OrderOutcomeUnknown("venue unreachable")
        found = await super().fetch_order_by_client_id(client_order_id, symbol)
        late = self._late.pop(client_order_id, None)
        if late is not None:  # it reaches the venue right after this lookup
            await super().place_order(late)
        return found
